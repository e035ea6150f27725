"""The workflow engine's own sandbox: a bubblewrap mount namespace that shows it only what it needs.

cwltool reads files itself (`$include`, `$import`, `loadContents`, defaults, checksums), and whatever it
reads can end up in a step's command line or the engine log, which the researcher sees without review.
So the engine must not be able to read anything beyond its own run: the sandbox starts from an empty
root and adds the operating system (read-only), the Python installation and the gateway's code
(read-only), the run's folder (read-write) and the project's own `inputs` and `released` folders
(read-only). The gateway's data directory, database, secrets, other projects' data and home
directories are simply not there. The network is shared: the engine reaches the TES API on loopback.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from gateway.domain.errors import BackendError

# Read-only system folders (missing ones are skipped: layouts differ between distributions).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")
# Files inside /etc the engine has no business reading.
MASKED_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers")


def python_dirs() -> list[Path]:
    """The interpreter, the virtualenv and the gateway's own code (which may be an editable checkout)."""
    import gateway

    code = Path(gateway.__file__).resolve().parents[1]
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), code})


def bwrap_command(
    run_dir: Path,
    readable: Iterable[Path],
    hidden: Iterable[Path],
    workdir: Path,
    bwrap: str | None = None,
) -> list[str]:
    """The bubblewrap prefix for an engine command.

    `readable` are bound read-only, `run_dir` read-write; `hidden` (e.g. the gateway's data directory,
    which may lie inside a bound folder such as an editable checkout) are covered by empty folders
    before the run's own folders are bound back in.
    """
    binary = bwrap or shutil.which("bwrap")
    if binary is None:
        raise BackendError(
            "the workflow engine sandbox needs bubblewrap (bwrap), which is not installed; install it, or set "
            "wes_engine_sandbox = 'none' to run engines unconfined (not for a TRE)"
        )
    args: list[str] = [binary, "--die-with-parent", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    for folder in SYSTEM_DIRS:
        args += ["--ro-bind-try", folder, folder]
    for masked in MASKED_FILES:
        if Path(masked).exists():
            args += ["--ro-bind", "/dev/null", masked]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a fresh, private tmpfs
    for folder in python_dirs():
        args += ["--ro-bind", str(folder), str(folder)]
    for folder in _outermost(hidden):
        args += ["--tmpfs", str(folder)]
    for folder in readable:
        folder.mkdir(parents=True, exist_ok=True)
        args += ["--ro-bind", str(folder), str(folder)]
    args += ["--bind", str(run_dir), str(run_dir), "--chdir", str(workdir)]
    return args


def _outermost(paths: Iterable[Path]) -> Sequence[Path]:
    resolved = sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in resolved:
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept
