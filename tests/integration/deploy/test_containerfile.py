"""The Containerfile, read (no image registry is reachable here, so it is not built by the tests), and the installed
layout it produces, reproduced on this machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.deploy.conftest import CHART, REPO

CONTAINERFILE = REPO / "Containerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comment lines dropped, as the builders do."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "Containerfile ends inside a continued line"
    return result


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(CONTAINERFILE.read_text())


def final_stage(parsed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (k, _) in enumerate(parsed) if k == "FROM")
    return parsed[last_from:]


def test_multi_stage_with_a_builder(parsed: list[tuple[str, str]]) -> None:
    froms = [args for k, args in parsed if k == "FROM"]
    assert len(froms) >= 2
    assert re.search(r"\bAS builder\b", froms[0], re.IGNORECASE)
    runtime = final_stage(parsed)
    assert any(k == "COPY" and args.startswith("--from=builder") for k, args in runtime)
    # The runtime stage installs nothing from PyPI: the virtualenv comes whole from the builder.
    assert not any(k == "RUN" and "pip install" in args for k, args in runtime)
    builder_runs = " ".join(args for k, args in parsed[: len(parsed) - len(runtime)] if k == "RUN")
    assert "pip wheel" in builder_runs and "--no-index" in builder_runs


def test_python_311_slim_base(parsed: list[tuple[str, str]]) -> None:
    (default,) = [args for k, args in parsed if k == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=\S*python:3\.11-slim\S*", default)


def test_runs_as_a_numeric_non_root_user_matching_the_chart(parsed: list[tuple[str, str]]) -> None:
    users = [args for k, args in final_stage(parsed) if k == "USER"]
    assert users, "the runtime stage sets no USER"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER {users[-1]!r} is not numeric (runAsNonRoot cannot check names)"
    uid, gid = int(match.group(1)), int(match.group(2) or match.group(1))
    assert uid > 0 and gid > 0
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (values["runAsUser"], values["runAsGroup"]) == (uid, gid)


def test_no_remote_downloads(parsed: list[tuple[str, str]]) -> None:
    for keyword, args in parsed:
        assert keyword != "ADD", f"ADD {args}: use COPY; ADD can fetch URLs and unpack archives"
        if keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b", args), f"RUN downloads directly: {args}"
            assert "http://" not in args and "https://" not in args, args
    # The only network at build time: the base image, pip's index and apt.
    urls = re.findall(r"https?://\S+", " ".join(args for _, args in parsed))
    assert urls == ["https://pypi.org/simple"]


def test_no_frontend_image_is_fetched() -> None:
    # `# syntax=` makes BuildKit pull a frontend image from Docker Hub: a TRE's builders cannot.
    assert not re.search(r"^#\s*syntax\s*=", CONTAINERFILE.read_text(), re.MULTILINE | re.IGNORECASE)


def test_read_only_root_friendly(parsed: list[tuple[str, str]]) -> None:
    env = " ".join(args for k, args in final_stage(parsed) if k == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "TRE_GATEWAY_DATA_DIR=/var/lib/tre-gateway" in env
    assert not any(k == "VOLUME" for k, _ in parsed), "VOLUME creates anonymous volumes; the chart mounts them"


def test_health_check_or_probe_notes(parsed: list[tuple[str, str]]) -> None:
    if any(k == "HEALTHCHECK" for k, _ in parsed):
        return
    comments = " ".join(line for line in CONTAINERFILE.read_text().splitlines() if line.lstrip().startswith("#"))
    assert "/healthz" in comments and "probe" in comments


def test_oci_labels(parsed: list[tuple[str, str]]) -> None:
    labels = " ".join(args for k, args in final_stage(parsed) if k == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_default_command_is_the_api_factory(parsed: list[tuple[str, str]]) -> None:
    (cmd,) = [args for k, args in final_stage(parsed) if k == "CMD"]
    argv = json.loads(cmd)
    assert argv[:2] == ["gunicorn", "gateway.asgi:app_from_env()"]
    assert "--worker-class=uvicorn.workers.UvicornWorker" in argv
    assert ("EXPOSE", "8080") in final_stage(parsed)


def test_build_context_is_only_what_the_image_needs() -> None:
    lines = [line.strip() for line in (REPO / ".containerignore").read_text().splitlines()]
    assert "*" in lines
    assert {line[1:].rstrip("/") for line in lines if line.startswith("!")} == {
        "pyproject.toml", "README.md", "gateway", "openapi"}
    copied = {source for k, args in instructions(CONTAINERFILE.read_text()) if k == "COPY"
              and not args.startswith("--from") for source in args.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "gateway", "openapi"}


def test_installed_layout_finds_the_openapi_documents(tmp_path: Path) -> None:
    """The image installs the gateway as a wheel (site-packages/gateway). gateway/openapi links to the top-level
    documents in the source tree and is package data, so an installed copy holds real files: reproduce that
    layout (copying through the link, as building the wheel does) and build the app from it alone."""
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "gateway", site / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
    packaged = site / "gateway" / "openapi" / "tes.yaml"
    assert packaged.is_file() and not packaged.parent.is_symlink()
    probe = (
        "import gateway, sys; from gateway.asgi import app_from_env; "
        "assert gateway.__file__.startswith(sys.argv[1]), gateway.__file__; app_from_env()"
    )
    env = {**os.environ, "TRE_GATEWAY_DATA_DIR": str(tmp_path / "data"), "TRE_GATEWAY_AUTH": "dev",
           "TRE_GATEWAY_LOG_JSON": "false", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    # cwd first on sys.path: this copy shadows the repository's editable install.
    built = subprocess.run([sys.executable, "-c", probe, str(site)], cwd=site, env=env, capture_output=True,
                           text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    assert not (site / "openapi").exists()  # nothing beside the package is needed
