"""The CWL step command: docker arguments as cwltool passes them, the TES task built from them, exit codes."""

from __future__ import annotations

import importlib.util
import json
import os
import posixpath
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.engines import cwl_step
from gateway.engines.cwl_step import (
    DockerInvocation,
    StepError,
    Volume,
    build_task,
    inspect_fds,
    outcome,
    parse_docker_args,
)
from tests.unit.engines import cwltool_runs

FIXTURE = Path(__file__).with_name("fixtures") / "cwltool_recordings.json"


def url(path: Path | str) -> str:
    return "file://" + quote(os.path.realpath(path))


def engine_env(root: Path, **extra: str) -> dict[str, str]:
    return {
        "TRE_GATEWAY_ENGINE_URL": "http://127.0.0.1:9",
        "TRE_GATEWAY_ENGINE_TOKEN": "t0ken",
        "TRE_GATEWAY_ENGINE_RUN": "r1",
        "TRE_GATEWAY_ENGINE_PROJECT": "p1",
        "TRE_GATEWAY_ENGINE_STORE_ROOT": str(root),
        **extra,
    }


# ------------------------------------------------------------------------------------ parsing


# A run's folder in the store's work area, as cwltool names it in volumes.
RUN = posixpath.join("/s", "work", "p1", "runs", "r1")

CWLTOOL_ARGV = [
    "run",
    f"--volume={RUN}/out/j_8wnrcs:/WaLKAf",
    f"--volume={RUN}/tmp/3dtqh3kk:/tmp",
    "--volume=/s/inputs/p1/a.txt:/var/lib/cwl/stg19a1/a.txt",
    "--workdir=/WaLKAf",
    "--rm",
    "--env=FOO=bar baz",
    "--env=TMPDIR=/tmp",
    "--env=HOME=/WaLKAf",
    "alpine",
    "echo",
    "hello",
    "/var/lib/cwl/stg19a1/a.txt",
]


def test_cwltool_run_arguments():
    inv = parse_docker_args(CWLTOOL_ARGV)
    assert inv.command == "run"
    assert inv.volumes == (
        Volume(f"{RUN}/out/j_8wnrcs", "/WaLKAf"),
        Volume(f"{RUN}/tmp/3dtqh3kk", "/tmp"),
        Volume("/s/inputs/p1/a.txt", "/var/lib/cwl/stg19a1/a.txt"),
    )
    assert inv.workdir == "/WaLKAf"
    assert inv.env == (("FOO", "bar baz"), ("TMPDIR", "/tmp"), ("HOME", "/WaLKAf"))
    assert inv.image == "alpine"
    assert inv.argv == ("echo", "hello", "/var/lib/cwl/stg19a1/a.txt")
    assert inv.ignored == ("--rm",)


def test_options_after_the_image_belong_to_the_command():
    inv = parse_docker_args(["run", "--rm", "img", "ls", "--all", "-v", "/x:/y"])
    assert inv.image == "img" and inv.argv == ("ls", "--all", "-v", "/x:/y")
    assert parse_docker_args(["run", "--", "img", "true"]).argv == ("true",)


def test_volume_modes_and_other_forms():
    inv = parse_docker_args(
        [
            "run",
            "--volume=/h/a:/c/a:ro",
            "-v",
            "/h/b:/c/b:rw",
            "-v/h/c:/c/c",
            "--mount=type=bind,source=/h/d,target=/c/d,readonly",
            '--mount=type=bind,"source=/h/e,1",target=/c/e',
            "--mount=type=tmpfs,target=/scratch",
            "--tmpfs",
            "/fast:size=1g",
            "-w",
            "/c/a/",
            "-e",
            "A=1",
            "-eB=2",
            "-e=C=3",
            "--env",
            "PASS",
            "img",
            "true",
        ]
    )
    assert inv.volumes == (
        Volume("/h/a", "/c/a", True),
        Volume("/h/b", "/c/b", False),
        Volume("/h/c", "/c/c"),
        Volume("/h/d", "/c/d", True),
        Volume("/h/e,1", "/c/e", False),
    )
    assert inv.tmpfs == ("/scratch", "/fast")
    assert inv.workdir == "/c/a"
    assert inv.env == (("A", "1"), ("B", "2"), ("C", "3"), ("PASS", None))


