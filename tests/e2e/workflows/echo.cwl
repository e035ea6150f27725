cwlVersion: v1.2
class: CommandLineTool
doc: One step that writes its message to a file.
baseCommand: echo
inputs:
  message:
    type: string
    inputBinding: {position: 1}
stdout: message.txt
outputs:
  out:
    type: stdout
