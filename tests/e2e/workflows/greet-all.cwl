cwlVersion: v1.2
class: Workflow
doc: Two steps, a scatter, and a file passed from the first step to the second.
requirements:
  ScatterFeatureRequirement: {}
inputs:
  names: string[]
  header: File
outputs:
  report:
    type: File
    outputSource: combine/joined
steps:
  greet:
    run: tools/greet.cwl
    scatter: name
    in:
      name: names
    out: [greeting]
  combine:
    run: tools/combine.cwl
    in:
      header: header
      parts: greet/greeting
    out: [joined]