def test_host_paths_may_contain_colons():
    assert parse_docker_args(["run", "--volume=/h/a:b.txt:/c/a:b.txt", "i", "x"]).volumes == (
        Volume("/h/a:b.txt", "/c/a:b.txt"),
    )


def test_options_docker_would_apply_are_accepted_and_ignored():
    inv = parse_docker_args(
        [
            "run", "-i", "-it", "--read-only=true", "--net=none", "--network", "host", "--log-driver=none",
            "--user=1000:1000", "-u", "0", "--userns=keep-id", "--gpus=1", "--shm-size=1g", "--init",
            "--cpus=1.5", "--memory=3000m", "--name=step-1", "--cidfile=/x/c.cid", "img", "true",
        ]
    )  # fmt: skip
    assert inv.cpus == 1.5
    assert inv.memory_bytes == 3000 << 20
    assert inv.name == "step-1" and inv.cidfile == "/x/c.cid"
    assert "--net=none" in inv.ignored and "--user=1000:1000" in inv.ignored and "-it" in inv.ignored


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512m", 512 << 20), ("1g", 1 << 30), ("2GB", 2 << 30), ("1024", 1024), ("1.5k", 1536)],
)
def test_memory_sizes(value, expected):
    assert parse_docker_args(["run", f"--memory={value}", "i", "x"]).memory_bytes == expected


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--privileged", "img", "x"], "unsupported docker run option '--privileged'"),
        (["run", "--entrypoint=/bin/sh", "img", "x"], "--entrypoint"),
        (["run", "--rm"], "no image"),
        (["run", "img"], "no command"),
        (["run", "--volume=data:/data", "img", "x"], "named volumes"),
        (["run", "--volume=/h:relative", "img", "x"], "HOST:TARGET"),
        (["run", "--volume=/h:/proc/x", "img", "x"], "reserved"),
        (["run", "--volume=/h:/.tre", "img", "x"], "reserved"),
        (["run", "--volume=/h:/a/../b", "img", "x"], "clean absolute"),
        (["run", "--volume=/h:/", "img", "x"], "container root"),
        (["run", "--mount=type=volume,source=v,target=/x", "img", "x"], "bind and tmpfs"),
        (["run", "--cpus=zero", "img", "x"], "--cpus"),
        (["run", "--memory=-1", "img", "x"], "--memory"),
        (["run", "--env==x", "img", "x"], "invalid variable"),
        (["run", "--workdir"], "needs a value"),
        (["load"], "image policy"),
        (["build", "."], "image policy"),
        (["frobnicate"], "unsupported docker command"),
    ],
)
def test_unusable_arguments_are_refused(argv, fragment):
    with pytest.raises(StepError) as err:
        parse_docker_args(argv)
    assert fragment in err.value.msg
    assert err.value.exit_code == 125


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        ([], "help"),
        (["--help"], "help"),
        (["--version"], "version"),
        (["version"], "version"),
        (["pull", "alpine"], "pull"),
        (["image", "pull", "alpine"], "pull"),
        (["images", "--no-trunc", "--all"], "images"),
        (["image", "ls"], "images"),
        (["inspect", "alpine"], "inspect"),
        (["info"], "info"),
        (["kill", "t1"], "kill"),
        (["--quiet", "run", "--nobanner", "img", "true"], "run"),  # udocker's shape
    ],
)
def test_subcommands(argv, command):
    assert parse_docker_args(argv).command == command


# ----------------------------------------------------------------------------- task building


