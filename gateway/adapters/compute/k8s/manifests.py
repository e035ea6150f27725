"""The Kubernetes objects one task becomes, as plain dicts: exactly what the API receives.

Per task (names derive from the task id; every object carries the task and project labels):

- `tre-<task>-work`  PersistentVolumeClaim: the task's files, when anything is staged in or out;
                     otherwise the executor pod uses an emptyDir and the task is one pod and nothing else.
- `tre-<task>-in`    stager pod (role=stager): copies inputs from the object store into the volume.
- `tre-<task>-exec`  executor pod (role=executor): init container `setup` copies the static helper into an
                     emptyDir mounted at /.tre; init containers `exec-0..N-1` run the executors in order, each
                     through the helper (redirection, exit code in the termination message, ignore_error);
                     the container `done` ends the pod.
- `tre-<task>-out`   stager pod: copies the outputs from the volume into quarantine.

Executor pods have no network (a default-deny NetworkPolicy selects role=executor), no service-account token,
no credentials, a non-root numeric UID, a read-only root filesystem, no capabilities, no privilege
escalation and the runtime's default seccomp profile. Stager pods run only the gateway's own image.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.adapters.compute.workspace import plan_mounts
from gateway.domain.errors import InvalidRequest
from gateway.domain.task import Resources
from gateway.services.ports import Job

LABEL_TASK = "tre-gateway/task"
LABEL_PROJECT = "tre-gateway/project"
LABEL_ROLE = "tre-gateway/role"
LABEL_STAGE = "tre-gateway/stage"
LABEL_EXECUTOR_COUNT = "tre-gateway/executor-count"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_PROJECT = "tre-gateway/project"
MANAGED_BY = "tre-gateway"

ROLE_EXECUTOR = "executor"
ROLE_STAGER = "stager"
ROLE_WORKSPACE = "workspace"
STAGE_IN = "stage-in"
STAGE_EXEC = "exec"
STAGE_OUT = "stage-out"

NETWORK_POLICY_NAME = "tre-gateway-executor-deny-all"

TOOLS_DIR = "/.tre"
HELPER = TOOLS_DIR + "/busybox"
VOLUME_DIR = "/tre/volume"
# The stager's Workspace lives at <volume>/ws; the container file tree is <volume>/ws/root/<container path>.
WORKSPACE_SUBDIR = "ws"
TREE_SUBDIR = WORKSPACE_SUBDIR + "/root"
TERMINATION_LOG = "/dev/termination-log"
CREDENTIALS_DIR = "/var/run/secrets/tre-gateway/s3"
TMP = "/tmp"  # noqa: S108 - in every pod a private emptyDir, never the host's

SETUP_CONTAINER = "setup"
DONE_CONTAINER = "done"


def executor_container(index: int) -> str:
    return f"exec-{index}"


# Runs as `busybox sh -c SETUP <busybox> DIR...`: install the helper, create the mount directories.
SETUP = (
    'set -e; "$0" cp "$0" ' + HELPER + '; "$0" chmod 0555 ' + HELPER + '; '
    'for d in "$@"; do "$0" mkdir -p "' + VOLUME_DIR + "/" + TREE_SUBDIR + '$d"; done'
)

# Runs as `/.tre/busybox sh -c WRAPPER tre-exec STDIN STDOUT STDERR IGNORE command...`: run the command with
# its streams redirected, record its exit code in the termination message, and exit 0 instead when the
# executor has ignore_error, so that the next init container (executor) still runs.
WRAPPER = (
    'i="$1"; o="$2"; e="$3"; g="$4"; shift 4; '
    '( [ -n "$i" ] && exec 0<"$i"; [ -n "$o" ] && exec 1>"$o"; [ -n "$e" ] && exec 2>"$e"; exec "$@" ); '
    "c=$?; { printf '{\"exit_code\": %d}' \"$c\" >" + TERMINATION_LOG + "; } 2>/dev/null; "
    '[ "$g" = 1 ] && exit 0; exit "$c"'
)

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_KEY_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class Names:
    stage_in: str
    executor: str
    stage_out: str
    volume: str

    def pod(self, stage: str) -> str:
        return {STAGE_IN: self.stage_in, STAGE_EXEC: self.executor, STAGE_OUT: self.stage_out}[stage]


def names(task_id: str) -> Names:
    if len(task_id) > 48 or not _NAME.fullmatch(task_id):
        raise InvalidRequest(f"task id {task_id!r} cannot name Kubernetes objects")
    base = f"tre-{task_id}"
    return Names(f"{base}-in", f"{base}-exec", f"{base}-out", f"{base}-work")


def label_value(text: str) -> str:
    """`text` if it is a valid label value, else a readable prefix plus a hash (the full text is an annotation)."""
    if len(text) <= 63 and _LABEL_VALUE.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:40].strip("-_.")
    return f"{cleaned}-{digest}" if cleaned else digest


def stages(job: Job) -> list[str]:
    """The pods a job runs through, in order."""
    order = []
    if needs_stage_in(job):
        order.append(STAGE_IN)
    order.append(STAGE_EXEC)
    if needs_stage_out(job):
        order.append(STAGE_OUT)
    return order


def needs_stage_in(job: Job) -> bool:
    return bool(job.inputs)


def needs_stage_out(job: Job) -> bool:
    return bool(job.outputs)


def uses_claim(job: Job) -> bool:
    return needs_stage_in(job) or needs_stage_out(job)


# ---------------------------------------------------------------- settings and per-task options


@dataclass(frozen=True)
class PodSettings:
    """What the TRE configures once for every pod the backend creates."""

    namespace: str
    helper_image: str
    helper_path: str = "/bin/busybox"
    stager_image: str = ""  # default: the helper image (the gateway image carries both)
    stager_command: tuple[str, ...] = ("python", "-m", "gateway.adapters.compute.k8s.stager")
    # Non-secret settings the stager needs to reach the object store (TRE_GATEWAY_S3_BUCKET, ...).
    stager_env: Mapping[str, str] = field(default_factory=dict)
    # Secret (in `namespace`) with the stager's object-store credentials, mounted as files at CREDENTIALS_DIR.
    stager_credentials_secret: str = ""
    stager_credentials_keys: tuple[str, str] = ("access_key_id", "secret_access_key")
    stager_cpu: str = "500m"
    stager_memory: str = "512Mi"
    service_account: str = ""
    uid: int = 10001
    gid: int = 10001
    image_pull_policy: str = "IfNotPresent"
    default_cpu_cores: float = 1.0
    default_ram_gb: float = 1.0
    default_disk_gb: float = 1.0
    storage_class: str = ""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, object], ...] = ()
    gpu_resource: str = "nvidia.com/gpu"
    max_gpus: int = 8
    active_deadline_seconds: int = 0  # 0: none unless a task asks for one
    max_active_deadline_seconds: int = 7 * 24 * 3600
    termination_grace_seconds: int = 5

    def __post_init__(self) -> None:
        if self.uid <= 0 or self.gid <= 0:
            raise ValueError("executors need a numeric, non-root UID and GID")

    @property
    def resolved_stager_image(self) -> str:
        return self.stager_image or self.helper_image


@dataclass(frozen=True)
class TaskOptions:
    """What a task may choose through TES `resources.backend_parameters` (see BACKEND_PARAMETERS)."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    gpu_count: int = 0
    active_deadline_seconds: int = 0


