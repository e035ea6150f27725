"""The Helm chart, checked with a real Helm 3.17 and the real Kubernetes schemas (kubernetes-validate).

Profiles: the chart's defaults and values-production.example.yaml. Nothing here needs a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.adapters.compute.k8s.manifests import (
    CREDENTIALS_DIR,
    LABEL_ROLE,
    NETWORK_POLICY_NAME,
    ROLE_EXECUTOR,
    ROLE_STAGER,
    PodSettings,
    is_deny_all,
)
from gateway.cli import parser as cli_parser
from gateway.config import ENV_PREFIX, Settings
from tests.integration.deploy.conftest import CHART, MANIFESTS, NAMESPACE, PROFILES, RELEASE, REPO, Helm

Objects = list[dict[str, Any]]

KUBERNETES_VERSIONS = ["1.29", "1.33"]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}
# Kinds from CRDs kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# The Kubernetes backend's sources: the Role must grant exactly the API calls they make.
BACKEND_SOURCES = [REPO / "gateway" / "adapters" / "compute" / "kubernetes.py",
                   *sorted((REPO / "gateway" / "adapters" / "compute" / "k8s").glob("*.py"))]
API_CALL = re.compile(r"\.(create|read|list|delete|deletecollection|patch|replace)_namespaced_([a-z_]+?)"
                      r"(?:_with_http_info)?\b")
API_VERB = {"create": "create", "read": "get", "list": "list", "delete": "delete",
            "deletecollection": "deletecollection", "patch": "patch", "replace": "update"}
API_RESOURCE = {
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "persistent_volume_claim": ("", "persistentvolumeclaims"),
    "network_policy": ("networking.k8s.io", "networkpolicies"),
    "secret": ("", "secrets"),
    "config_map": ("", "configmaps"),
}
EXECUTOR_SELECTOR = {LABEL_ROLE: ROLE_EXECUTOR}
STAGER_SELECTOR = {LABEL_ROLE: ROLE_STAGER}


def of_kind(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] not in WORKLOAD_KINDS:
            continue
        if o["kind"] == "Pod":
            spec = o["spec"]
        elif o["kind"] == "CronJob":
            spec = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            spec = o["spec"]["template"]["spec"]
        yield f"{o['kind']}/{o['metadata']['name']}", spec


def configmap_env(objects: Objects) -> dict[str, str]:
    return dict(one(objects, "ConfigMap", RELEASE)["data"])


# ---------------------------------------------------------------------------------------------------- helm lint


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_helm_lint_strict_passes(helm: Helm, name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in PROFILES[name]:
        args += ["-f", str(path)]
    result = helm.run(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# ---------------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_objects_are_valid_kubernetes(rendered: Objects, version: str, kubernetes_validate: Any) -> None:
    assert version in {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    unvalidated = []
    for obj in rendered:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            unvalidated.append(obj)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is not valid Kubernetes {version}: {exc.message} at {list(exc.absolute_path)}")
    for obj in unvalidated:
        # ServiceMonitor (Prometheus Operator CRD): the fields the operator needs, nothing misspelled.
        assert set(obj["spec"]) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
        assert obj["spec"]["selector"]["matchLabels"]
        for endpoint in obj["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
            assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"


OPTION_SETS = {
    "dev-auth": {"auth.mode": "dev", "auth.dev.secretName": "dev-jwt"},
    "no-auth": {"auth.mode": "none"},
    "oidc-key-file": {"auth.oidc.publicKeySecret.name": "idp-key", "auth.oidc.jwksUrl": "https://idp.example/jwks"},
    "trusted-ca-and-s3-endpoint": {"trustedCA.configMapName": "tre-ca", "objectStore.s3.endpointUrl":
                                   "https://s3.tre.example", "objectStore.s3.prefix": "gw/"},
    "everything-off": {"networkPolicy.enabled": "false", "rbac.create": "false", "migrations.enabled": "false",
                       "api.podDisruptionBudget.enabled": "false", "worker.podDisruptionBudget.enabled": "false",
                       "metrics.podAnnotations": "false"},
    "ingress-without-tls": {"ingress.enabled": "true", "ingress.className": "nginx"},
    "digest-and-pull-secret": {"image.digest": "sha256:" + "a" * 64, "imagePullSecrets[0].name": "regcred"},
    "executor-namespace": {"executor.namespace": "tre-executors", "worker.replicas": "0"},
    "kubernetes-tuned": {"executor.kubernetes.storageClass": "fast-ssd", "executor.kubernetes.nodeSelector.pool": "x",
                         "networkPolicy.stager.objectStore.to[0].ipBlock.cidr": "203.0.113.7/32",
                         "networkPolicy.stager.objectStore.ports[0].port": "9000"},
}


@pytest.mark.parametrize("option", sorted(OPTION_SETS))
def test_option_combinations_render_valid_kubernetes(helm: Helm, option: str, kubernetes_validate: Any) -> None:
    objects = helm.objects([], OPTION_SETS[option])
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{option}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc.message}")
    assert_locked_down(objects)


def test_every_namespaced_object_names_its_namespace(rendered: Objects) -> None:
    # The plain manifests must land in the right namespace without `kubectl -n`.
    for obj in rendered:
        assert obj["metadata"].get("namespace"), f"{obj['kind']}/{obj['metadata']['name']} has no namespace"


def test_no_cluster_scoped_rights(rendered: Objects) -> None:
    kinds = {o["kind"] for o in rendered}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "PodSecurityPolicy", "Namespace"}


# ---------------------------------------------------------------------------------------------------- pod security


def test_every_pod_template_is_locked_down(rendered: Objects) -> None:
    templates = list(pod_templates(rendered))
    assert {name for name, _ in templates} == {"Deployment/tre-gateway-api", "Deployment/tre-gateway-worker"}
    assert_locked_down(rendered)


def assert_locked_down(objects: Objects) -> None:
    for name, spec in pod_templates(objects):
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert pod_sc.get("runAsUser", 0) > 0, name
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{name}: {flag}"
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, f"{name}: hostPath volume {volume['name']}"
        containers = spec.get("initContainers", []) + spec["containers"]
        for c in containers:
            where = f"{name} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert not sc.get("privileged"), where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("seccompProfile", pod_sc.get("seccompProfile")) == {"type": "RuntimeDefault"}, where
            assert c["resources"]["limits"]["memory"], where
            assert c["resources"]["requests"]["cpu"], where
            assert not c.get("ports") or all("hostPort" not in p for p in c["ports"]), where


def test_only_the_workers_get_a_service_account_token(rendered: Objects) -> None:
    for sa in of_kind(rendered, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False, sa["metadata"]["name"]
    api = one(rendered, "Deployment", "tre-gateway-api")["spec"]["template"]["spec"]
    worker = one(rendered, "Deployment", "tre-gateway-worker")["spec"]["template"]["spec"]
    assert api["automountServiceAccountToken"] is False
    assert worker["automountServiceAccountToken"] is True
    assert api["serviceAccountName"] == "tre-gateway-api"
    assert worker["serviceAccountName"] == "tre-gateway-worker"


def test_writable_paths_are_volumes(rendered: Objects) -> None:
    # Read-only root filesystem: /tmp and the data directory must be mounted in every gateway container.
    data_dir = configmap_env(rendered)["TRE_GATEWAY_DATA_DIR"]
    for name, spec in pod_templates(rendered):
        for c in spec.get("initContainers", []) + spec["containers"]:
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert {"/tmp", data_dir} <= mounts, f"{name} {c['name']}"


# ---------------------------------------------------------------------------------------------------- commands


def test_containers_run_the_documented_commands(rendered: Objects) -> None:
    api = one(rendered, "Deployment", "tre-gateway-api")["spec"]["template"]["spec"]
    worker = one(rendered, "Deployment", "tre-gateway-worker")["spec"]["template"]["spec"]
    (server,) = api["containers"]
    assert server["command"] == ["gunicorn"]
    assert server["args"][0] == "gateway.asgi:app_from_env()"
    assert "--worker-class=uvicorn.workers.UvicornWorker" in server["args"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert [c["command"] for c in api["initContainers"]] == [["tre-gateway", "migrate"]]
    assert [c["command"] for c in worker["containers"]] == [["tre-gateway", "worker"]]
    # Those sub-commands exist in this gateway.
    for command in (["migrate"], ["worker"]):
        assert cli_parser().parse_args(command).command == command[0]


def test_migrations_can_be_switched_off(render: Callable[..., Objects]) -> None:
    api = one(render({"migrations.enabled": "false"}), "Deployment", "tre-gateway-api")
    assert "initContainers" not in api["spec"]["template"]["spec"]


# ---------------------------------------------------------------------------------------------------- RBAC


def backend_api_calls() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every namespaced API call in the backend's code; a watch is a list with
    watch=True."""
    needed = set()
    for source in BACKEND_SOURCES:
        text = source.read_text()
        watches = re.search(r"""["']watch["']\s*:\s*True|\bwatch\s*=\s*True""", text) is not None
        for verb, kind in API_CALL.findall(text):
            assert kind in API_RESOURCE, f"{source.name} calls {verb}_namespaced_{kind}: add it to API_RESOURCE"
            group, resource = API_RESOURCE[kind]
            needed.add((group, resource, API_VERB[verb]))
            if watches and verb == "list":
                needed.add((group, resource, "watch"))
    return needed