@pytest.fixture
def store(tmp_path):
    """A store root with a run's output directory (empty), scratch directory and one input file."""
    root = tmp_path / "store"
    out = root / "work" / "p1" / "runs" / "r1" / "out" / "o1"
    scratch = root / "work" / "p1" / "runs" / "r1" / "tmp" / "t1"
    data = root / "inputs" / "p1"
    for d in (out, scratch, data):
        d.mkdir(parents=True)
    (data / "a.txt").write_text("a\n")
    return root


def run_args(root: Path, *extra: str, command: tuple[str, ...] = ("cat", "a.txt")) -> DockerInvocation:
    return parse_docker_args(
        [
            "run",
            f"--volume={root / 'work' / 'p1/runs/r1/out/o1'}:/OUT",
            f"--volume={root / 'work' / 'p1/runs/r1/tmp/t1'}:/tmp",
            *extra,
            "--workdir=/OUT",
            "--rm",
            "--env=TMPDIR=/tmp",
            "--env=HOME=/OUT",
            "alpine",
            *command,
        ]
    )


NO_FDS: dict[int, str | None] = {0: None, 1: None, 2: None}


def test_task_for_a_plain_step(store):
    inv = run_args(store, f"--volume={store}/inputs/p1/a.txt:/var/lib/cwl/stg1/a.txt")
    task = build_task(inv, NO_FDS, engine_env(store))
    out = store / "work/p1/runs/r1/out/o1"
    assert task == {
        "name": "cat (r1)",
        "description": "cat a.txt",
        "inputs": [{"path": "/var/lib/cwl/stg1/a.txt", "url": url(store / "inputs/p1/a.txt"), "type": "FILE"}],
        "outputs": [{"path": "/OUT", "url": url(out), "type": "DIRECTORY"}],
        "volumes": ["/tmp"],
        "executors": [
            {
                "image": "alpine",
                "command": ["cat", "a.txt"],
                "workdir": "/OUT",
                "env": {"TMPDIR": "/tmp", "HOME": "/OUT"},
            }
        ],
        "tags": {"project": "p1", "wes_run": "r1"},
    }


def test_urls_are_the_stores_file_urls_of_real_paths(tmp_path, store):
    odd = store / "inputs" / "p1" / "a b%#ü.txt"
    odd.write_text("x")
    link_root = tmp_path / "root-link"
    link_root.symlink_to(store)
    inv = run_args(link_root, f"--volume={link_root}/inputs/p1/a b%#ü.txt:/in/x.txt")
    task = build_task(inv, NO_FDS, engine_env(link_root))
    assert task["inputs"] == [
        {"path": "/in/x.txt", "url": "file://" + quote(str(odd.resolve())), "type": "FILE"}
    ]
    assert "%20" in task["inputs"][0]["url"] and "%25" in task["inputs"][0]["url"]
    assert task["outputs"][0]["url"] == "file://" + quote(str((store / "work/p1/runs/r1/out/o1").resolve()))


def test_output_directory_with_content_is_also_an_input(store):
    out = store / "work/p1/runs/r1/out/o1"
    (out / "script.sh").write_text("echo hi\n")
    (out / "sub" / "empty").mkdir(parents=True)
    task = build_task(run_args(store), NO_FDS, engine_env(store))
    assert task["inputs"] == [{"path": "/OUT", "url": url(out), "type": "DIRECTORY"}]
    assert task["outputs"] == [{"path": "/OUT", "url": url(out), "type": "DIRECTORY"}]
    assert task["volumes"] == ["/tmp", "/OUT/sub/empty"]


def test_an_empty_output_directory_is_only_an_output(store):
    task = build_task(run_args(store), NO_FDS, engine_env(store))
    assert "inputs" not in task
    assert task["volumes"] == ["/tmp"]