BACKEND_PARAMETERS = {
    "node_selector": "nodeSelector entries added to the TRE's own: a JSON object or 'key=value,key=value'",
    "gpu_count": "GPUs for each executor (an integer from 1 to the TRE's maximum), as an extended-resource limit",
    "active_deadline_seconds": "the executor pod's time limit in seconds (at most the TRE's maximum)",
}


def task_options(resources: Resources | None, settings: PodSettings) -> TaskOptions:
    """Read backend_parameters. Malformed values of known keys are always refused; unknown keys only when strict."""
    params = dict(resources.backend_parameters) if resources is not None else {}
    strict = bool(resources is not None and resources.backend_parameters_strict)
    unknown = sorted(set(params) - set(BACKEND_PARAMETERS))
    if unknown and strict:
        raise InvalidRequest(
            f"backend_parameters: unsupported key(s) {', '.join(unknown)} (backend_parameters_strict is set); "
            f"the kubernetes backend supports: {', '.join(sorted(BACKEND_PARAMETERS))}"
        )
    selector: dict[str, str] = {}
    if "node_selector" in params:
        selector = _node_selector(params["node_selector"])
        clash = sorted(set(selector) & set(settings.node_selector))
        if clash:
            raise InvalidRequest(f"backend_parameters.node_selector: {', '.join(clash)} is set by the TRE")
    gpus = 0
    if "gpu_count" in params:
        gpus = _int_param("gpu_count", params["gpu_count"], 0, settings.max_gpus)
    deadline = settings.active_deadline_seconds
    if "active_deadline_seconds" in params:
        deadline = _int_param(
            "active_deadline_seconds", params["active_deadline_seconds"], 1, settings.max_active_deadline_seconds
        )
    return TaskOptions(node_selector=selector, gpu_count=gpus, active_deadline_seconds=deadline)


