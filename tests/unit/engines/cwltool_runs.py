"""Real cwltool runs whose docker command is a recorder: what cwltool passes, and the task built from it.

The recorder stands where `python -m gateway.engines.cwl_step` would: it writes the argv, the targets
of fds 0-2, the store's file tree at that moment and the task `build_task` makes (or its refusal) to a
JSON-lines file, then exits 0 (cwltool's own stdout/stderr files already exist, which is all the
tools' outputs need) or 125 when the step is refused, as the real command would.

`python -m tests.unit.engines.cwltool_runs` rewrites fixtures/cwltool_recordings.json, with the
machine's temporary paths replaced by `{BASE}`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).with_name("fixtures") / "cwltool_recordings.json"
PROJECT, RUN = "p1", "r1"

RECORDER = """\
#!{python}
import json, os, sys
from gateway.engines import cwl_step

root = os.path.realpath(os.environ["TRE_GATEWAY_ENGINE_STORE_ROOT"])


def entry(full):
    rel = os.path.relpath(full, root)
    if os.path.islink(full):
        return ["l", rel, os.readlink(full)]
    return ["d", rel] if os.path.isdir(full) else ["f", rel]


fds = cwl_step.inspect_fds()
record = {{"argv": sys.argv[1:], "fds": {{str(k): v for k, v in fds.items()}}}}
code = 0
try:
    invocation = cwl_step.parse_docker_args(sys.argv[1:])
    # What build_task may look at: every volume's host path, and what lies under it, as it is now.
    tree = set()

    def add(path):
        real = os.path.realpath(path)
        if not real.startswith(root + "/") or tuple(entry(real)) in tree:
            return
        tree.add(tuple(entry(real)))
        for dirpath, dirs, files in os.walk(real):
            for name in dirs + files:
                full = os.path.join(dirpath, name)
                tree.add(tuple(entry(full)))
                if os.path.islink(full):
                    add(full)

    for vol in invocation.volumes:
        add(vol.host)
    record["tree"] = sorted(tree)
    if invocation.command == "run":
        record["task"] = cwl_step.build_task(invocation, fds, os.environ)
except cwl_step.StepError as exc:
    record["error"] = exc.msg
    code = exc.exit_code