def test_files_already_in_the_output_directory_are_not_mounted_again(store):
    out = store / "work/p1/runs/r1/out/o1"
    (out / "staged.txt").write_text("x")
    inv = run_args(
        store,
        f"--volume={out}/staged.txt:/OUT/staged.txt",
        f"--volume={store}/inputs/p1/a.txt:/OUT/a.txt",
    )
    task = build_task(inv, NO_FDS, engine_env(store))
    assert task["inputs"] == [
        {"path": "/OUT", "url": url(out), "type": "DIRECTORY"},
        {"path": "/OUT/a.txt", "url": url(store / "inputs/p1/a.txt"), "type": "FILE"},
    ]


def test_directories_empty_directories_and_symlinks(store):
    d = store / "inputs/p1/d"
    (d / "sub").mkdir(parents=True)
    (d / "hollow" / "deeper").mkdir(parents=True)
    (d / "sub" / "f").write_text("f")
    (d / "sub" / "link").symlink_to("../../a.txt")
    (d / "dirlink").symlink_to(store / "inputs/p1/other")
    (store / "inputs/p1/other").mkdir()
    (store / "inputs/p1/other/g").write_text("g")
    (d / "dangling").symlink_to("nowhere")
    (d / ".part-abc").write_text("half written")
    (store / "inputs/p1/nothing").mkdir()
    inv = run_args(store, f"--volume={d}:/in/d", f"--volume={store}/inputs/p1/nothing:/in/nothing")
    task = build_task(inv, NO_FDS, engine_env(store))
    assert task["inputs"] == [
        {"path": "/in/d", "url": url(d), "type": "DIRECTORY"},
        {"path": "/in/d/dirlink", "url": url(store / "inputs/p1/other"), "type": "DIRECTORY"},
        {"path": "/in/d/sub/link", "url": url(store / "inputs/p1/a.txt"), "type": "FILE"},
    ]
    assert task["volumes"] == ["/tmp", "/in/d/hollow/deeper", "/in/nothing"]


def test_environment_passes_through_but_never_the_engines_own(store):
    inv = run_args(store, "--env=TRE_GATEWAY_ENGINE_TOKEN=leak", "--env=LANG", "--env=MISSING")
    task = build_task(inv, NO_FDS, engine_env(store, LANG="C.UTF-8"))
    assert task["executors"][0]["env"] == {"LANG": "C.UTF-8", "TMPDIR": "/tmp", "HOME": "/OUT"}


def test_resources_from_cpus_and_memory(store):
    task = build_task(run_args(store, "--cpus=1.5", "--memory=3000m"), NO_FDS, engine_env(store))
    assert task["resources"] == {"cpu_cores": 2, "ram_gb": 3000 / 1024}
    assert "resources" not in build_task(run_args(store), NO_FDS, engine_env(store))


def test_name_and_description_are_bounded(store):
    long = ("x" * 3000, "y" * 3000)
    task = build_task(run_args(store, "--name=my step", command=("/usr/bin/tool", *long)), NO_FDS, engine_env(store))
    assert task["name"] == "my step (r1)"
    assert task["tags"] == {"project": "p1", "wes_run": "r1", "wes_step": "my step"}
    assert len(task["description"]) == 4096 and task["description"].startswith("/usr/bin/tool xxx")
    assert build_task(run_args(store, command=("/usr/bin/tool",)), NO_FDS, engine_env(store))["name"] == "tool (r1)"


def test_standard_streams_map_through_the_volumes(store):
    out = store / "work/p1/runs/r1/out/o1"
    (store / "inputs/p1/d").mkdir()
    (store / "inputs/p1/d/in.txt").write_text("x")
    inv = run_args(store, f"--volume={store}/inputs/p1/d:/in/d")
    fds = {0: str(store / "inputs/p1/d/in.txt"), 1: str(out / "sub/o.txt"), 2: str(out / "e.txt")}
    ex = build_task(inv, fds, engine_env(store))["executors"][0]
    assert (ex["stdin"], ex["stdout"], ex["stderr"]) == ("/in/d/in.txt", "/OUT/sub/o.txt", "/OUT/e.txt")


