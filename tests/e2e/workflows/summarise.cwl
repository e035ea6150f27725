cwlVersion: v1.2
class: CommandLineTool
doc: Writes a frequency table with a small cell and a harmless summary, for output review.
baseCommand: [sh, -c]
arguments:
  - "printf 'sex,n\\nF,3\\nM,27\\n' > counts.csv && echo 'mean age 51.2' > summary.txt"
inputs: []
outputs:
  counts:
    type: File
    outputBinding: {glob: counts.csv}
  summary:
    type: File
    outputBinding: {glob: summary.txt}
