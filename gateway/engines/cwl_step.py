"""A docker-compatible command that runs one CWL step as a TES task of the gateway.

cwltool calls it through `--user-space-docker-cmd` exactly as it would call docker:

    CMD run --volume=HOST:TARGET ... --workdir=OUTDIR --rm --env=K=V ... IMAGE ARGV...

(cwltool 3.3 builds `--volume=HOST:TARGET:ro|rw` and then strips the `:ro`/`:rw` markers for user-space
commands). Standard input and output are not arguments: cwltool opens the host files and hands them
over as file descriptors 0, 1 and 2, whose targets `/proc/self/fd/N` names.

The step becomes one TES task: every volume is an input read from the object store by its `file://`
URL, the output directory (the `--workdir` volume) is an input (its initial content) and an output
delivered back to the same host directory, `/tmp` is a scratch volume. The command submits the task
with the run's engine credential, polls it and exits with the executor's exit code, so cwltool judges
the step as if it had run locally.

Environment (set by the engine runner): TRE_GATEWAY_ENGINE_URL, TRE_GATEWAY_ENGINE_TOKEN,
TRE_GATEWAY_ENGINE_RUN, TRE_GATEWAY_ENGINE_PROJECT, TRE_GATEWAY_ENGINE_STORE_ROOT; optional
TRE_GATEWAY_ENGINE_RETRY_SECONDS (how long transient gateway errors are retried, default 30).

Exit codes: the executor's exit code; 125 when the step cannot be expressed as a task or the gateway
refuses it; 1 for system errors, cancelled tasks and an unreachable gateway; 143 when interrupted.

Only the standard library, imported lazily where it is costly: one process starts per step.
"""

from __future__ import annotations

import json
import os
import posixpath
import signal
import stat
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn
from urllib.parse import quote, urlsplit

ENV_URL = "TRE_GATEWAY_ENGINE_URL"
ENV_TOKEN = "TRE_GATEWAY_ENGINE_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_RUN = "TRE_GATEWAY_ENGINE_RUN"
ENV_PROJECT = "TRE_GATEWAY_ENGINE_PROJECT"
ENV_STORE_ROOT = "TRE_GATEWAY_ENGINE_STORE_ROOT"
ENV_RETRY_SECONDS = "TRE_GATEWAY_ENGINE_RETRY_SECONDS"
ENGINE_ENV_PREFIX = "TRE_GATEWAY_ENGINE_"

TES_PATH = "/ga4gh/tes/v1"
EXIT_REFUSED = 125  # docker's "the container could not be run": cwltool reports a permanent failure
EXIT_FAILED = 1
EXIT_INTERRUPTED = 143

SCRATCH = "/tmp"  # noqa: S108 - cwltool's container tmpdir, mapped to a task volume, never to a host path
RESERVED_PREFIXES = ("/proc", "/sys", "/dev", "/.tre")  # as gateway.domain.task (not imported: startup cost)
PARTIAL_PREFIX = ".part-"  # the local object store's in-progress files: never objects

NAME_MAX = 1024
DESCRIPTION_MAX = 4096
POLL_FIRST = 0.05
# A MINIMAL GetTask costs the gateway ~2 ms: four polls a second per running step is cheap, and a step
# that ends is noticed within a quarter second.
POLL_MAX = 0.25
CANCEL_TIMEOUT = 2.0
REQUEST_TIMEOUT = 30.0
DEFAULT_RETRY_SECONDS = 30.0
TERMINAL = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"})