def test_standard_streams_outside_the_task_stay_the_commands_own(tmp_path, store):
    log = tmp_path / "engine.log"
    log.write_text("")
    inv = run_args(store, f"--volume={store}/inputs/p1/a.txt:/in/a.txt")
    fds = {0: str(tmp_path / "elsewhere.txt"), 1: str(store / "inputs/p1/a.txt"), 2: str(log)}
    ex = build_task(inv, fds, engine_env(store))["executors"][0]
    assert not {"stdin", "stdout", "stderr"} & ex.keys()  # stdout into an input would be lost


@pytest.mark.parametrize("where", ["file", "symlink", "outdir", "relative-escape"])
def test_host_paths_outside_the_store_are_refused(tmp_path, store, where):
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    if where == "file":
        inv = run_args(store, f"--volume={secret}:/in/secret.txt")
    elif where == "symlink":
        (store / "inputs/p1/innocent.txt").symlink_to(secret)
        inv = run_args(store, f"--volume={store}/inputs/p1/innocent.txt:/in/x.txt")
    elif where == "outdir":
        inv = parse_docker_args(["run", f"--volume={tmp_path}:/OUT", "--workdir=/OUT", "img", "true"])
    else:
        inv = run_args(store, f"--volume={store}/inputs/../../secret.txt:/in/x.txt")
    with pytest.raises(StepError) as err:
        build_task(inv, NO_FDS, engine_env(store))
    assert "outside the object store" in err.value.msg and err.value.exit_code == 125


def test_symlinks_inside_directories_leading_out_are_refused(tmp_path, store):
    (tmp_path / "secret.txt").write_text("s")
    (store / "inputs/p1/d").mkdir()
    (store / "inputs/p1/d/f").write_text("f")
    (store / "inputs/p1/d/escape").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(StepError, match="outside the object store"):
        build_task(run_args(store, f"--volume={store}/inputs/p1/d:/in/d"), NO_FDS, engine_env(store))


def test_scratch_may_live_anywhere(tmp_path, store):
    inv = parse_docker_args(
        ["run", f"--volume={store / 'work' / 'p1/runs/r1/out/o1'}:/OUT", f"--volume={tmp_path}:/tmp", "--workdir=/OUT",
         "img", "true"]
    )  # fmt: skip
    assert build_task(inv, NO_FDS, engine_env(store))["volumes"] == ["/tmp"]


def test_other_refusals(store):
    with pytest.raises(StepError, match="already used"):
        build_task(
            run_args(store, f"--volume={store}/inputs/p1/a.txt:/in/a", f"--volume={store}/inputs/p1/a.txt:/in/a"),
            NO_FDS,
            engine_env(store),
        )
    with pytest.raises(StepError, match="does not exist"):
        build_task(run_args(store, f"--volume={store}/inputs/p1/gone:/in/a"), NO_FDS, engine_env(store))
    with pytest.raises(StepError, match="TRE_GATEWAY_ENGINE_STORE_ROOT"):
        build_task(run_args(store), NO_FDS, {"TRE_GATEWAY_ENGINE_RUN": "r", "TRE_GATEWAY_ENGINE_PROJECT": "p"})


def test_inspect_fds(tmp_path):
    target = tmp_path / "f.txt"
    with open(target, "w") as f:
        read, write = os.pipe()
        try:
            found = inspect_fds([f.fileno(), read])
        finally:
            os.close(read)
            os.close(write)
        assert found == {f.fileno(): str(target.resolve()), read: None}
        target.unlink()
        assert inspect_fds([f.fileno()]) == {f.fileno(): None}
    with open(os.devnull) as null:
        assert inspect_fds([null.fileno()]) == {null.fileno(): None}


# ------------------------------------------------------------------------ cwltool recordings