out = os.open(os.environ["RECORD_TO"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(out, (json.dumps(record) + "\\n").encode())
os.close(out)
sys.exit(code)
"""

TOOLS = {
    # stdout capture, a File with a secondary file, a string argument
    "echo.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  msg: {type: string, inputBinding: {position: 1}}
  infile: {type: File, inputBinding: {position: 2}, secondaryFiles: [.idx]}
stdout: out.txt
outputs:
  out: {type: stdout}
""",
    # stdin from an input, stdout and stderr captured
    "count.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
inputs:
  infile: File
stdin: $(inputs.infile.path)
stdout: count.txt
stderr: err.txt
outputs:
  out: {type: stdout}
""",
    # every kind of InitialWorkDir entry, an environment variable, resources
    "iwd.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "debian:12"}
  InitialWorkDirRequirement:
    listing:
      - $(inputs.ro)
      - {entry: $(inputs.rw), writable: true}
      - {entryname: script.sh, entry: "cat ro.txt\\n"}
      - {entryname: /etc/tool.conf, entry: "x=1\\n"}
      - {entry: $(inputs.dir), entryname: dcopy, writable: true}
      - {entry: $(inputs.dir2), entryname: dlink}
  ResourceRequirement: {coresMin: 1, ramMin: 100}
  EnvVarRequirement: {envDef: {FOO: "bar baz"}}
baseCommand: [sh, script.sh]
inputs:
  ro: File
  rw: File
  dir: Directory
  dir2: Directory
stdout: o.txt
outputs:
  out: {type: stdout}
""",
    # Directory inputs: one with a subdirectory, an empty subdirectory and a symlink; one empty
    "dirs.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: ls
inputs:
  indir: {type: Directory, inputBinding: {position: 1}}
  nothing: {type: Directory, inputBinding: {position: 2}}
stdout: ls.txt
outputs:
  out: {type: stdout}
""",
    # all of the above as steps of one workflow, with a scatter whose outputs feed a scattered step
    "all.cwl": """\
cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  msg: string
  infile: {type: File, secondaryFiles: [.idx]}
  ro: File
  rw: File
  dir: Directory
  dir2: Directory
  nothing: Directory
  msgs: string[]
outputs:
  counts:
    type: File[]
    outputSource: count_said/out
steps:
  echo:
    run: echo.cwl
    in: {msg: msg, infile: infile}
    out: [out]
  count:
    run: count.cwl
    in: {infile: infile}
    out: [out]
  iwd:
    run: iwd.cwl
    in: {ro: ro, rw: rw, dir: dir, dir2: dir2}
    out: [out]
  dirs:
    run: dirs.cwl
    in: {indir: dir, nothing: nothing}
    out: [out]
  say:
    run: say.cwl
    scatter: msg
    in: {msg: msgs}
    out: [out]
  count_said:
    run: count.cwl
    scatter: infile
    in: {infile: say/out}
    out: [out]
""",
    # a scatter with resources, for cwltool started through gateway.engines.cwltool_main
    "says.cwl": """\
cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
  ResourceRequirement: {coresMin: 1, ramMin: 1000}
inputs:
  msgs: string[]
outputs:
  said:
    type: File[]
    outputSource: say/out
steps:
  say:
    run: say.cwl
    scatter: msg
    in: {msg: msgs}
    out: [out]
""",
    "say.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  msg: {type: string, inputBinding: {position: 1}}
stdout: said.txt
outputs:
  out: {type: stdout}
""",
}


def layout(base: Path) -> dict[str, Path]:
    """The object store, the run's folders and the input data under `base`."""
    root = base / "store"
    data = root / "inputs" / PROJECT / "data"
    run_dir = root / "work" / PROJECT / "runs" / RUN
    for d in (data, run_dir / "tmp", run_dir / "out", base / "cwl", base / "elsewhere"):
        d.mkdir(parents=True, exist_ok=True)
    (data / "a.txt").write_text("one\ntwo\n")
    (data / "a.txt.idx").write_text("idx\n")
    (data / "ro.txt").write_text("ro\n")
    (data / "rw.txt").write_text("rw\n")
    (data / "d" / "sub").mkdir(parents=True, exist_ok=True)
    (data / "d" / "empty").mkdir(exist_ok=True)
    (data / "d" / "one").write_text("1\n")
    (data / "d" / "sub" / "two").write_text("2\n")
    link = data / "d" / "link.txt"
    if not link.is_symlink():
        link.symlink_to("../ro.txt")
    (data / "d2").mkdir(exist_ok=True)
    (data / "d2" / "three").write_text("3\n")
    (data / "nothing").mkdir(exist_ok=True)
    (base / "elsewhere" / "secret.txt").write_text("not for tasks\n")
    (base / "elsewhere" / "secret.txt.idx").write_text("idx\n")
    for name, text in TOOLS.items():
        (base / "cwl" / name).write_text(text)
    recorder = base / "recorder.py"
    recorder.write_text(RECORDER.format(python=sys.executable))
    recorder.chmod(0o755)
    return {"root": root, "data": data, "run": run_dir, "cwl": base / "cwl", "recorder": recorder}


def jobs(paths: dict[str, Path], base: Path) -> dict[str, list[str]]:
    data = paths["data"]
    return {
        "all": [
            "--parallel", "all.cwl", "--msg", "hello", "--infile", str(data / "a.txt"),
            "--ro", str(data / "ro.txt"), "--rw", str(data / "rw.txt"), "--dir", str(data / "d"),
            "--dir2", str(data / "d2"), "--nothing", str(data / "nothing"),
            "--msgs", "a", "--msgs", "b", "--msgs", "c",
        ],
        "outside": ["echo.cwl", "--msg", "x", "--infile", str(base / "elsewhere" / "secret.txt")],
        "wrapped": ["says.cwl", "--msgs", "a", "--msgs", "b"],
    }


def record_all(base: Path) -> dict[str, dict[str, Any]]:
    """Run every job with cwltool at once; per job: exit code, cwltool's stderr and the records."""
    paths = layout(base)
    cwltool = Path(sys.executable).with_name("cwltool")
    running = {}
    for name, args in jobs(paths, base).items():
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "RECORD_TO": str(base / f"{name}.jsonl"),
            "TRE_GATEWAY_ENGINE_URL": "http://127.0.0.1:9",
            "TRE_GATEWAY_ENGINE_TOKEN": "engine-token",
            "TRE_GATEWAY_ENGINE_RUN": RUN,
            "TRE_GATEWAY_ENGINE_PROJECT": PROJECT,
            "TRE_GATEWAY_ENGINE_STORE_ROOT": str(paths["root"]),
        }
        # "wrapped" runs cwltool through our entry point, which passes job names and resources on
        program = [sys.executable, "-m", "gateway.engines.cwltool_main"] if name == "wrapped" else [str(cwltool)]
        command = [
            *program, "--quiet", "--user-space-docker-cmd", str(paths["recorder"]),
            "--default-container", "alpine",
            "--tmpdir-prefix", f"{paths['run']}/tmp/", "--tmp-outdir-prefix", f"{paths['run']}/out/",
            "--outdir", str(paths["run"] / f"final-{name}"), *args,
        ]
        running[name] = subprocess.Popen(
            command, cwd=paths["cwl"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    results = {}
    for name, proc in running.items():
        _, err = proc.communicate(timeout=120)
        lines = (base / f"{name}.jsonl").read_text().splitlines() if (base / f"{name}.jsonl").exists() else []
        results[name] = {"returncode": proc.returncode, "stderr": err, "records": [json.loads(x) for x in lines]}
    return results


def placeholders(value: Any, base: str) -> Any:
    """`value` with the machine's base path written as {BASE}, its store's work area as {WORK}."""
    if isinstance(value, str):
        return value.replace(os.path.join(base, "store", "work"), "{WORK}").replace(base, "{BASE}")
    if isinstance(value, list):
        return [placeholders(v, base) for v in value]
    if isinstance(value, dict):
        return {k: placeholders(v, base) for k, v in value.items()}
    return value


def write_fixture() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(os.path.realpath(tmp))
        results = record_all(base)
        chosen = []
        for name, result in results.items():
            if name == "wrapped":
                continue  # the fixture keeps what cwltool itself passes
            for record in result["records"]:
                record["fds"] = {k: (v if v and v.startswith(str(base)) else None) for k, v in record["fds"].items()}
                chosen.append({"job": name, **placeholders(record, str(base))})
    FIXTURE.write_text(json.dumps({"cwltool": _cwltool_version(), "recordings": chosen}, indent=1) + "\n")


def _cwltool_version() -> str:
    from importlib.metadata import version

    return version("cwltool")


if __name__ == "__main__":
    write_fixture()
