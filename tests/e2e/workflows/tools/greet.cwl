cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
arguments: [hello]
inputs:
  name:
    type: string
    inputBinding: {position: 1}
stdout: greeting.txt
outputs:
  greeting:
    type: stdout