def _materialise(recording: dict, base: Path) -> dict:
    """Recreate the recorded store tree under `base`; return the recording with {WORK} and {BASE} replaced."""
    encoded = json.dumps(recording).replace("{WORK}", str(base / "store" / "work"))
    text = json.loads(encoded.replace("{BASE}", str(base)))
    root = base / "store"
    for kind, rel, *link in sorted(text["tree"], key=lambda e: (e[0] == "l", e[1])):
        path = root / rel
        if kind == "d":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "f":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(link[0])
    return text


RECORDINGS = json.loads(FIXTURE.read_text())["recordings"]


@pytest.mark.parametrize(
    "recording", RECORDINGS, ids=[f"{r['job']}-{i}-{r['argv'][-2]}" for i, r in enumerate(RECORDINGS)]
)
def test_recorded_cwltool_invocations_build_the_recorded_tasks(tmp_path, recording):
    base = Path(os.path.realpath(tmp_path))
    rec = _materialise(recording, base)
    env = engine_env(base / "store")
    fds = {int(k): v for k, v in rec["fds"].items()}
    if "error" in rec:
        with pytest.raises(StepError) as err:
            build_task(parse_docker_args(rec["argv"]), fds, env)
        assert err.value.msg == rec["error"]
    else:
        assert build_task(parse_docker_args(rec["argv"]), fds, env) == rec["task"]


def options(argv):
    """The option names before the image."""
    names = set()
    for arg in argv[1:]:
        if not arg.startswith("-"):
            break
        names.add(arg.split("=", 1)[0])
    return names


def test_recordings_cover_the_shapes_that_matter():
    assert {name for r in RECORDINGS for name in options(r["argv"])} == {"--volume", "--workdir", "--rm", "--env"}
    executors = [r["task"]["executors"][0] for r in RECORDINGS if "task" in r]
    assert any("stdin" in e and "stdout" in e and "stderr" in e for e in executors)
    assert any(r.get("error") for r in RECORDINGS)


needs_cwltool = pytest.mark.skipif(importlib.util.find_spec("cwltool") is None, reason="cwltool is not installed")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One real cwltool run of a workflow using every shape, and one refused for its input's location."""
    base = Path(os.path.realpath(tmp_path_factory.mktemp("cwltool")))
    return base, cwltool_runs.record_all(base)


