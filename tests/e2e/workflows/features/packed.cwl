cwlVersion: v1.2
$graph:
  - id: main
    class: Workflow
    doc: A subworkflow, a File with a secondary file, a Directory in and a Directory out.
    requirements:
      SubworkflowFeatureRequirement: {}
    inputs:
      reads:
        type: File
        secondaryFiles: [.idx]
      refdir: Directory
    outputs:
      counted:
        type: File
        outputSource: inner/counted
      bundle:
        type: Directory
        outputSource: inner/bundle
    steps:
      inner:
        run: "#sub"
        in: {reads: reads, refdir: refdir}
        out: [counted, bundle]

  - id: sub
    class: Workflow
    inputs:
      reads:
        type: File
        secondaryFiles: [.idx]
      refdir: Directory
    outputs:
      counted: {type: File, outputSource: count/counted}
      bundle: {type: Directory, outputSource: pack/bundle}
    steps:
      count:
        run: "#count"
        in: {reads: reads}
        out: [counted]
      pack:
        run: "#pack"
        in: {refdir: refdir, counted: count/counted}
        out: [bundle]

  - id: count
    class: CommandLineTool
    baseCommand: [sh, -c]
    arguments:
      - "wc -l < $(inputs.reads.path) > counted.txt && cat $(inputs.reads.path).idx >> counted.txt"
    inputs:
      reads:
        type: File
        secondaryFiles: [.idx]
    outputs:
      counted: {type: File, outputBinding: {glob: counted.txt}}

  - id: pack
    class: CommandLineTool
    baseCommand: [sh, -c]
    arguments:
      - "mkdir bundle && ls $(inputs.refdir.path) > bundle/names.txt && cat $(inputs.refdir.path)/a.txt > bundle/a-copy.txt && cp $(inputs.counted.path) bundle/"
    inputs:
      refdir: Directory
      counted: File
    outputs:
      bundle: {type: Directory, outputBinding: {glob: bundle}}