def test_role_grants_exactly_what_the_backend_calls(rendered: Objects) -> None:
    (role,) = of_kind(rendered, "Role")
    granted = set()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate", "update", "patch"}
        assert "resourceNames" not in rule
        granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    needed = backend_api_calls()
    assert ("", "pods", "watch") in needed and ("", "pods/log", "get") in needed  # the scan finds the calls
    assert needed - granted == set(), "the backend makes calls the Role does not allow"
    assert granted - needed == set(), "the Role allows calls the backend never makes"
    assert not {r for _, r, _ in granted} & {"secrets", "configmaps", "pods/exec", "pods/attach"}
    (binding,) = of_kind(rendered, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tre-gateway-worker", "namespace": NAMESPACE}]


def test_executor_namespace_gets_the_role_and_the_deny_policy(render: Callable[..., Objects]) -> None:
    objects = render({"executor.namespace": "tre-executors"})
    placed = {(o["kind"], o["metadata"]["namespace"]) for o in objects}
    assert ("Role", "tre-executors") in placed and ("RoleBinding", "tre-executors") in placed
    assert ("NetworkPolicy", "tre-executors") in placed
    assert one(objects, "ServiceAccount", "tre-gateway-executor")["metadata"]["namespace"] == "tre-executors"
    for name in (NETWORK_POLICY_NAME, "tre-gateway-stager"):
        assert one(objects, "NetworkPolicy", name)["metadata"]["namespace"] == "tre-executors"
    assert one(objects, "RoleBinding", "tre-gateway-worker")["subjects"][0]["namespace"] == NAMESPACE
    assert configmap_env(objects)["TRE_GATEWAY_KUBERNETES_NAMESPACE"] == "tre-executors"


# ---------------------------------------------------------------------------------------------------- network


def test_executor_pods_are_denied_all_traffic(rendered: Objects) -> None:
    deny = [p for p in of_kind(rendered, "NetworkPolicy")
            if p["spec"]["podSelector"].get("matchLabels") == EXECUTOR_SELECTOR]
    assert len(deny) == 1
    spec = deny[0]["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert not spec.get("ingress") and not spec.get("egress")
    # The backend finds this policy by name and accepts it as deny-all, so it runs executors without making its own.
    assert deny[0]["metadata"]["name"] == NETWORK_POLICY_NAME
    assert is_deny_all(deny[0])
    # No other policy selects executor pods (policies are additive: one allow would open them).
    for policy in of_kind(rendered, "NetworkPolicy"):
        if policy is not deny[0]:
            assert policy["spec"]["podSelector"]["matchLabels"].get(LABEL_ROLE) in (None, ROLE_STAGER)
            assert not policy["spec"]["podSelector"].get("matchExpressions")


def test_stager_pods_reach_only_dns_and_s3(rendered: Objects, profile: str) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
    for path in PROFILES[profile]:
        values.update(yaml.safe_load(path.read_text()).get("networkPolicy", {}))
    (stager,) = [p for p in of_kind(rendered, "NetworkPolicy")
                 if p["spec"]["podSelector"].get("matchLabels") == STAGER_SELECTOR]
    assert stager["metadata"]["name"] == "tre-gateway-stager"
    spec = stager["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec["ingress"] == []
    s3 = values["stager"]["objectStore"] or values["objectStore"]
    expected = [{"ports": d["ports"], **({"to": d["to"]} if d["to"] else {})} for d in (values["dns"], s3)]
    assert spec["egress"] == expected
    assert {p["port"] for rule in spec["egress"] for p in rule["ports"]} <= {53, 443}
    if profile == "production":
        assert all(rule.get("to") for rule in spec["egress"])


def test_stager_egress_can_name_its_own_s3_destination(render: Callable[..., Objects]) -> None:
    objects = render({"networkPolicy.stager.objectStore.to[0].ipBlock.cidr": "203.0.113.7/32",
                      "networkPolicy.stager.objectStore.ports[0].port": "9000"})
    egress = one(objects, "NetworkPolicy", "tre-gateway-stager")["spec"]["egress"]
    assert egress[1] == {"to": [{"ipBlock": {"cidr": "203.0.113.7/32"}}], "ports": [{"port": 9000}]}
    # The gateway pods keep their own S3 rule.
    assert one(objects, "NetworkPolicy", "tre-gateway-worker")["spec"]["egress"][2]["ports"][0]["port"] == 443


def test_gateway_pods_reach_only_their_dependencies(rendered: Objects, profile: str) -> None:
    api = one(rendered, "NetworkPolicy", "tre-gateway-api")["spec"]
    worker = one(rendered, "NetworkPolicy", "tre-gateway-worker")["spec"]
    for spec in (api, worker):
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert worker["ingress"] == []

    def ports(spec: dict[str, Any]) -> set[int]:
        return {p["port"] for rule in spec["egress"] for p in rule["ports"]}

    assert ports(api) <= {53, 5432, 443}
    assert ports(worker) <= {53, 5432, 443, 6443}
    assert all(rule["ports"] for rule in api["egress"] + worker["egress"])
    if profile == "production":
        # Every destination is pinned: no rule opens a port to any address.
        assert all(rule.get("to") for rule in api["egress"] + worker["egress"])
        assert all(rule.get("from") for rule in api["ingress"])
        assert len(api["egress"]) == 4  # DNS, PostgreSQL, S3, OIDC issuer
        assert len(worker["egress"]) == 4  # DNS, PostgreSQL, S3, Kubernetes API


def test_oidc_egress_only_when_keys_are_fetched(render: Callable[..., Objects]) -> None:
    with_key = render({"auth.oidc.publicKeySecret.name": "idp-key"})
    assert len(one(with_key, "NetworkPolicy", "tre-gateway-api")["spec"]["egress"]) == 3
    env = configmap_env(with_key)
    assert env["TRE_GATEWAY_OIDC_PUBLIC_KEY_FILE"] == "/var/run/secrets/tre-gateway/oidc/public.pem"
    # The worker builds the same verifier at start-up, so it needs the key file too.
    for name in ("tre-gateway-api", "tre-gateway-worker"):
        spec = one(with_key, "Deployment", name)["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
        assert "/var/run/secrets/tre-gateway/oidc" in mounts, name


# ---------------------------------------------------------------------------------------------------- settings


def test_configmap_settings_are_ones_the_gateway_reads(rendered: Objects) -> None:
    env = configmap_env(rendered)
    fields = {f.name for f in dataclasses.fields(Settings)}
    names = {key.removeprefix(ENV_PREFIX).lower() for key in env}
    assert all(key.startswith(ENV_PREFIX) for key in env)
    assert names - fields == set(), f"settings the gateway does not know: {sorted(names - fields)}"
    # The values parse as the gateway parses them (types, JSON lists and maps, choices, cross-checks).
    settings = Settings.load({**env, "TRE_GATEWAY_DATABASE_URL": "postgresql+psycopg://u:p@db/gateway"})
    assert settings.compute_backend == "kubernetes"
    assert settings.egress_review == "human"
    assert settings.egress_max_total_bytes == 4 << 30
    assert "" in settings.egress_allowed_extensions
    if settings.auth == "oidc":
        assert settings.oidc_issuer.startswith("https://")


def worker_settings(objects: Objects) -> Settings:
    """The Settings a worker pod loads: its ConfigMap (envFrom) plus its env (the database URL from a Secret)."""
    worker = one(objects, "Deployment", "tre-gateway-worker")["spec"]["template"]["spec"]["containers"][0]
    (source,) = worker["envFrom"]
    env = dict(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    assert "TRE_GATEWAY_DATABASE_URL" in {e["name"] for e in worker["env"]}
    return Settings.load({**env, "TRE_GATEWAY_DATABASE_URL": "postgresql+psycopg://u:p@db/gateway"})


def test_worker_config_selects_the_kubernetes_backend(rendered: Objects, profile: str) -> None:
    settings = worker_settings(rendered)
    worker = one(rendered, "Deployment", "tre-gateway-worker")["spec"]["template"]["spec"]
    assert settings.compute_backend == "kubernetes" and settings.object_store == "s3"
    namespace = "tre-executors" if profile == "production" else NAMESPACE
    assert settings.kubernetes_namespace == namespace
    assert settings.kubernetes_stager_credentials_secret == "tre-gateway-stager-s3"
    # Task pods use the chart's executor service account, in the namespace they run in.
    account = one(rendered, "ServiceAccount", settings.kubernetes_service_account)
    assert account["metadata"]["namespace"] == namespace and account["automountServiceAccountToken"] is False
    # Helper and stagers: the gateway image by default (it carries the static busybox and the stager module).
    image = worker["containers"][0]["image"]
    assert settings.kubernetes_helper_image == image and settings.kubernetes_stager_image == image
    # The worker's Role and the deny-all policy live where the pods go.
    assert one(rendered, "Role", "tre-gateway-worker")["metadata"]["namespace"] == namespace
    assert one(rendered, "NetworkPolicy", NETWORK_POLICY_NAME)["metadata"]["namespace"] == namespace
    # Stager pods mount that Secret's keys as files, as values.yaml documents.
    assert PodSettings(namespace=namespace, helper_image=image).stager_credentials_keys == (
        "access_key_id", "secret_access_key")
    assert CREDENTIALS_DIR == "/var/run/secrets/tre-gateway/s3"
    assert "`access_key_id` and `secret_access_key`" in (CHART / "values.yaml").read_text()


def test_kubernetes_backend_settings_reach_the_worker(render: Callable[..., Objects]) -> None:
    settings = worker_settings(render({
        "executor.kubernetes.helperImage": "registry.tre.example/busybox-static:1.36",
        "executor.kubernetes.helperPath": "/bin/busybox.static",
        "executor.kubernetes.stagerImage": "registry.tre.example/tre-gateway-stager:0.1.0",
        "executor.kubernetes.stagerCredentialsSecret": "stager-s3",
        "executor.kubernetes.imagePullPolicy": "Always",
        "executor.kubernetes.storageClass": "fast-ssd",
        "executor.kubernetes.nodeSelector.pool": "tasks",
        "executor.kubernetes.gpuResource": "amd.com/gpu",
        "executor.kubernetes.maxGpus": "2",
        "executor.kubernetes.activeDeadlineSeconds": "172800",
        "executor.kubernetes.keepFailedSeconds": "3600",
        "executor.kubernetes.resyncSeconds": "120",
        "executor.kubernetes.imagePullGraceSeconds": "30",
        "executor.kubernetes.unschedulableSeconds": "1800",
    }))
    assert settings.kubernetes_helper_image == "registry.tre.example/busybox-static:1.36"
    assert settings.kubernetes_helper_path == "/bin/busybox.static"
    assert settings.kubernetes_stager_image == "registry.tre.example/tre-gateway-stager:0.1.0"
    assert settings.kubernetes_stager_credentials_secret == "stager-s3"
    assert settings.kubernetes_image_pull_policy == "Always"
    assert settings.kubernetes_storage_class == "fast-ssd"
    assert settings.kubernetes_node_selector == {"pool": "tasks"}
    assert (settings.kubernetes_gpu_resource, settings.kubernetes_max_gpus) == ("amd.com/gpu", 2)
    assert settings.kubernetes_active_deadline_seconds == 172800
    assert settings.kubernetes_keep_failed_seconds == 3600.0
    assert settings.kubernetes_resync_seconds == 120.0
    assert settings.kubernetes_image_pull_grace_seconds == 30.0
    assert settings.kubernetes_unschedulable_seconds == 1800.0


def test_task_pods_pull_with_the_chart_pull_secrets(render: Callable[..., Objects]) -> None:
    objects = render({"imagePullSecrets[0].name": "regcred"})
    # The backend sets no imagePullSecrets on task pods: the executor service account carries them.
    assert one(objects, "ServiceAccount", "tre-gateway-executor")["imagePullSecrets"] == [{"name": "regcred"}]


def test_secrets_are_referenced_never_inlined(rendered: Objects) -> None:
    env = configmap_env(rendered)
    assert "TRE_GATEWAY_DATABASE_URL" not in env
    assert not {k for k in env if k.startswith("AWS_") or "PASSWORD" in k}
    # A path and a Secret's name, not secrets.
    assert {k for k in env if "SECRET" in k} == {"TRE_GATEWAY_S3_SECRET_ACCESS_KEY_FILE",
                                                 "TRE_GATEWAY_KUBERNETES_STAGER_CREDENTIALS_SECRET"}
    assert not of_kind(rendered, "Secret"), "the chart must not carry secret material"
    for name, spec in pod_templates(rendered):
        for c in spec.get("initContainers", []) + spec["containers"]:
            env_vars = {e["name"]: e for e in c.get("env", [])}
            db = env_vars["TRE_GATEWAY_DATABASE_URL"]
            assert "value" not in db and db["valueFrom"]["secretKeyRef"]["name"] == "tre-gateway-database"
            for e in env_vars.values():
                assert not any(word in e["name"] for word in ("ACCESS_KEY", "SECRET", "TOKEN", "PASSWORD")), e
        # S3 credentials: a Secret mounted read-only; the settings name the files in it.
        api_or_worker = spec["containers"][0]
        (s3,) = [m for m in api_or_worker["volumeMounts"] if m["name"] == "s3-credentials"]
        assert s3["readOnly"] is True, name
        volume = next(v for v in spec["volumes"] if v["name"] == "s3-credentials")
        assert volume["secret"]["secretName"] == "tre-gateway-s3"
        files = {f"{s3['mountPath']}/{item['path']}" for item in volume["secret"]["items"]}
        assert files == {env["TRE_GATEWAY_S3_ACCESS_KEY_ID_FILE"], env["TRE_GATEWAY_S3_SECRET_ACCESS_KEY_FILE"]}
        assert not {e["name"] for e in api_or_worker["env"]} & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_dev_mode_mounts_the_shared_signing_secret_in_api_pods_only(render: Callable[..., Objects]) -> None:
    objects = render({"auth.mode": "dev", "auth.dev.secretName": "tre-gateway-dev-jwt"})
    env = configmap_env(objects)
    assert env["TRE_GATEWAY_AUTH"] == "dev" and "TRE_GATEWAY_OIDC_ISSUER" not in env
    api = one(objects, "Deployment", "tre-gateway-api")["spec"]["template"]["spec"]
    worker = one(objects, "Deployment", "tre-gateway-worker")["spec"]["template"]["spec"]
    (mount,) = [m for m in api["containers"][0]["volumeMounts"] if m["name"] == "dev-jwt-secret"]
    # gateway.config: the dev secret file is <data_dir>/dev-jwt-secret.
    assert Path(mount["mountPath"]) == Settings(data_dir=Path(env["TRE_GATEWAY_DATA_DIR"])).dev_secret_file
    assert all(m["name"] != "dev-jwt-secret" for m in worker["containers"][0]["volumeMounts"])


def test_extra_settings_reach_the_configmap(render: Callable[..., Objects]) -> None:
    env = configmap_env(render({"extraSettings.HELPER_BINARY": "/bin/busybox"}))
    assert env["TRE_GATEWAY_HELPER_BINARY"] == "/bin/busybox"


# ---------------------------------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"auth.mode": "ldap"}, "auth.mode"),
        ({"surprise": "1"}, "surprise"),
        ({"runAsUser": "0"}, "runAsUser"),
        ({"auth.mode": "dev"}, "secretName"),
        ({"auth.oidc.issuer": ""}, "auth"),
        ({"extraSettings.DATABASE_URL": "postgresql://u:p@db/x"}, "extraSettings"),
        ({"api.gunicorn.workerClass": "sync"}, "workerClass"),
        ({"egress.review": "never"}, "egress.review"),
        ({"objectStore.type": "local"}, "objectStore.type"),
        ({"api.port": "80"}, "api.port"),
        ({"networkPolicy.database.to[0].everywhere": "true"}, "everywhere"),
        ({"executor.backend": "podman"}, "executor.backend"),
        ({"executor.kubernetes.stagerCredentialsSecret": ""}, "stagerCredentialsSecret"),
        ({"executor.kubernetes.imagePullPolicy": "Sometimes"}, "imagePullPolicy"),
        ({"executor.kubernetes.maxGpus": "-1"}, "maxGpus"),
        ({"networkPolicy.stager.objectStore.ports[0].port": "0"}, "stager"),
    ],
)
def test_values_schema_rejects_bad_values(helm: Helm, sets: dict[str, str], message: str) -> None:
    result = helm.run(*helm.template_args([], sets), check=False)
    assert result.returncode != 0, f"helm template accepted {sets}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_extra_settings_schema_rejects_names_the_chart_sets(helm: Helm) -> None:
    # The schema's list of chart-managed names must cover every name the ConfigMap template writes.
    schema = json.loads((CHART / "values.schema.json").read_text())
    managed = set(schema["properties"]["extraSettings"]["propertyNames"]["not"]["enum"])
    rendered_names: set[str] = set()
    for values in (PROFILES["default"], PROFILES["production"]):
        rendered_names |= {k.removeprefix(ENV_PREFIX) for k in configmap_env(helm.objects(values))}
    assert rendered_names <= managed


# ---------------------------------------------------------------------------------------------------- extras


def test_production_ingress_routes_only_api_prefixes(helm: Helm) -> None:
    objects = helm.objects(PROFILES["production"])
    (ingress,) = of_kind(objects, "Ingress")
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/ga4gh", "/gateway", "/airlock"}
    assert ingress["spec"]["tls"][0]["hosts"] == ["tes.tre.example"]
    assert configmap_env(objects)["TRE_GATEWAY_PUBLIC_URL"] == "https://tes.tre.example"
    (monitor,) = of_kind(objects, "ServiceMonitor")
    service = one(objects, "Service", RELEASE)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_default_profile_has_no_ingress_or_servicemonitor(helm: Helm) -> None:
    kinds = {o["kind"] for o in helm.objects(PROFILES["default"])}
    assert "Ingress" not in kinds and "ServiceMonitor" not in kinds


def notes(helm: Helm, tmp_path: Path, values: list[Path]) -> str:
    """NOTES.txt as `helm install` would print it: rendered through a copy of the chart with a wrapper template."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n'
        '  notes: {{ include "tre-gateway/templates/NOTES.txt" . | quote }}\n'
    )
    out = helm.run(*helm.template_args(values, chart=copy), "--show-only", "templates/zz-notes.yaml").stdout
    return str(yaml.safe_load(out)["data"]["notes"])


def test_notes_warn_about_open_defaults_and_not_production(helm: Helm, tmp_path: Path) -> None:
    default = notes(helm, tmp_path / "d", PROFILES["default"])
    assert "tre-gateway-database (key url)" in default
    assert "networkPolicy.database.to" in default and "placeholder" in default
    production = notes(helm, tmp_path / "p", PROFILES["production"])
    assert "WARNING" not in production
    assert "https://tes.tre.example/ga4gh/tes/v1" in production


# ---------------------------------------------------------------------------------------------------- drift


def test_committed_manifests_match_the_chart(helm: Helm) -> None:
    """k8s-manifests/all.yaml is exactly what the chart renders (re-render: see k8s-manifests/README.md)."""
    fresh = helm.run(*helm.template_args([MANIFESTS / "values.yaml"])).stdout
    committed = (MANIFESTS / "all.yaml").read_text()
    assert committed == fresh, (
        "k8s-manifests/all.yaml is out of date with helm/tre-gateway; re-render it with `make manifests`"
    )
