"""ComputeBackend on Kubernetes, through the official client: a task becomes pods behind the TRE's firewall.

One task = (stager pod ->) executor pod (-> stager pod), sharing a per-task volume; see k8s/manifests.py for
the objects and docs/kubernetes-backend.md for the design. State lives in the cluster (pods, labelled with
the task id) and in the object store (the staging plan and the stage-out record), so a new gateway process
picks up where a crashed one stopped. Pod states come from one watch stream per namespace (k8s/cache.py);
`poll` reads that cache and only calls the API to move a task to its next pod and to read finished logs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.adapters.compute.k8s.cache import PodCache
from gateway.adapters.compute.k8s.manifests import (
    LABEL_ROLE,
    LABEL_STAGE,
    LABEL_TASK,
    NETWORK_POLICY_NAME,
    STAGE_EXEC,
    STAGE_IN,
    PodSettings,
    TaskOptions,
    deny_all_policy,
    executor_container,
    executor_pod,
    is_deny_all,
    names,
    needs_stage_out,
    stager_pod,
    stages,
    task_options,
    uses_claim,
    work_volume_claim,
)
from gateway.adapters.compute.k8s.stager import read_collected, work_prefix, write_plan
from gateway.adapters.compute.k8s.status import (
    disruption,
    executor_outcome,
    executor_states,
    finished_at,
    is_deleting,
    phase,
    stager_outcome,
)
from gateway.domain.errors import BackendError, DomainError
from gateway.domain.task import ExecutorLog, system_log
from gateway.services.ports import Area, Job, JobPhase, JobStatus, ObjectStore

log = logging.getLogger(__name__)

TAIL_BYTES = 10 * 1024
LOG_CACHE_ENTRIES = 4096
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        store: ObjectStore,
        api_client: Any,
        settings: PodSettings,
        *,
        resync_seconds: float = 300.0,
        watch_timeout_seconds: float = 240.0,
        sync_timeout_seconds: float = 30.0,
        request_timeout_seconds: float = 30.0,
        log_tail_lines: int = 1000,
        keep_failed_seconds: float = 0.0,
        image_pull_grace_seconds: float = 60.0,
        unschedulable_seconds: float = 0.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        from kubernetes import client

        self.store = store
        self.settings = settings
        self.namespace = settings.namespace
        self.core = client.CoreV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.sync_timeout_seconds = sync_timeout_seconds
        self.request_timeout = (min(10.0, request_timeout_seconds), request_timeout_seconds)
        self.log_tail_lines = log_tail_lines
        self.keep_failed_seconds = keep_failed_seconds
        self.image_pull_grace_seconds = image_pull_grace_seconds
        self.unschedulable_seconds = unschedulable_seconds
        self.now = now
        self._policy_ready = False
        self._logs: dict[tuple[str, str, str], str] = {}  # (pod, uid, container) -> tail of a finished log
        self._lock = threading.Lock()
        # The watch gets its own connection pool: its long reads never hold up the backend's calls.
        watch_client = client.ApiClient(api_client.configuration)
        self.cache = PodCache(
            client.CoreV1Api(watch_client), self.namespace, LABEL_ROLE,
            resync_seconds=resync_seconds, watch_timeout_seconds=watch_timeout_seconds,
        )
        self.cache.start()

    def close(self) -> None:
        self.cache.stop()

    # ------------------------------------------------------------ API calls

    def _api(self, what: str, call: Callable[..., Any], *args: Any, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """Call the API for JSON; statuses in `ok` return None; anything else becomes a BackendError."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = call(*args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs)
        except ApiException as exc:
            if exc.status in ok:
                return None
            raise BackendError(f"Kubernetes API refused to {what}: {exc.status} {_api_message(exc)}") from None
        except (HTTPError, OSError) as exc:
            raise BackendError(f"Kubernetes API unreachable ({what}): {type(exc).__name__}") from None
        try:
            return json.loads(response.data or b"null")
        finally:
            response.release_conn()

    def _wait_synced(self) -> None:
        if not self.cache.wait_synced(self.sync_timeout_seconds):
            raise BackendError(f"the pod watch on namespace {self.namespace} has not synced yet")

    def _ensure_network_policy(self) -> None:
        """Executors never run unless a default-deny NetworkPolicy selects them (created once, idempotently)."""
        if self._policy_ready:
            return
        body = deny_all_policy(self.namespace)
        created = self._api("create the executor NetworkPolicy", self.networking.create_namespaced_network_policy,
                            self.namespace, body, ok=(403, 409))
        if created is None:
            existing = self._api("read the executor NetworkPolicy", self.networking.read_namespaced_network_policy,
                                 NETWORK_POLICY_NAME, self.namespace, ok=(403, 404))
            if existing is None:
                raise BackendError(
                    f"NetworkPolicy {NETWORK_POLICY_NAME} cannot be created or read in namespace {self.namespace}: "
                    "executors do not run without network isolation"
                )
            if not is_deny_all(existing):
                raise BackendError(
                    f"NetworkPolicy {NETWORK_POLICY_NAME} in namespace {self.namespace} is not default-deny "
                    "for executor pods: executors do not run without network isolation"
                )
        self._policy_ready = True

    def _create_pod(self, job: Job, stage: str, options: TaskOptions) -> None:
        manifest = executor_pod(job, self.settings, options) if stage == STAGE_EXEC else \
            stager_pod(job, self.settings, stage)
        created = self._api(f"create the {stage} pod", self.core.create_namespaced_pod, self.namespace, manifest,
                            ok=(409,))
        if created is None:  # made by an earlier attempt
            created = self._api("read a pod", self.core.read_namespaced_pod, manifest["metadata"]["name"],  # type: ignore[index]
                                self.namespace, ok=(404,))
        if created:
            self.cache.put(created)

    def _pods_of(self, task_id: str) -> dict[str, dict[str, Any]]:
        names_ = names(task_id)
        return self.cache.pods_of(task_id, (names_.stage_in, names_.executor, names_.stage_out))

    # ------------------------------------------------------------ port

    def start(self, job: Job) -> None:
        options = task_options(job.resources, self.settings)
        names_ = names(job.task_id)
        self._ensure_network_policy()
        self._wait_synced()
        if self._pods_of(job.task_id):
            return
        if uses_claim(job):
            write_plan(self.store, job, self.settings.uid, self.settings.gid)
            self._api("create the task volume", self.core.create_namespaced_persistent_volume_claim,
                      self.namespace, work_volume_claim(job, self.settings), ok=(409,))
        log.info("starting task pods", extra={"task_id": job.task_id, "pod": names_.pod(stages(job)[0])})
        self._create_pod(job, stages(job)[0], options)

    def poll(self, job: Job) -> JobStatus:
        self._wait_synced()
        pods = self._pods_of(job.task_id)
        names_ = names(job.task_id)
        lost = self.cache.lost_of((names_.stage_in, names_.executor, names_.stage_out))
        order = stages(job)
        if not any(stage in pods for stage in order):
            gone = [lost[s] for s in order if s in lost and not lost[s].succeeded]
            if gone:
                return JobStatus(JobPhase.PREEMPTED, reason=system_log("preempted", gone[0].reason), started=True)
            return JobStatus(JobPhase.MISSING)
        now = self.now()
        logs: tuple[ExecutorLog, ...] = ()
        for position, stage in enumerate(order):
            pod = pods.get(stage)
            if pod is None:
                later = any(s in pods for s in order[position + 1:])
                gone_stage = lost.get(stage)
                if later or (gone_stage is not None and gone_stage.succeeded):
                    continue
                if gone_stage is not None:
                    return JobStatus(JobPhase.PREEMPTED, logs, reason=system_log(
                        "preempted", f"{stage} pod lost: {gone_stage.reason}", stage=stage), started=True)
                self._create_pod(job, stage, task_options(job.resources, self.settings))
                return JobStatus(JobPhase.RUNNING, logs, started=True)
            if stage == STAGE_EXEC:
                logs = self._executor_logs(job, pod)
                outcome = executor_outcome(
                    pod, [e.ignore_error for e in job.executors], now=now,
                    grace_seconds=self.image_pull_grace_seconds, unschedulable_seconds=self.unschedulable_seconds)
            else:
                outcome = stager_outcome(pod, stage=stage, now=now, grace_seconds=self.image_pull_grace_seconds,
                                         unschedulable_seconds=self.unschedulable_seconds)
            if outcome.phase is JobPhase.SUCCEEDED:
                continue
            if outcome.phase in (JobPhase.PENDING, JobPhase.RUNNING):
                started = stage != STAGE_IN or outcome.phase is JobPhase.RUNNING
                phase_ = JobPhase.RUNNING if stage != order[0] else outcome.phase
                return JobStatus(phase_, logs, started=started)
            return JobStatus(outcome.phase, logs, reason=outcome.reason, started=True)
        outputs: tuple = ()
        if needs_stage_out(job):
            outputs, error = read_collected(self.store, job.task_id)
            if error:
                return JobStatus(JobPhase.SYSTEM_ERROR, logs, reason=error, started=True)
        return JobStatus(JobPhase.SUCCEEDED, logs, outputs=outputs, started=True)

    def _executor_logs(self, job: Job, pod: dict[str, Any]) -> tuple[ExecutorLog, ...]:
        entries = []
        for state in executor_states(pod, len(job.executors)):
            ex = job.executors[state.index]
            stdout = stderr = None
            if state.finished and not (ex.stdout and ex.stderr):
                text = self._log_tail(pod, executor_container(state.index))
                # The container log is what the executor did not redirect (Kubernetes merges the two streams).
                if ex.stdout:
                    stderr = text
                else:
                    stdout = text
            entries.append(ExecutorLog(exit_code=state.exit_code, start_time=state.start_time,
                                       end_time=state.end_time, stdout=stdout, stderr=stderr))
        return tuple(entries)

    def _log_tail(self, pod: dict[str, Any], container: str) -> str:
        """The end of a finished container's log, read once through pods/log."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        metadata = pod.get("metadata") or {}
        key = (str(metadata.get("name")), str(metadata.get("uid")), container)
        with self._lock:
            if key in self._logs:
                return self._logs[key]
        try:
            response = self.core.read_namespaced_pod_log(
                metadata.get("name"), self.namespace, container=container, tail_lines=self.log_tail_lines,
                _preload_content=False, _request_timeout=self.request_timeout)
            try:
                text = (response.data or b"").decode("utf-8", "replace")[-TAIL_BYTES:]
            finally:
                response.release_conn()
        except (ApiException, HTTPError, OSError) as exc:
            log.warning("cannot read executor log", extra={"pod": metadata.get("name"), "error": repr(exc)})
            return ""
        with self._lock:
            self._logs[key] = text
            while len(self._logs) > LOG_CACHE_ENTRIES:  # tasks another worker finished are never cancelled here
                del self._logs[next(iter(self._logs))]
        return text

    def _task_objects(self, task_id: str) -> tuple[list[str], list[str]]:
        """Names of the task's pods and volume claims, as the API lists them by label."""
        selector = f"{LABEL_TASK}={task_id}"
        found_pods = self._api("list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        found_claims = self._api("list volume claims", self.core.list_namespaced_persistent_volume_claim,
                                 self.namespace, label_selector=selector)
        pods = [_name(p) for p in (found_pods or {}).get("items") or [] if _labels(p).get(LABEL_TASK) == task_id]
        claims = [_name(c) for c in (found_claims or {}).get("items") or []
                  if _labels(c).get(LABEL_TASK) == task_id]
        return pods, claims

    def cancel(self, task_id: str) -> None:
        try:
            names_ = names(task_id)
        except DomainError:
            return  # such an id never named anything here
        pods, claims = self._task_objects(task_id)
        for pod in sorted({names_.stage_in, names_.executor, names_.stage_out, *pods}):
            self._delete_pod(pod)
        for claim in sorted({names_.volume, *claims}):
            self._api("delete the task volume", self.core.delete_namespaced_persistent_volume_claim, claim,
                      self.namespace, ok=(404,), propagation_policy="Background")
        self.store.delete_prefix(Area.WORK, work_prefix(task_id))
        gone = {names_.stage_in, names_.executor, names_.stage_out, *pods}
        with self._lock:
            self._logs = {k: v for k, v in self._logs.items() if k[0] not in gone}

    def _delete_pod(self, name: str) -> None:
        self.cache.forget(name)
        self._api("delete a pod", self.core.delete_namespaced_pod, name, self.namespace, ok=(404,),
                  grace_period_seconds=0, propagation_policy="Background")

    def cleanup(self, task_id: str) -> None:
        """Delete the task's objects, except a failed executor pod and its volume while keep_failed_seconds runs."""
        try:
            names(task_id)
        except DomainError:
            return  # such an id never named anything here
        executor = None
        if self.keep_failed_seconds > 0:
            self._wait_synced()
            executor = self._pods_of(task_id).get(STAGE_EXEC)
        if executor is not None and self._retained(executor):
            names_ = names(task_id)
            self._delete_pod(names_.stage_in)
            self._delete_pod(names_.stage_out)
            log.info("keeping a failed task's pod for debugging", extra={"task_id": task_id})
            return
        self.cancel(task_id)

    def _retained(self, pod: dict[str, Any]) -> bool:
        if self.keep_failed_seconds <= 0 or phase(pod) != "Failed" or disruption(pod):
            return False
        ended = finished_at(pod)
        return ended is not None and ended + timedelta(seconds=self.keep_failed_seconds) > self.now()

    def known_task_ids(self) -> set[str]:
        selector = LABEL_TASK
        pods = self._api("list pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        claims = self._api("list volume claims", self.core.list_namespaced_persistent_volume_claim, self.namespace,
                           label_selector=selector)
        retained: set[str] = set()
        ids: set[str] = set()
        for obj in (pods or {}).get("items") or []:
            task = _labels(obj).get(LABEL_TASK)
            if not task or is_deleting(obj):
                continue
            if _labels(obj).get(LABEL_STAGE) == STAGE_EXEC and self._retained(obj):
                retained.add(task)
            ids.add(task)
        for obj in (claims or {}).get("items") or []:
            task = _labels(obj).get(LABEL_TASK)
            if task and not is_deleting(obj):
                ids.add(task)
        return ids - retained


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _api_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.reason))[:300]
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