@needs_cwltool
def test_live_cwltool_steps(live):
    base, results = live
    root = base / "store"
    data = root / "inputs/p1/data"
    result = results["all"]
    assert result["returncode"] == 0, result["stderr"]
    records = result["records"]
    assert len(records) == 10  # echo, count, iwd, dirs, 3 x say, 3 x count of what was said
    for r in records:
        argv = r["argv"]
        assert argv[0] == "run" and options(argv) == {"--volume", "--workdir", "--rm", "--env"}
        task = r["task"]
        workdir = task["executors"][0]["workdir"]
        out_vol = next(a for a in argv if a.startswith("--volume=") and a.endswith(":" + workdir))
        out_host = out_vol[len("--volume="): -len(workdir) - 1]
        run_dir = root / "work" / "p1/runs/r1"
        assert out_host.startswith(f"{run_dir}/out/")
        assert task["outputs"] == [{"path": workdir, "url": url(out_host), "type": "DIRECTORY"}]
        assert task["volumes"][0] == "/tmp"
        assert any(a.startswith(f"--volume={run_dir}/tmp/") and a.endswith(":/tmp") for a in argv)
        assert task["tags"] == {"project": "p1", "wes_run": "r1"}
        assert task["executors"][0]["env"]["HOME"] == workdir and task["executors"][0]["env"]["TMPDIR"] == "/tmp"

    tasks = [r["task"] for r in records]

    def described(test):
        return [t for t in tasks if test(t["description"])]

    (echo,) = described(lambda d: d.startswith("echo hello "))
    primary, secondary = (i for i in echo["inputs"] if i["type"] == "FILE")
    assert primary["url"] == url(data / "a.txt") and secondary["url"] == url(data / "a.txt.idx")
    assert posixpath.dirname(primary["path"]) == posixpath.dirname(secondary["path"])
    assert echo["executors"][0]["command"] == ["echo", "hello", primary["path"]]
    assert echo["executors"][0]["stdout"] == echo["executors"][0]["workdir"] + "/out.txt"
    assert "stdin" not in echo["executors"][0] and "stderr" not in echo["executors"][0]

    counts = described(lambda d: d == "wc -l")
    assert len(counts) == 4
    for count in counts:
        ex = count["executors"][0]
        source = next(i for i in count["inputs"] if i["path"] == ex["stdin"])
        assert source["type"] == "FILE"
        assert (ex["stdout"], ex["stderr"]) == (ex["workdir"] + "/count.txt", ex["workdir"] + "/err.txt")
    said = sorted(next(i for i in t["inputs"] if i["path"] == t["executors"][0]["stdin"])["url"] for t in counts)
    says = described(lambda d: d in ("echo a", "echo b", "echo c"))
    assert len(says) == 3
    assert sorted(
        t["outputs"][0]["url"] + "/said.txt" for t in says
    ) == sorted(u for u in said if u != url(data / "a.txt"))  # each scattered count reads what one echo said

    (iwd,) = described(lambda d: d == "sh script.sh")
    workdir = iwd["executors"][0]["workdir"]
    assert iwd["executors"][0]["image"] == "debian:12"
    assert iwd["executors"][0]["env"]["FOO"] == "bar baz"
    assert "resources" not in iwd  # cwltool passes no limits to a user-space docker command
    inputs = {i["path"]: i for i in iwd["inputs"]}
    assert inputs[workdir]["type"] == "DIRECTORY"  # script.sh, rw.txt and dcopy/ were written into it
    assert inputs[workdir + "/ro.txt"]["url"] == url(data / "ro.txt")
    assert inputs[workdir + "/dlink"] == {"path": workdir + "/dlink", "url": url(data / "d2"), "type": "DIRECTORY"}
    assert inputs["/etc/tool.conf"]["url"].startswith(url(root / "work/p1/runs/r1/tmp") + "/")
    assert workdir + "/dcopy/empty" in iwd["volumes"]

    (ls,) = described(lambda d: d.startswith("ls "))
    listed = ls["executors"][0]["command"][1:]
    assert {i["path"]: i["url"] for i in ls["inputs"] if i["path"] != ls["executors"][0]["workdir"]} == {
        listed[0]: url(data / "d"),
        listed[0] + "/link.txt": url(data / "ro.txt"),
    }
    assert ls["volumes"] == ["/tmp", listed[0] + "/empty", listed[1]]


@needs_cwltool
def test_live_cwltool_step_outside_the_store_fails(live):
    _, results = live
    result = results["outside"]
    assert result["returncode"] != 0
    (record,) = result["records"]
    assert "outside the object store" in record["error"]
    assert "exited with status: 125" in result["stderr"]


@needs_cwltool
def test_live_cwltool_through_our_entry_point_passes_names_and_resources(live):
    _, results = live
    result = results["wrapped"]
    assert result["returncode"] == 0, result["stderr"]
    tasks = sorted((r["task"] for r in result["records"]), key=lambda t: t["tags"]["wes_step"])
    assert [t["tags"]["wes_step"] for t in tasks] == ["say", "say_2"]
    assert [t["name"] for t in tasks] == ["say (r1)", "say_2 (r1)"]
    assert all(t["resources"] == {"cpu_cores": 1, "ram_gb": 1000 / 1024} for t in tasks)
    assert options(result["records"][0]["argv"]) == {
        "--volume", "--workdir", "--rm", "--env", "--name", "--cpus", "--memory"
    }


# ---------------------------------------------------------------------------------- outcomes


def full(state, *logs, system_logs=()):
    return {"id": "t1", "state": state, "logs": [{"logs": list(logs), "system_logs": list(system_logs)}]}


