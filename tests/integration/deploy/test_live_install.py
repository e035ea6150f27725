"""The chart on a real cluster (kind, k3d or any other): helm install, one TES task through py-tes, helm uninstall.

Runs only when KUBECONFIG is set, plus the TRE_GATEWAY_TEST_HELM_* variables below (docs/deployment.md, "Trying
the chart on kind or k3d"). Everything else in tests/integration/deploy needs no cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import tes

from gateway.adapters.auth.jwt_tokens import mint_dev_token
from tests.integration.deploy.conftest import CHART, Helm

RELEASE = "tre-gateway"
REQUIRED = {
    "TRE_GATEWAY_TEST_HELM_IMAGE": "the gateway image (repository:tag or repository@sha256:...) the nodes can pull",
    "TRE_GATEWAY_TEST_HELM_DATABASE_URL": "a PostgreSQL URL reachable from the pods",
    "TRE_GATEWAY_TEST_HELM_S3_ENDPOINT_URL": "the S3 endpoint as the pods reach it",
    "TRE_GATEWAY_TEST_HELM_S3_BUCKET": "an existing bucket",
    "TRE_GATEWAY_TEST_HELM_S3_ACCESS_KEY_ID": "S3 access key id",
    "TRE_GATEWAY_TEST_HELM_S3_SECRET_ACCESS_KEY": "S3 secret access key",
}
MISSING = [name for name in REQUIRED if not os.environ.get(name)]

pytestmark = [
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                       reason="needs a real cluster: set KUBECONFIG (and TRE_GATEWAY_TEST_HELM_*, docs/deployment.md)"),
    pytest.mark.skipif(bool(os.environ.get("KUBECONFIG") and MISSING),
                       reason=f"KUBECONFIG is set but these are not: {', '.join(MISSING)} (docs/deployment.md)"),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH"),
]


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def kubectl(*args: str, stdin: str | None = None, timeout: float = 120) -> str:
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def split_image(image: str) -> dict[str, str]:
    if "@" in image:
        repository, digest = image.split("@", 1)
        return {"repository": repository, "tag": "", "digest": digest}
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = image, "latest"
    return {"repository": repository, "tag": tag, "digest": ""}


def port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


def secret(name: str, namespace: str, data: dict[str, str]) -> str:
    """A Secret manifest, given to kubectl on stdin: no secret value on a command line."""
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                       "metadata": {"name": name, "namespace": namespace}, "stringData": data})


@pytest.fixture
def namespace() -> Iterator[str]:
    name = "tre-gw-test-" + secrets.token_hex(4)
    kubectl("create", "namespace", name)
    # Every pod the chart and the backend create must meet the restricted Pod Security Standard.
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def test_helm_install_runs_a_task(helm: Helm, namespace: str, tmp_path: Path) -> None:
    image = env("TRE_GATEWAY_TEST_HELM_IMAGE")
    database_url = env("TRE_GATEWAY_TEST_HELM_DATABASE_URL")
    endpoint = env("TRE_GATEWAY_TEST_HELM_S3_ENDPOINT_URL")
    bucket = env("TRE_GATEWAY_TEST_HELM_S3_BUCKET")
    s3_keys = {"access_key_id": env("TRE_GATEWAY_TEST_HELM_S3_ACCESS_KEY_ID"),
               "secret_access_key": env("TRE_GATEWAY_TEST_HELM_S3_SECRET_ACCESS_KEY")}
    dev_secret = secrets.token_urlsafe(32)
    kubectl("apply", "-f", "-", stdin="\n---\n".join([
        secret("tre-gateway-database", namespace, {"url": database_url}),
        secret("tre-gateway-s3", namespace, s3_keys),
        secret("tre-gateway-stager-s3", namespace, s3_keys),
        secret("tre-gateway-dev-jwt", namespace, {"secret": dev_secret}),
    ]))
    tcp = {"protocol": "TCP"}
    values = {
        "image": {**split_image(image), "pullPolicy": "IfNotPresent"},
        "auth": {"mode": "dev", "dev": {"secretName": "tre-gateway-dev-jwt", "key": "secret"}},
        "objectStore": {"s3": {"endpointUrl": endpoint, "region": env("TRE_GATEWAY_TEST_HELM_S3_REGION"),
                               "bucket": bucket}},
        "imagePolicy": {"alpine": env("TRE_GATEWAY_TEST_HELM_EXECUTOR_IMAGE", image)},
        "egress": {"review": "automatic"},
        "api": {"replicas": 1},
        "worker": {"replicas": 1},
        "networkPolicy": {
            "database": {"to": [], "ports": [{"port": port_of(database_url, 5432), **tcp}]},
            "objectStore": {"to": [], "ports": [{"port": port_of(endpoint, 443), **tcp}]},
        },
    }
    values_file = tmp_path / "values.json"  # JSON is YAML
    values_file.write_text(json.dumps(values))
    extra = ["-f", env("TRE_GATEWAY_TEST_HELM_VALUES")] if env("TRE_GATEWAY_TEST_HELM_VALUES") else []
    helm_env = {**helm.env, "KUBECONFIG": os.environ["KUBECONFIG"]}

    def run_helm(*args: str) -> None:
        result = subprocess.run([str(helm.binary), *args], env=helm_env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"

    run_helm("install", RELEASE, str(CHART), "-n", namespace, "-f", str(values_file), *extra)
    forward = None
    try:
        kubectl("-n", namespace, "wait", "--for=condition=Available", f"deployment/{RELEASE}-api",
                "--timeout=300s", timeout=330)
        forward = subprocess.Popen(["kubectl", "-n", namespace, "port-forward", f"service/{RELEASE}", ":80"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = forward.stdout.readline() if forward.stdout else ""  # Forwarding from 127.0.0.1:PORT -> 8080
        assert line.startswith("Forwarding from 127.0.0.1:"), f"kubectl port-forward: {line}"
        base_url = "http://127.0.0.1:" + line.split("127.0.0.1:", 1)[1].split()[0]
        token = env("TRE_GATEWAY_TEST_HELM_TOKEN") or mint_dev_token(dev_secret, "alice", ["p1"], ["researcher"])
        client = tes.HTTPClient(base_url, token=token, timeout=30)
        task_id = client.create_task(tes.Task(
            name="helm-live",
            inputs=[tes.Input(path="/in/words.txt", content="alpha\nbeta\n")],
            outputs=[tes.Output(path="/out/sorted.txt", url=f"s3://{bucket}/released/p1/{namespace}.txt")],
            executors=[tes.Executor(image="alpine",
                                    command=["sh", "-c", "sort -r /in/words.txt | tee /out/sorted.txt"])],
        ))
        client.wait(task_id, timeout=600)
        task = client.get_task(task_id, view="FULL")
        assert task.state == "COMPLETE", f"task {task_id} ended {task.state}: {task.logs and task.logs[-1].system_logs}"
        assert task.logs[-1].logs[0].stdout == "beta\nalpha\n"
        assert [o.url for o in task.logs[-1].outputs] == [f"s3://{bucket}/released/p1/{namespace}.txt"]
    finally:
        if forward is not None:
            forward.terminate()
            forward.wait(10)
        run_helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "120s")