# ---------------------------------------------------------------- composition


def kubernetes_backend_from_settings(settings: Any, store: ObjectStore) -> KubernetesBackend:
    """Build the backend from Settings' `kubernetes_*` fields (read with getattr: each has a default here).

    Cluster access: `kubernetes_kubeconfig` (a file, optionally with `kubernetes_context`), else the in-cluster
    service account, else the default kubeconfig (~/.kube/config).
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from gateway.config import SettingsError

    def setting(name: str, default: Any) -> Any:
        value = getattr(settings, name, None)
        return default if value in (None, "") else value

    kubeconfig = setting("kubernetes_kubeconfig", None)
    context = setting("kubernetes_context", None)
    try:
        if kubeconfig:
            api_client = config.new_client_from_config(config_file=str(kubeconfig), context=context)
        else:
            try:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                api_client = client.ApiClient(configuration)
            except ConfigException:
                api_client = config.new_client_from_config(context=context)
    except (ConfigException, OSError) as exc:
        raise SettingsError(f"kubernetes: no cluster credentials ({exc})") from None

    namespace = setting("kubernetes_namespace", "")
    if not namespace and IN_CLUSTER_NAMESPACE.is_file():
        namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
    helper_image = setting("kubernetes_helper_image", "")
    if not helper_image:
        raise SettingsError("compute_backend=kubernetes needs kubernetes_helper_image (an image with a static busybox)")
    object_store = setting("object_store", "local")
    stager_env: dict[str, str] = {}
    if object_store == "s3":
        stager_env["TRE_GATEWAY_OBJECT_STORE"] = "s3"
        for name in ("s3_bucket", "s3_endpoint_url", "s3_region", "s3_prefix", "s3_addressing_style"):
            value = getattr(settings, name, None)
            if value not in (None, ""):
                stager_env["TRE_GATEWAY_" + name.upper()] = str(value)
    else:
        raise SettingsError("compute_backend=kubernetes stages inputs and outputs through S3: set object_store=s3")
    pod_settings = PodSettings(
        namespace=namespace or "default",
        helper_image=str(helper_image),
        helper_path=str(setting("kubernetes_helper_path", "") or setting("helper_binary", "/bin/busybox")),
        stager_image=str(setting("kubernetes_stager_image", "")),
        stager_env=stager_env,
        stager_credentials_secret=str(setting("kubernetes_stager_credentials_secret", "")),
        service_account=str(setting("kubernetes_service_account", "")),
        uid=int(setting("executor_uid", 10001)),
        gid=int(setting("executor_gid", 10001)),
        image_pull_policy=str(setting("kubernetes_image_pull_policy", "IfNotPresent")),
        storage_class=str(setting("kubernetes_storage_class", "")),
        node_selector=dict(setting("kubernetes_node_selector", {})),
        gpu_resource=str(setting("kubernetes_gpu_resource", "nvidia.com/gpu")),
        max_gpus=int(setting("kubernetes_max_gpus", 8)),
        active_deadline_seconds=int(setting("kubernetes_active_deadline_seconds", 0)),
    )
    return KubernetesBackend(
        store,
        api_client,
        pod_settings,
        resync_seconds=float(setting("kubernetes_resync_seconds", 300.0)),
        keep_failed_seconds=float(setting("kubernetes_keep_failed_seconds", 0.0)),
        image_pull_grace_seconds=float(setting("kubernetes_image_pull_grace_seconds", 60.0)),
        unschedulable_seconds=float(setting("kubernetes_unschedulable_seconds", 0.0)),
    )
