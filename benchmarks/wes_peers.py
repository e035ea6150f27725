"""The peer WES servers of the WES benchmark: wes-service's `wes-server` and Sapporo, run as local baselines.

Both come from `.tools/bench-peers` (scripts/setup-bench-peers.sh), never from the project's virtualenv,
listen on 127.0.0.1 only, keep every file of theirs in a directory of the benchmark's, and run without
authentication (local baselines, as each ships by default).

* **wes-service** (`wes-server`, backend `wes_service.cwl_runner`): starts the virtualenv's `cwltool` as
  a child per run, in its current directory's `workflows/<run>/`; attachments are staged under `TMPDIR`.
* **Sapporo**: starts `run.sh <run dir>` per run. The packaged run.sh runs cwltool inside the
  `quay.io/commonwl/cwltool` container through a docker socket (it would pull the image) and, once the run
  is COMPLETE, builds an RO-Crate that runs MultiQC in another pulled container. The benchmark gives it a
  run.sh of its own, written from the packaged one with two functions redefined after the packaged
  definitions (right before its traps): `run_cwltool` runs the virtualenv's `cwltool` on the host (same arguments:
  `--outdir` the run's outputs, the run's engine parameters, workflow, parameters; working directory the
  run's `exe/`, `TMPDIR` the run's `tmp/`), and `generate_ro_crate` does nothing (it runs after COMPLETE
  is written, so it is outside the measured time either way).

Each peer runs in two configurations, through cwltool options only: `--no-container` (the step as a host
process: what both do by default for a workflow without DockerRequirement, such as the benchmark's; the
flag makes sure no image is ever pulled), and `--podman --default-container localhost/tre-base:latest`
(the step in a podman container of the local base image, like the gateway's steps). wes-server takes
cwltool options server-wide (`--opt extra=...`), so each configuration is a server of its own; Sapporo
takes them per run (`workflow_engine_parameters`), which its run.sh appends to the cwltool command.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from benchmarks.common import REPO

VENV = REPO / ".tools" / "bench-peers"
BIN = VENV / "bin"
SETUP = REPO / "scripts" / "setup-bench-peers.sh"
# The packaged run.sh defines every function, then sets its traps and starts the run: the benchmark's
# definitions go right before the traps, so they replace the packaged ones.
MAIN_STARTS = "trap 'desc_error' ERR"


def ensure_installed() -> None:
    subprocess.run(["bash", str(SETUP)], check=True, cwd=REPO)


def versions() -> dict[str, str]:
    code = ("from importlib.metadata import version as v; "
            "print(v('cwltool'), v('wes-service'), v('sapporo'))")
    out = subprocess.run([str(BIN / "python"), "-c", code], check=True, capture_output=True, text=True).stdout
    cwltool, wes_service, sapporo = out.split()
    return {"cwltool": cwltool, "wes-service": wes_service, "sapporo": sapporo}


def wes_server_command(port: int, cwltool_options: list[str]) -> list[str]:
    """`wes-server` whose every run is `cwltool OPTIONS --outdir=... WORKFLOW PARAMS` (options are server-wide)."""
    extra = [arg for option in cwltool_options for arg in ("--opt", f"extra={option}")]
    return [str(BIN / "wes-server"), "--port", str(port), "--backend", "wes_service.cwl_runner",
            "--opt", f"runner={BIN / 'cwltool'}", *extra]


def sapporo_run_sh(target: Path) -> Path:
    """Sapporo's packaged run.sh with `run_cwltool` on the host and no RO-Crate (see the module doc)."""
    packaged = subprocess.run(
        [str(BIN / "python"), "-c", "from sapporo.config import PKG_DIR; print(PKG_DIR / 'run.sh')"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    text = Path(packaged).read_text()
    replaced = ("function run_cwltool()", "function generate_ro_crate()")
    if text.count(MAIN_STARTS) != 1 or not all(name in text for name in replaced):
        raise RuntimeError(f"Sapporo's run.sh changed shape ({packaged}): update benchmarks/wes_peers.py")
    cwltool = shlex.quote(str(BIN / "cwltool"))
    override = f"""# ---- TRE Gateway benchmark: local baseline, no containers, nothing pulled ----
function run_cwltool() {{
    mkdir -p "${{tmp_dir}}"
    export TMPDIR="${{tmp_dir}}"
    cd "${{exe_dir}}"
    local -a cmd_arr=({cwltool} --outdir "${{outputs_dir}}")
    _append_engine_params cmd_arr
    cmd_arr+=("${{wf_url}}" "${{wf_params}}")
    _write_and_run cmd_arr
}}

function generate_ro_crate() {{
    :
}}

"""
    target.write_text(text.replace(MAIN_STARTS, override + MAIN_STARTS))
    target.chmod(0o755)
    return target


def sapporo_command(port: int, run_dir: Path, run_sh: Path) -> list[str]:
    return [str(BIN / "sapporo"), "--host", "127.0.0.1", "--port", str(port), "--run-dir", str(run_dir),
            "--run-sh", str(run_sh)]