def _int_param(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise InvalidRequest(f"backend_parameters.{name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidRequest(f"backend_parameters.{name}: must be between {low} and {high}")
    return value


def _node_selector(raw: str) -> dict[str, str]:
    text = str(raw).strip()
    try:
        if text.startswith("{"):
            parsed = json.loads(text)
            if not isinstance(parsed, dict):
                raise ValueError
            pairs = {str(k): str(v) for k, v in parsed.items()}
        else:
            pairs = {}
            for item in filter(None, (part.strip() for part in text.split(","))):
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError
                pairs[key.strip()] = value.strip()
    except ValueError:
        raise InvalidRequest("backend_parameters.node_selector: expected a JSON object or key=value pairs") from None
    for key, value in pairs.items():
        if not _label_key_ok(key) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise InvalidRequest(f"backend_parameters.node_selector: {key}={value} is not a valid node label")
    return pairs


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_KEY_NAME.fullmatch(name))


# ---------------------------------------------------------------- building blocks


def labels(job: Job, role: str, stage: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_TASK: job.task_id,
        LABEL_PROJECT: label_value(job.project),
        LABEL_ROLE: role,
        LABEL_STAGE: stage,
    }


def _metadata(name: str, settings: PodSettings, job: Job, role: str, stage: str) -> dict[str, object]:
    return {
        "name": name,
        "namespace": settings.namespace,
        "labels": labels(job, role, stage),
        "annotations": {ANNOTATION_PROJECT: job.project},
    }


def container_security(settings: PodSettings) -> dict[str, object]:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.uid,
        "runAsGroup": settings.gid,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_spec_base(settings: PodSettings) -> dict[str, object]:
    spec: dict[str, object] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.uid,
            "runAsGroup": settings.gid,
            "fsGroup": settings.gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return spec


def _cpu(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{max(1, round(cores * 1000))}m"


def _mebibytes(gb: float) -> str:
    return f"{max(1, round(gb * 1024))}Mi"


def executor_resources(job: Job, settings: PodSettings, options: TaskOptions) -> dict[str, dict[str, str]]:
    res = job.resources or Resources()
    cpu = _cpu(res.cpu_cores or settings.default_cpu_cores)
    memory = _mebibytes(res.ram_gb or settings.default_ram_gb)
    disk = _mebibytes(res.disk_gb or settings.default_disk_gb)
    amounts = {"cpu": cpu, "memory": memory, "ephemeral-storage": disk}
    limits = dict(amounts)
    if options.gpu_count:
        limits[settings.gpu_resource] = str(options.gpu_count)
    return {"requests": amounts, "limits": limits}


def _small_resources() -> dict[str, dict[str, str]]:
    amounts = {"cpu": "50m", "memory": "32Mi", "ephemeral-storage": "64Mi"}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _work_volume(job: Job, names_: Names) -> dict[str, object]:
    if uses_claim(job):
        return {"name": "work", "persistentVolumeClaim": {"claimName": names_.volume}}
    size = (job.resources.disk_gb if job.resources and job.resources.disk_gb else None)
    empty: dict[str, object] = {"sizeLimit": _mebibytes(size)} if size else {}
    return {"name": "work", "emptyDir": empty}


# ---------------------------------------------------------------- the objects


def work_volume_claim(job: Job, settings: PodSettings) -> dict[str, object]:
    res = job.resources or Resources()
    spec: dict[str, object] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": _mebibytes(res.disk_gb or settings.default_disk_gb)}},
    }
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(names(job.task_id).volume, settings, job, ROLE_WORKSPACE, "volume"),
        "spec": spec,
    }