USAGE = """\
usage: python -m gateway.engines.cwl_step run [OPTIONS] IMAGE COMMAND [ARG...]
       python -m gateway.engines.cwl_step pull|inspect|images|version|info|kill ...

A docker-compatible command for cwltool --user-space-docker-cmd: each `run` becomes a TES task of
the TRE gateway (inputs and outputs by file:// URLs of the object store), polled until it ends.

run options: --volume/-v HOST:TARGET[:ro|rw], --mount type=bind,source=..,target=..[,readonly],
  --tmpfs PATH, --workdir/-w PATH, --env/-e K[=V], --cidfile PATH, --cpus N and --memory/-m SIZE
  (TES resources), --name NAME (the step: task name and `wes_step` tag); accepted and ignored:
  --rm, -i, -t, --init, --read-only, --user, --net/--network, --log-driver, --log-opt, --shm-size,
  --userns, --gpus, --memory-swap, --memory-reservation, --ulimit, --label, --security-opt,
  --cap-drop, --pids-limit, --platform, --pull.
Image commands (pull, inspect, images) succeed without doing anything: the gateway applies its
image policy when the task is submitted. load, import and build are refused.

environment: TRE_GATEWAY_ENGINE_URL, TRE_GATEWAY_ENGINE_TOKEN, TRE_GATEWAY_ENGINE_RUN,
  TRE_GATEWAY_ENGINE_PROJECT, TRE_GATEWAY_ENGINE_STORE_ROOT (required for run and kill);
  TRE_GATEWAY_ENGINE_RETRY_SECONDS (optional, default 30).
exit status: the executor's exit code; 125 refused; 1 system error or cancelled; 143 interrupted.
"""