def test_complete_exits_with_the_executor_code_and_passes_logs_on():
    result = outcome(full("COMPLETE", {"exit_code": 0, "stdout": "out\n", "stderr": "warning\n"}))
    assert result == cwl_step.Outcome(0, "out\n", "warning\n")
    mapped = outcome(full("COMPLETE", {"exit_code": 0, "stdout": "o", "stderr": "e"}), stdout_mapped=True,
                     stderr_mapped=True)  # fmt: skip
    assert mapped == cwl_step.Outcome(0, "", "")
    assert outcome({"id": "t1", "state": "COMPLETE"}).exit_code == 0


@pytest.mark.parametrize(("code", "expected"), [(3, 3), (None, 1), (0, 1), (-9, 137), (300, 255), (True, 1)])
def test_executor_error_exit_codes(code, expected):
    result = outcome(full("EXECUTOR_ERROR", {"exit_code": code, "stderr": "boom"}), stderr_mapped=True)
    assert result.exit_code == expected
    assert result.stderr.startswith("boom\n")  # printed even when mapped: the step failed
    assert "EXECUTOR_ERROR" in result.stderr


def test_the_failing_executor_is_reported():
    result = outcome(full("EXECUTOR_ERROR", {"exit_code": 4, "stderr": "first"}, {"exit_code": 0, "stderr": "x"}))
    assert result.exit_code == 4 and result.stderr.startswith("first")


@pytest.mark.parametrize("state", ["SYSTEM_ERROR", "CANCELED", "PREEMPTED"])
def test_system_errors_and_cancellations_exit_1_with_the_reason(state):
    log = json.dumps({"reason": "backend_error", "detail": "podman run failed"})
    result = outcome(full(state, system_logs=[log, "plain text"]))
    assert result.exit_code == 1
    assert state in result.stderr
    assert "backend_error: podman run failed" in result.stderr and "plain text" in result.stderr


# ------------------------------------------------------------------------------- main (local)


def test_main_image_commands_succeed_without_a_gateway(monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("TRE_GATEWAY_ENGINE_"):
            monkeypatch.delenv(name)
    assert cwl_step.main(["pull", "alpine"]) == 0
    assert cwl_step.main(["images"]) == 0
    assert cwl_step.main(["inspect", "alpine"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"Id": "alpine", "RepoTags": ["alpine"], "Config": {}}]
    assert cwl_step.main(["--version"]) == 0
    assert "Docker version" in capsys.readouterr().out
    assert cwl_step.main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_main_refusals_exit_125(monkeypatch, capsys, store):
    for name in list(os.environ):
        if name.startswith("TRE_GATEWAY_ENGINE_"):
            monkeypatch.delenv(name)
    assert cwl_step.main(["load"]) == 125
    assert "image policy" in capsys.readouterr().err
    assert cwl_step.main(["run", "img", "true"]) == 125
    err = capsys.readouterr().err
    assert "TRE_GATEWAY_ENGINE_URL" in err and "TRE_GATEWAY_ENGINE_STORE_ROOT" in err
    for key, value in engine_env(store).items():
        monkeypatch.setenv(key, value)
    assert cwl_step.main(["run", "--volume=/etc:/etc", "img", "true"]) == 125
    assert "outside the object store" in capsys.readouterr().err


def test_the_command_starts_light():
    """Started once per step: no gateway modules, no HTTP machinery until a task is submitted."""
    probe = (
        "import sys; before = set(sys.modules); import gateway.engines.cwl_step as m; m.main(['--help']); "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True,
        cwd=cwltool_runs.REPO, env={**os.environ, "PYTHONPATH": str(cwltool_runs.REPO)},
    )  # fmt: skip
    loaded = done.stdout.split("\n")[-2].split()
    assert {m for m in loaded if m.startswith("gateway")} == {"gateway", "gateway.engines", "gateway.engines.cwl_step"}
    assert not {"http.client", "ssl", "urllib.request", "email", "dataclasses", "csv"} & set(loaded)
