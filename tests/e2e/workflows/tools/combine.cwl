cwlVersion: v1.2
class: CommandLineTool
baseCommand: cat
inputs:
  header:
    type: File
    inputBinding: {position: 1}
  parts:
    type: File[]
    inputBinding: {position: 2}
stdout: report.txt
outputs:
  joined:
    type: stdout