def executor_pod(job: Job, settings: PodSettings, options: TaskOptions) -> dict[str, object]:
    names_ = names(job.task_id)
    mounts = plan_mounts(job)
    security = container_security(settings)
    resources = executor_resources(job, settings, options)
    tools_ro = {"name": "tools", "mountPath": TOOLS_DIR, "readOnly": True}
    task_mounts = [
        {"name": "work", "mountPath": m.container_path, "subPath": TREE_SUBDIR + m.container_path,
         "readOnly": m.read_only}
        for m in mounts
    ]
    if not any(m.container_path == TMP or m.container_path.startswith(TMP + "/") for m in mounts):
        task_mounts.append({"name": "tmp", "mountPath": TMP})
    setup = {
        "name": SETUP_CONTAINER,
        "image": settings.helper_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [settings.helper_path, "sh", "-c", SETUP, settings.helper_path,
                    *(m.container_path for m in mounts)],
        "securityContext": security,
        "resources": _small_resources(),
        "volumeMounts": [{"name": "tools", "mountPath": TOOLS_DIR}, {"name": "work", "mountPath": VOLUME_DIR}],
        "terminationMessagePolicy": "File",
    }
    executors = []
    for index, ex in enumerate(job.executors):
        container: dict[str, object] = {
            "name": executor_container(index),
            "image": ex.image,
            "imagePullPolicy": settings.image_pull_policy,
            "command": [HELPER, "sh", "-c", WRAPPER, "tre-exec", ex.stdin or "", ex.stdout or "", ex.stderr or "",
                        "1" if ex.ignore_error else "0", *ex.command],
            "securityContext": security,
            "resources": resources,
            "volumeMounts": [tools_ro, *task_mounts],
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "File",
        }
        if ex.workdir:
            container["workingDir"] = ex.workdir
        if ex.env:
            container["env"] = [{"name": k, "value": v} for k, v in ex.env.items()]
        executors.append(container)
    done = {
        "name": DONE_CONTAINER,
        "image": settings.helper_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [HELPER, "true"],
        "securityContext": security,
        "resources": _small_resources(),
        "volumeMounts": [tools_ro],
    }
    spec = _pod_spec_base(settings)
    spec["volumes"] = [
        {"name": "tools", "emptyDir": {"sizeLimit": "16Mi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        _work_volume(job, names_),
    ]
    spec["initContainers"] = [setup, *executors]
    spec["containers"] = [done]
    if options.node_selector:
        spec["nodeSelector"] = {**options.node_selector, **settings.node_selector}
    zones = job.resources.zones if job.resources else ()
    if zones:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": list(zones)}
            ]}]
        }}}
    if options.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = options.active_deadline_seconds
    metadata = _metadata(names_.executor, settings, job, ROLE_EXECUTOR, STAGE_EXEC)
    metadata["labels"][LABEL_EXECUTOR_COUNT] = str(len(job.executors))  # type: ignore[index]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def stager_pod(job: Job, settings: PodSettings, stage: str) -> dict[str, object]:
    names_ = names(job.task_id)
    env = [{"name": k, "value": v} for k, v in sorted(settings.stager_env.items())]
    env.append({"name": "HOME", "value": TMP})
    mounts: list[dict[str, object]] = [
        {"name": "work", "mountPath": VOLUME_DIR},
        {"name": "tmp", "mountPath": TMP},
    ]
    volumes: list[dict[str, object]] = [
        {"name": "work", "persistentVolumeClaim": {"claimName": names_.volume}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    if settings.stager_credentials_secret:
        key_id, secret = settings.stager_credentials_keys
        env += [
            {"name": "TRE_GATEWAY_S3_ACCESS_KEY_ID_FILE", "value": f"{CREDENTIALS_DIR}/{key_id}"},
            {"name": "TRE_GATEWAY_S3_SECRET_ACCESS_KEY_FILE", "value": f"{CREDENTIALS_DIR}/{secret}"},
        ]
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
        volumes.append({"name": "credentials", "secret": {
            "secretName": settings.stager_credentials_secret, "defaultMode": 0o440,
        }})
    container = {
        "name": stage,
        "image": settings.resolved_stager_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.stager_command),
        "args": [stage, "--task", job.task_id, "--volume", VOLUME_DIR],
        "env": env,
        "securityContext": container_security(settings),
        "resources": {
            "requests": {"cpu": settings.stager_cpu, "memory": settings.stager_memory, "ephemeral-storage": "256Mi"},
            "limits": {"cpu": settings.stager_cpu, "memory": settings.stager_memory, "ephemeral-storage": "512Mi"},
        },
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    spec = _pod_spec_base(settings)
    spec["volumes"] = volumes
    spec["containers"] = [container]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(names_.pod(stage), settings, job, ROLE_STAGER, stage),
        "spec": spec,
    }


def deny_all_policy(namespace: str) -> dict[str, object]:
    """Selects every executor pod; with no rules, nothing may reach them and they may reach nothing."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NETWORK_POLICY_NAME,
            "namespace": namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL_ROLE: ROLE_EXECUTOR}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def is_deny_all(policy: Mapping[str, object]) -> bool:
    spec = policy.get("spec") or {}
    if not isinstance(spec, Mapping):
        return False
    selector = spec.get("podSelector") or {}
    return (
        isinstance(selector, Mapping)
        and selector.get("matchLabels") == {LABEL_ROLE: ROLE_EXECUTOR}
        and not selector.get("matchExpressions")
        and sorted(spec.get("policyTypes") or []) == ["Egress", "Ingress"]  # type: ignore[type-var]
        and not spec.get("ingress")
        and not spec.get("egress")
    )