class StepError(Exception):
    """The step cannot run; `exit_code` is what the command exits with."""

    def __init__(self, msg: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(msg)
        self.msg = msg
        self.exit_code = exit_code


class _Interrupted(BaseException):
    """SIGTERM/SIGINT arrived, or cwltool went away. BaseException: no retry loop may swallow it."""


# ------------------------------------------------------------------------------------ parsing


class Volume(NamedTuple):
    host: str
    target: str
    read_only: bool | None = None  # None: not stated (cwltool strips the marker for user-space commands)


class DockerInvocation(NamedTuple):
    """What cwltool asked for. `command` is the subcommand: run, pull, inspect, images, version, ..."""

    command: str
    args: tuple[str, ...] = ()  # arguments of the other subcommands
    image: str = ""
    argv: tuple[str, ...] = ()
    volumes: tuple[Volume, ...] = ()
    tmpfs: tuple[str, ...] = ()
    workdir: str | None = None
    env: tuple[tuple[str, str | None], ...] = ()  # in order; None: pass the shim's own value through
    cidfile: str | None = None
    cpus: float | None = None
    memory_bytes: int | None = None
    name: str | None = None
    ignored: tuple[str, ...] = ()  # accepted options without effect, as given


_VALUE_OPTIONS = {
    "-v": "volume",
    "--volume": "volume",
    "--mount": "mount",
    "--tmpfs": "tmpfs",
    "-w": "workdir",
    "--workdir": "workdir",
    "-e": "env",
    "--env": "env",
    "--cidfile": "cidfile",
    "--cpus": "cpus",
    "-m": "memory",
    "--memory": "memory",
    "--name": "name",
}
# Options with a value that cannot change what the task may do: the gateway decides user, network,
# isolation and logging, whatever docker would have been told.
_IGNORED_VALUE_OPTIONS = frozenset(
    {
        "-u",
        "--user",
        "--net",
        "--network",
        "--log-driver",
        "--log-opt",
        "--shm-size",
        "--userns",
        "--gpus",
        "--memory-swap",
        "--memory-reservation",
        "--ulimit",
        "--label",
        "-l",
        "--security-opt",
        "--cap-drop",
        "--pids-limit",
        "--platform",
        "--pull",
    }
)
_IGNORED_FLAGS = frozenset({"--rm", "-i", "--interactive", "-t", "--tty", "--init", "--read-only", "--nobanner"})
_SHORT_FLAG_LETTERS = frozenset("it")
_GLOBAL_FLAGS = frozenset({"--quiet", "-q", "--debug", "-D", "--nobanner"})
_VOLUME_MODES = frozenset(
    {"ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate", "nocopy", "cached",
     "delegated", "consistent"}
)
_NOOP_COMMANDS = {"pull": "pull", "images": "images", "rm": "rm", "stats": "stats", "info": "info"}
_REFUSED_COMMANDS = frozenset({"load", "import", "build", "save", "push", "commit", "exec", "create", "start"})


def parse_docker_args(argv: Sequence[str]) -> DockerInvocation:
    """Parse the arguments after the program name, as docker would; raise StepError (125) if unusable."""
    args = list(argv)
    i = 0
    while i < len(args) and args[i] in _GLOBAL_FLAGS:
        i += 1
    if i >= len(args):
        return DockerInvocation("help")
    word = args[i]
    rest = tuple(args[i + 1:])
    if word in ("-h", "--help", "help"):
        return DockerInvocation("help")
    if word in ("--version", "-v", "version"):
        return DockerInvocation("version")
    if word in ("container", "image") and rest:
        word, rest = rest[0], rest[1:]
        if word == "ls":
            word = "images"
    if word == "run":
        return _parse_run(rest)
    if word in _NOOP_COMMANDS:
        return DockerInvocation(_NOOP_COMMANDS[word], args=rest)
    if word in ("inspect", "kill", "stop"):
        return DockerInvocation("kill" if word == "stop" else word, args=rest)
    if word in _REFUSED_COMMANDS:
        raise StepError(
            f"'{word}' is not supported: steps run as TES tasks of the TRE gateway, whose image policy "
            "decides the images (use dockerPull with an allowed image)"
        )
    raise StepError(f"unsupported docker command {word!r}")


def _parse_run(args: Sequence[str]) -> DockerInvocation:
    volumes: list[Volume] = []
    tmpfs: list[str] = []
    env: list[tuple[str, str | None]] = []
    ignored: list[str] = []
    fields: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg[1] != "-" and len(arg) > 2 and arg[:2] in _VALUE_OPTIONS:
            name, eq, inline = arg[:2], "=", arg[2:].removeprefix("=")  # -eK=V, -e=K=V, -vHOST:TARGET
        else:
            name, eq, inline = arg.partition("=")
        if name in _VALUE_OPTIONS or name in _IGNORED_VALUE_OPTIONS:
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise StepError(f"option {name} needs a value")
            kind = _VALUE_OPTIONS.get(name)
            if kind is None:
                ignored.append(f"{name}={value}")
            elif kind == "volume":
                volumes.append(_parse_volume(value))
            elif kind == "mount":
                mount = _parse_mount(value)
                if isinstance(mount, Volume):
                    volumes.append(mount)
                else:
                    tmpfs.append(mount)
            elif kind == "tmpfs":
                tmpfs.append(_clean_target(value.partition(":")[0], "--tmpfs"))
            elif kind == "env":
                env.append(_parse_env(value))
            elif kind == "cpus":
                fields["cpus"] = _parse_cpus(value)
            elif kind == "memory":
                fields["memory_bytes"] = _parse_memory(value)
            elif kind == "workdir":
                fields["workdir"] = _clean_target(value, "--workdir")
            else:
                fields[kind] = value
        elif name in _IGNORED_FLAGS or (
            not eq and arg[1] != "-" and len(arg) > 1 and set(arg[1:]) <= _SHORT_FLAG_LETTERS
        ):
            ignored.append(arg)
        else:
            raise StepError(f"unsupported docker run option {name!r}")
        i += 1
    if i >= len(args):
        raise StepError("docker run: no image given")
    image, command = args[i], tuple(args[i + 1:])
    if not image.strip():
        raise StepError("docker run: empty image name")
    if not command:
        raise StepError("docker run: no command given (TES executors need an explicit command)")
    return DockerInvocation(
        "run",
        image=image,
        argv=command,
        volumes=tuple(volumes),
        tmpfs=tuple(tmpfs),
        env=tuple(env),
        ignored=tuple(ignored),
        **fields,
    )


def _clean_target(value: str, what: str) -> str:
    """A normalised absolute container path; refuses the root, '..', NUL and the reserved prefixes."""
    if not value.startswith("/") or "\x00" in value or ".." in value.split("/"):
        raise StepError(f"{what}: {value!r} is not a clean absolute container path")
    normal = "/" + posixpath.normpath(value).lstrip("/")
    if normal == "/":
        raise StepError(f"{what}: the container root cannot be used")
    if any(normal == p or normal.startswith(p + "/") for p in RESERVED_PREFIXES):
        raise StepError(f"{what}: {normal} is reserved by the task runtime")
    return normal


def _parse_volume(spec: str) -> Volume:
    """HOST:TARGET[:MODES]. Host and target are absolute, so the separator is the first ':/'."""
    cut = spec.find(":/")
    if not spec.startswith("/") or cut < 0:
        raise StepError(f"--volume {spec!r}: expected HOST:TARGET, both absolute (named volumes are not supported)")
    host, target = spec[:cut], spec[cut + 1:]
    read_only: bool | None = None
    head, sep, modes = target.rpartition(":")
    if sep and modes and set(modes.split(",")) <= _VOLUME_MODES:
        target = head
        read_only = "ro" in modes.split(",")
    return Volume(host, _clean_target(target, "--volume"), read_only)


def _parse_mount(spec: str) -> Volume | str:
    """docker's --mount CSV: type=bind,source=..,target=..[,readonly]; type=tmpfs gives a scratch path."""
    import csv  # only needed for --mount, which cwltool's user-space mode never uses

    row = next(csv.reader([spec]), [])
    opts: dict[str, str] = {}
    for item in row:
        key, _, value = item.partition("=")
        opts[key.strip().lower()] = value.strip()
    kind = opts.get("type", "bind" if opts.get("source", opts.get("src", "")).startswith("/") else "volume")
    target = opts.get("target") or opts.get("destination") or opts.get("dst") or ""
    if kind == "tmpfs":
        return _clean_target(target, "--mount")
    if kind != "bind":
        raise StepError(f"--mount {spec!r}: only bind and tmpfs mounts are supported")
    source = opts.get("source") or opts.get("src") or ""
    if not source.startswith("/"):
        raise StepError(f"--mount {spec!r}: the source must be an absolute host path")
    read_only = any(k in opts and opts[k] in ("", "1", "true") for k in ("readonly", "ro"))
    return Volume(source, _clean_target(target, "--mount"), read_only)


def _parse_env(value: str) -> tuple[str, str | None]:
    key, eq, val = value.partition("=")
    if not key or "\x00" in key:
        raise StepError(f"--env {value!r}: invalid variable name")
    return key, (val if eq else None)


def _parse_cpus(value: str) -> float:
    try:
        cpus = float(value)
    except ValueError:
        raise StepError(f"--cpus {value!r}: not a number") from None
    if not cpus > 0:
        raise StepError(f"--cpus {value!r}: must be positive")
    return cpus


_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _parse_memory(value: str) -> int:
    text = value.strip().lower()
    if text.endswith("b") and len(text) > 1 and text[-2] in "kmgt":
        text = text[:-1]  # 512mb
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _MEMORY_UNITS else (text, "")
    try:
        amount = float(number) * _MEMORY_UNITS[unit]
    except ValueError:
        raise StepError(f"--memory {value!r}: not a size") from None
    if not amount > 0:
        raise StepError(f"--memory {value!r}: must be positive")
    return int(amount)


# ------------------------------------------------------------------------------ task building


def inspect_fds(fds: Iterable[int] = (0, 1, 2)) -> dict[int, str | None]:
    """The host path of each descriptor that is a regular file (via /proc/self/fd), else None."""
    found: dict[int, str | None] = {}
    for fd in fds:
        found[fd] = None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            path = os.readlink(f"/proc/self/fd/{fd}")
            same = os.stat(path)  # a deleted or renamed file no longer has this name
        except OSError:
            continue
        if path.startswith("/") and (same.st_dev, same.st_ino) == (st.st_dev, st.st_ino):
            found[fd] = path
    return found


def file_url(path: str) -> str:
    """The object store's URL of a host path (already resolved), as LocalObjectStore.url_for builds it."""
    return "file://" + quote(path)


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _required(env: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    values = {n: env.get(n, "") for n in names}
    missing = [n for n, v in values.items() if not v]
    if missing:
        raise StepError(
            "the engine runner did not set " + ", ".join(missing) + " (cwl_step needs the gateway's engine environment)"
        )
    return values


class _Plan:
    """The inputs and volumes of a task, as they are added; no container path is claimed twice."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.inputs: list[dict[str, str]] = []
        self.volumes: list[str] = []
        self.seen: dict[str, str] = {}  # container path -> what claimed it

    def claim(self, path: str, what: str) -> None:
        if path in self.seen:
            raise StepError(f"{what}: container path {path} is already used by {self.seen[path]}")
        self.seen[path] = what

    def resolve(self, host: str, what: str) -> str:
        """The real path of `host`, which must exist inside the store root."""
        real = os.path.realpath(host)
        if not (real.startswith(self.root.rstrip("/") + "/") and real != self.root):
            raise StepError(
                f"{what}: host path {host!r} is outside the object store, so it cannot be given to a task "
                "(set cwltool's --tmpdir-prefix, --tmp-outdir-prefix and the inputs inside the run's folders)"
            )
        if not os.path.exists(real):
            raise StepError(f"{what}: host path {host!r} does not exist")
        return real

    def add_input(self, real: str, target: str, what: str) -> None:
        if os.path.isdir(real):
            self.add_directory(real, target, what, frozenset())
        elif os.path.isfile(real):
            self.claim(target, what)
            self.inputs.append({"path": target, "url": file_url(real), "type": "FILE"})
        else:
            raise StepError(f"{what}: {real!r} is neither a regular file nor a directory")

    def add_directory(
        self, real: str, target: str, what: str, visiting: frozenset[str], *, mounted: bool = False
    ) -> None:
        """A DIRECTORY input for its files, plus what the store cannot list: symlinks and empty directories.

        `mounted`: the task creates `target` anyway (the output directory), so it needs no volume if empty.
        """
        if real in visiting:
            raise StepError(f"{what}: symbolic links under {real!r} form a loop")
        has_files, links, empty = _scan(real)
        if has_files:
            self.claim(target, what)
            self.inputs.append({"path": target, "url": file_url(real), "type": "DIRECTORY"})
        for rel in empty:  # the store has no directories: an empty one becomes a (fresh, empty) task volume
            if rel == "." and mounted:
                continue
            path = target if rel == "." else posixpath.join(target, rel)
            self.claim(path, what + " (empty directory)")
            self.volumes.append(path)
        for rel in links:
            link_what = f"{what} (symbolic link {rel})"
            inner = os.path.realpath(os.path.join(real, rel))
            if not os.path.exists(inner):
                continue  # dangling: there is nothing to give the task
            inner = self.resolve(inner, link_what)
            path = posixpath.join(target, rel)
            if os.path.isdir(inner):
                self.add_directory(inner, path, link_what, visiting | {real})
            else:
                self.add_input(inner, path, link_what)


def _scan(directory: str) -> tuple[bool, list[str], list[str]]:
    """(holds a file the store lists, relative paths of symlinks, relative paths of empty leaf directories).

    Symlinks are not followed: the store does not list them, so the caller maps each one itself.
    """
    has_files = False
    links: list[str] = []
    empty: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        here = os.path.relpath(dirpath, directory)
        kept: list[str] = []
        linked = files_here = False
        for name in dirnames:  # symlinks to directories are listed here, and not descended into
            if os.path.islink(os.path.join(dirpath, name)):
                links.append(os.path.normpath(os.path.join(here, name)))
                linked = True
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                links.append(os.path.normpath(os.path.join(here, name)))
                linked = True
            elif not name.startswith(PARTIAL_PREFIX) and os.path.isfile(full):
                files_here = True
        has_files = has_files or files_here
        if not kept and not linked and not files_here:
            empty.append(here)
    return has_files, sorted(links), sorted(empty)


def _container_path(host_real: str, mounts: Sequence[tuple[str, str]]) -> str | None:
    """The container path of a host file, through the most specific (host, target) mount holding it."""
    best: tuple[int, str] | None = None
    for host, target in mounts:
        if _within(host_real, host) and (best is None or len(host) > best[0]):
            rel = host_real[len(host):].lstrip("/")
            best = (len(host), posixpath.join(target, rel) if rel else target)
    return best[1] if best else None


def build_task(invocation: DockerInvocation, fds: Mapping[int, str | None], env: Mapping[str, str]) -> dict[str, Any]:
    """The TES task body for a `run`; raises StepError (125) for anything a task must not get."""
    if invocation.command != "run":
        raise StepError(f"'{invocation.command}' does not run a step")
    need = _required(env, (ENV_RUN, ENV_PROJECT, ENV_STORE_ROOT))
    run_id, project = need[ENV_RUN], need[ENV_PROJECT]
    root = os.path.realpath(need[ENV_STORE_ROOT])
    plan = _Plan(root)
    workdir = invocation.workdir
    outdir: tuple[str, str] | None = None  # (host real path, target)
    scratch: list[str] = []
    others: list[tuple[Volume, str]] = []
    for vol in invocation.volumes:
        what = f"volume {vol.host}:{vol.target}"
        if vol.target == SCRATCH:
            scratch.append(vol.target)  # cwltool's fresh, empty tmpdir: never staged, never collected
        elif workdir is not None and vol.target == workdir:
            if outdir is not None:
                raise StepError(f"{what}: a second volume for the working directory {workdir}")
            real = plan.resolve(vol.host, what)
            if not os.path.isdir(real):
                raise StepError(f"{what}: the output directory is not a directory")
            outdir = (real, vol.target)
        else:
            others.append((vol, what))
    for path in [*scratch, *invocation.tmpfs]:
        plan.claim(path, "scratch volume")
        plan.volumes.append(path)

    outputs: list[dict[str, str]] = []
    mounts: list[tuple[str, str]] = []  # (host real, target) that the task can read
    if outdir is not None:
        host, target = outdir
        plan.add_directory(host, target, f"output directory {target}", frozenset(), mounted=True)
        if target not in plan.seen:
            plan.claim(target, "output directory")
        outputs.append({"path": target, "url": file_url(host), "type": "DIRECTORY"})
        mounts.append(outdir)
    for vol, what in others:
        real = plan.resolve(vol.host, what)
        if outdir is not None and _within(vol.target, outdir[1]) and vol.target != outdir[1]:
            rel = vol.target[len(outdir[1]):].lstrip("/")
            if real == os.path.join(outdir[0], rel):
                continue  # already inside the output directory's own input
        plan.add_input(real, vol.target, what)
        mounts.append((real, vol.target))

    executor: dict[str, Any] = {"image": invocation.image, "command": list(invocation.argv)}
    if workdir is not None:
        executor["workdir"] = workdir
    task_env = _task_env(invocation.env, env)
    if task_env:
        executor["env"] = task_env
    # Standard streams: stdin from anything the task reads; stdout/stderr only into the output
    # directory, the one place whose content comes back. Otherwise they stay the shim's own.
    writable = [outdir] if outdir is not None else []
    for fd, key, within in ((0, "stdin", mounts), (1, "stdout", writable), (2, "stderr", writable)):
        host_path = fds.get(fd)
        stream = _container_path(os.path.realpath(host_path), within) if host_path else None
        if stream:
            executor[key] = stream

    command_word = posixpath.basename(invocation.argv[0]) or invocation.argv[0]
    label = invocation.name or command_word
    task: dict[str, Any] = {
        "name": _truncate(f"{label} ({run_id})", NAME_MAX),
        "description": _truncate(_command_line(invocation.argv), DESCRIPTION_MAX),
        "executors": [executor],
        "tags": {"project": project, "wes_run": run_id},
    }
    if invocation.name:  # cwltool's job name, when started through gateway.engines.cwltool_main
        task["tags"]["wes_step"] = _truncate(invocation.name, 4096)
    if plan.inputs:
        task["inputs"] = plan.inputs
    if outputs:
        task["outputs"] = outputs
    if plan.volumes:
        task["volumes"] = plan.volumes
    resources: dict[str, Any] = {}
    if invocation.cpus is not None:
        resources["cpu_cores"] = max(1, -int(-invocation.cpus // 1))
    if invocation.memory_bytes is not None:
        resources["ram_gb"] = invocation.memory_bytes / (1 << 30)
    if resources:
        task["resources"] = resources
    return task


def _task_env(requested: Sequence[tuple[str, str | None]], own: Mapping[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in requested:
        if key.startswith(ENGINE_ENV_PREFIX):
            continue  # the engine's credential and settings never reach a job
        if value is None:
            if key in own:
                result[key] = own[key]
        else:
            result[key] = value
    return result


def _command_line(argv: Sequence[str]) -> str:
    import shlex

    return shlex.join(argv)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------- outcomes


class Outcome(NamedTuple):
    """How the command ends once the task is terminal: exit code and what to write to fd 1 and 2."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


def _exit_status(code: Any, default: int) -> int:
    if not isinstance(code, int) or isinstance(code, bool):
        return default
    if code < 0:
        return min(128 - code, 255)  # killed by a signal, shells say 128+N
    return min(code, 255)  # sys.exit(256) would read as success


def _system_lines(task: Mapping[str, Any]) -> list[str]:
    lines = []
    for log in task.get("logs") or []:
        for entry in log.get("system_logs") or []:
            try:
                parsed = json.loads(entry)
                text = f"{parsed['reason']}: {parsed['detail']}" if isinstance(parsed, dict) else str(entry)
            except (ValueError, KeyError, TypeError):
                text = str(entry)
            lines.append(text)
    return lines


def outcome(task: Mapping[str, Any], *, stdout_mapped: bool = False, stderr_mapped: bool = False) -> Outcome:
    """Exit code and messages for a terminal task (FULL view)."""
    state = task.get("state")
    task_id = task.get("id", "?")
    logs = task.get("logs") or []
    executor_logs = list(logs[-1].get("logs") or []) if logs else []
    last = executor_logs[-1] if executor_logs else {}
    stdout = "" if stdout_mapped else "".join(str(e.get("stdout") or "") for e in executor_logs)
    if state == "COMPLETE":
        stderr = "" if stderr_mapped else "".join(str(e.get("stderr") or "") for e in executor_logs)
        return Outcome(_exit_status(last.get("exit_code"), 0), stdout, stderr)
    if state == "EXECUTOR_ERROR":
        failing = next((e for e in executor_logs if e.get("exit_code") not in (0, None)), last)
        code = _exit_status(failing.get("exit_code"), EXIT_FAILED) or EXIT_FAILED
        tail = str(failing.get("stderr") or "")
        if tail and not tail.endswith("\n"):
            tail += "\n"
        note = f"cwl_step: task {task_id} failed: EXECUTOR_ERROR (exit code {code})\n"
        extra = "".join(f"cwl_step: {line}\n" for line in _system_lines(task))
        return Outcome(code, stdout, tail + note + extra)
    reason = "\n".join(f"cwl_step: {line}" for line in _system_lines(task)) or "cwl_step: (no system log)"
    return Outcome(EXIT_FAILED, stdout, f"cwl_step: task {task_id} ended {state}\n{reason}\n")


# ------------------------------------------------------------------------------- the gateway


class TesClient:
    """The few TES calls the step needs, over http.client (imported on first use)."""

    def __init__(self, base_url: str, token: str, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StepError(f"{ENV_URL}={base_url!r} is not an http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/") + TES_PATH
        self.token = token
        self.retry_seconds = retry_seconds

    def request(self, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT) -> tuple[int, Any]:
        import http.client  # costly, and not needed by --help or the image commands

        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": "tre-gateway-cwl-step",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            payload: Any = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return response.status, payload

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """`request`, retrying connection errors, 5xx and 429 for up to `retry_seconds`."""
        import http.client

        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                status, payload = self.request(method, path, body)
                if status < 500 and status != 429:
                    return status, payload
                problem = f"HTTP {status}: {_message(payload)}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline or _stop_pending():
                raise StepError(f"the gateway at {self.host} did not answer {method} {path}: {problem}", EXIT_FAILED)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def create(self, task: Mapping[str, Any]) -> str:
        status, payload = self.call("POST", "/tasks", task)
        if status >= 400:
            raise StepError(f"the gateway refused the task (HTTP {status}): {_message(payload)}", EXIT_REFUSED)
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
            raise StepError(f"the gateway's answer to the submission has no task id: {payload!r}", EXIT_FAILED)
        task_id: str = payload["id"]
        return task_id

    def get(self, task_id: str, view: str) -> dict[str, Any]:
        status, payload = self.call("GET", f"/tasks/{quote(task_id, safe='')}?view={view}")
        if status >= 400 or not isinstance(payload, dict):
            raise StepError(f"cannot read task {task_id} (HTTP {status}): {_message(payload)}", EXIT_FAILED)
        return payload

    def cancel(self, task_id: str, timeout: float = CANCEL_TIMEOUT) -> bool:
        """One best-effort attempt; True if the gateway accepted it."""
        import http.client

        try:
            status, _ = self.request("POST", f"/tasks/{quote(task_id, safe='')}:cancel", {}, timeout=timeout)
        except (OSError, http.client.HTTPException):
            return False
        return status < 300


def _message(payload: Any) -> str:
    if isinstance(payload, dict) and payload.get("msg"):
        return str(payload["msg"])
    return _truncate(str(payload or "(empty answer)"), 500)


# -------------------------------------------------------------------------------------- main


def _say(text: str) -> None:
    _write(2, f"cwl_step: {text}\n")


def _write(fd: int, text: str) -> None:
    if not text:
        return
    stream = sys.stdout if fd == 1 else sys.stderr
    try:
        stream.flush()
        stream.buffer.write(text.encode("utf-8", "replace"))
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass  # nowhere left to report to


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def _stop_pending() -> bool:
    """A stop signal waits while it is blocked (during the submission): no point in retrying then."""
    return bool(STOP_SIGNALS & signal.sigpending())


def _interrupt(signum: int, _frame: Any) -> NoReturn:
    raise _Interrupted(signum)


def _retry_seconds(env: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(env.get(ENV_RETRY_SECONDS, DEFAULT_RETRY_SECONDS)))
    except ValueError:
        return DEFAULT_RETRY_SECONDS


def _client(env: Mapping[str, str]) -> TesClient:
    need = _required(env, (ENV_URL, ENV_TOKEN))
    return TesClient(need[ENV_URL], need[ENV_TOKEN], _retry_seconds(env))


def _run(invocation: DockerInvocation, env: Mapping[str, str]) -> int:
    _required(env, (ENV_URL, ENV_TOKEN, ENV_RUN, ENV_PROJECT, ENV_STORE_ROOT))
    client = _client(env)
    task = build_task(invocation, inspect_fds(), env)
    executor = task["executors"][0]
    for option in invocation.ignored:
        if option.startswith("--gpus"):
            _say(f"ignored {option}: GPUs are not available to steps")
    parent = os.getppid()
    signals = STOP_SIGNALS
    previous = {s: signal.signal(s, _interrupt) for s in signals}
    task_id: str | None = None
    try:
        # A signal during the submission waits until the task id is known, so that it can be cancelled.
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            task_id = client.create(task)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        if invocation.cidfile:
            _write_cidfile(invocation.cidfile, task_id)
        final = _wait(client, task_id, parent)
    except _Interrupted as stop:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        reason = signal.Signals(stop.args[0]).name if stop.args and stop.args[0] else "cwltool exited"
        if task_id is not None:
            accepted = client.cancel(task_id)
            _say(f"{reason}: task {task_id} " + ("cancelled" if accepted else "could not be cancelled"))
        else:
            _say(f"{reason} before the task was submitted")
        return EXIT_INTERRUPTED
    except StepError as exc:
        if task_id is not None and exc.exit_code == EXIT_FAILED:
            client.cancel(task_id)  # best effort: do not leave a task running that nobody waits for
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    result = outcome(final, stdout_mapped="stdout" in executor, stderr_mapped="stderr" in executor)
    _write(1, result.stdout)
    _write(2, result.stderr)
    return result.exit_code


def _wait(client: TesClient, task_id: str, parent: int) -> dict[str, Any]:
    delay = POLL_FIRST
    while True:
        state = client.get(task_id, "MINIMAL").get("state")
        if state in TERMINAL:
            return client.get(task_id, "FULL")
        if os.getppid() != parent:
            raise _Interrupted(0)  # cwltool is gone (it never signals us, it only kills): stop the task
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)


def _write_cidfile(path: str, task_id: str) -> None:
    try:
        with open(path, "x") as out:
            out.write(task_id)
    except OSError as exc:
        _say(f"cannot write the container id file {path}: {exc}")


def _inspect(invocation: DockerInvocation) -> int:
    names = [a for a in invocation.args if not a.startswith("-")]
    _write(1, json.dumps([{"Id": n, "RepoTags": [n], "Config": {}} for n in names]) + "\n")
    return 0


def _kill(invocation: DockerInvocation, env: Mapping[str, str]) -> int:
    client = _client(env)
    status = 0
    for task_id in (a for a in invocation.args if not a.startswith("-")):
        if client.cancel(task_id, timeout=REQUEST_TIMEOUT):
            _write(1, task_id + "\n")
        else:
            _say(f"could not cancel task {task_id}")
            status = EXIT_FAILED
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    env = os.environ
    try:
        invocation = parse_docker_args(args)
        match invocation.command:
            case "help":
                _write(1, USAGE)
                return 0
            case "version":
                _write(1, "Docker version 20.10.0, build tre-gateway-cwl-step (steps run as TES tasks)\n")
                return 0
            case "inspect":
                return _inspect(invocation)
            case "kill":
                return _kill(invocation, env)
            case "run":
                return _run(invocation, env)
            case _:
                return 0  # pull, images, info, rm, stats: the gateway applies the image policy itself
    except StepError as exc:
        _say(exc.msg)
        return exc.exit_code
    except _Interrupted:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
