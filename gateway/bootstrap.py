"""The composition root: builds every adapter and service from Settings.

Implementations are chosen by name; an unknown name fails at start-up, listing the known ones.
Tests pass their own fakes through `overrides`.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from gateway.adapters.db.airlock_repository import (
    SqlAuditLog,
    SqlEgressRequestRepository,
    SqlProjectPolicyRepository,
)
from gateway.adapters.db.engine import make_engine, migrate
from gateway.adapters.db.repository import (
    SqlAccessTokenRepository,
    SqlMembershipRepository,
    SqlTaskRepository,
)
from gateway.adapters.db.run_repository import SqlRunRepository
from gateway.adapters.metrics import Metrics
from gateway.config import Settings, SettingsError
from gateway.domain.airlock import ProjectPolicy
from gateway.domain.egress import EgressPolicy
from gateway.domain.errors import InvalidRequest
from gateway.domain.images import ImagePolicy
from gateway.services.access_tokens import AccessTokenService
from gateway.services.airlock import AirlockService
from gateway.services.authentication import Authenticator, CachedMemberships, ClaimNames
from gateway.services.disclosure import make_content_inspector
from gateway.services.dispatcher import Dispatcher
from gateway.services.egress import EgressService
from gateway.services.ports import ComputeBackend, ObjectStore
from gateway.services.run_runner import RunRunner
from gateway.services.runner import TaskRunner
from gateway.services.runs import RunService
from gateway.services.submissions import SubmissionService
from gateway.services.tasks import TaskService

if TYPE_CHECKING:
    from gateway.adapters.crates.run_provenance import RunCrateBuilder


def _local_store(settings: Settings) -> ObjectStore:
    from gateway.adapters.storage.local import LocalObjectStore

    return LocalObjectStore(settings.resolved_store_dir)


def _podman_backend(settings: Settings, store: ObjectStore) -> ComputeBackend:
    from gateway.adapters.compute.podman import PodmanBackend

    return PodmanBackend(
        store,
        settings.resolved_workspace_dir,
        containers_conf=settings.resolved_containers_conf,
        helper_binary=settings.helper_binary,
        uid=settings.executor_uid,
        gid=settings.executor_gid,
        instance=settings.resolved_instance_id,
    )


def _s3_store(settings: Settings) -> ObjectStore:
    from gateway.adapters.storage.s3 import s3_store_from_settings

    return s3_store_from_settings(settings)


OBJECT_STORES: dict[str, Callable[[Settings], ObjectStore]] = {"local": _local_store, "s3": _s3_store}
def _kubernetes_backend(settings: Settings, store: ObjectStore) -> ComputeBackend:
    from gateway.adapters.compute.kubernetes import kubernetes_backend_from_settings

    return kubernetes_backend_from_settings(settings, store)


COMPUTE_BACKENDS: dict[str, Callable[[Settings, ObjectStore], ComputeBackend]] = {
    "podman": _podman_backend,
    "kubernetes": _kubernetes_backend,
}


def backend_parameters(settings: Settings) -> list[str]:
    """The `resources.backend_parameters` keys the configured backend understands (for service-info)."""
    if settings.compute_backend == "kubernetes":
        from gateway.adapters.compute.k8s.manifests import BACKEND_PARAMETERS

        return sorted(BACKEND_PARAMETERS)
    return []


def _installed(package: str) -> tuple[str, ...]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return (version(package),)
    except PackageNotFoundError:
        return ()


def choose(registry: dict[str, Any], name: str, what: str) -> Any:
    if name not in registry:
        raise SettingsError(f"{what} {name!r} is unknown; choose one of: {', '.join(sorted(registry))}")
    return registry[name]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    """Time-ordered and unguessable: 12 hex digits of milliseconds, then 64 random bits."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


@dataclass
class Components:
    settings: Settings
    engine: Engine
    store: ObjectStore
    tasks: TaskService
    access_tokens: AccessTokenService
    airlock: AirlockService
    runs: RunService
    submissions: SubmissionService
    authenticator: Authenticator | None
    metrics: Metrics
    backend_factory: Callable[[], ComputeBackend]
    _backend: ComputeBackend | None = field(default=None, init=False)
    _dispatcher: Dispatcher | None = field(default=None, init=False)
    _run_crates: RunCrateBuilder | None = field(default=None, init=False)

    @property
    def backend(self) -> ComputeBackend:
        """Built on first use: an API-only process never needs the container runtime."""
        if self._backend is None:
            self._backend = self.backend_factory()
        return self._backend

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            s = self.settings
            egress = self.egress_service()
            runner = TaskRunner(
                repo=self.tasks.repo,
                backend=self.backend,
                store=self.store,
                images=self.tasks.images,
                egress=egress,
                now=utcnow,
                audit=self.airlock.audit,
                observer=self.metrics,
                on_cancel=self.airlock.withdraw,
            )
            worker_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
            self._dispatcher = Dispatcher(
                repo=self.tasks.repo,
                runner=runner,
                backend=self.backend,
                followers=tuple(f for f in (self.run_runner(worker_id, egress), self.submissions) if f is not None),
                worker_id=worker_id,
                poll_interval=s.dispatcher_poll_seconds,
                lease_seconds=s.dispatcher_lease_seconds,
                threads=s.dispatcher_threads,
                observer=self.metrics,
            )
            self.tasks.wake = self._dispatcher.wake
            self.runs.wake = self._dispatcher.wake
        return self._dispatcher

    @property
    def run_crates(self) -> RunCrateBuilder:
        """Builds Workflow Run RO-Crates of finished runs (made on first use: it loads rocrate)."""
        if self._run_crates is None:
            from gateway.adapters.crates.run_provenance import RunCrateBuilder

            root = getattr(self.store, "root", None)
            if root is None:
                raise InvalidRequest("run crates need a filesystem-backed work area (object_store = 'local')")
            version = self.runs.engine_versions[0] if self.runs.engine_versions else None
            self._run_crates = RunCrateBuilder(self.runs, self.store, Path(root) / "work", version)
        return self._run_crates

    def run_runner(self, worker_id: str, egress: EgressService) -> RunRunner | None:
        """The driver of workflow runs, when the object store can host an engine's files."""
        root = getattr(self.store, "root", None)
        if self.runs.unavailable_reason or root is None:
            return None
        from gateway.adapters.engines.cwltool import CwltoolEngine

        s = self.settings
        hidden = (s.data_dir, s.resolved_workspace_dir, Path(root))
        engine = CwltoolEngine(Path(root) / "work", s.engine_api_url, s.wes_default_image, worker_id,
                               sandbox=s.wes_engine_sandbox, hidden=hidden,
                               on_exit=lambda: self._dispatcher.wake() if self._dispatcher else None)
        return RunRunner(
            repo=self.runs.repo,
            tasks=self.tasks,
            store=self.store,
            engine=engine,
            now=utcnow,
            mint_credential=self.runs.mint_engine_credential,
            worker_id=worker_id,
            release_image=s.wes_default_image,
            lease_seconds=s.dispatcher_lease_seconds,
            egress=egress,
        )

    def egress_service(self) -> EgressService:
        s = self.settings
        return EgressService(
            store=self.store,
            policy=EgressPolicy(
                max_file_bytes=s.egress_max_file_bytes,
                max_total_bytes=s.egress_max_total_bytes,
                allowed_extensions=frozenset(e.lower() for e in s.egress_allowed_extensions),
            ),
            now=utcnow,
            requests=self.airlock.requests,
            project_policy=self.airlock.policy_for,
            audit=self.airlock.audit,
            inspect_content=make_content_inspector(self.store),
        )


def default_project_policy(settings: Settings) -> ProjectPolicy:
    return ProjectPolicy(
        required_approvals=settings.egress_required_approvals,
        auto_release_clean=settings.egress_review == "automatic",
        small_cell_threshold=settings.egress_small_cell_threshold,
        max_rows=settings.egress_max_rows,
    ).validated()


def build(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    backend: ComputeBackend | None = None,
) -> Components:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store_factory = choose(OBJECT_STORES, settings.object_store, "object_store")
    backend_factory = choose(COMPUTE_BACKENDS, settings.compute_backend, "compute_backend")
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    repo = SqlTaskRepository(engine)
    store = store or store_factory(settings)
    metrics = Metrics(repo.count_by_state)
    access_tokens = AccessTokenService(SqlAccessTokenRepository(engine), time.time)
    authenticator = None
    if settings.auth != "none":
        from gateway.adapters.auth.jwt_tokens import JwtVerifier, claim_list, load_or_create_dev_secret

        if settings.auth == "dev":
            verifier = JwtVerifier(mode="dev", dev_secret=load_or_create_dev_secret(settings.dev_secret_file))
        else:
            pem = settings.oidc_public_key_file.read_text() if settings.oidc_public_key_file else None
            verifier = JwtVerifier(
                mode="oidc",
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience or None,
                jwks_url=settings.oidc_jwks_url or None,
                public_key_pem=pem,
            )
        authenticator = Authenticator(
            verifier=verifier,
            access_tokens=access_tokens,
            memberships=CachedMemberships(SqlMembershipRepository(engine), ttl=30.0, clock=time.monotonic),
            claims=ClaimNames(settings.claim_username, settings.claim_roles, settings.claim_projects),
            claim_list=claim_list,
        )
    audit = SqlAuditLog(engine)
    airlock = AirlockService(
        requests=SqlEgressRequestRepository(engine),
        tasks=repo,
        store=store,
        audit=audit,
        policies=SqlProjectPolicyRepository(engine),
        default_policy=default_project_policy(settings),
        now=utcnow,
    )
    tasks = TaskService(
        repo=repo,
        audit=audit,
        store=store,
        images=ImagePolicy(dict(settings.image_policy)),
        new_id=new_task_id,
        now=utcnow,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
    )
    from gateway.adapters.workflow_sources import fetch_workflow

    runs = RunService(
        repo=SqlRunRepository(engine),
        tasks=tasks,
        store=store,
        new_id=new_task_id,
        now=utcnow,
        workflow_url_prefixes=tuple(settings.wes_workflow_url_prefixes),
        fetch_workflow=fetch_workflow,
        max_workflow_bytes=settings.wes_max_workflow_bytes,
        unavailable_reason=None if hasattr(store, "root") else (
            "workflow engines need a filesystem-backed work area (object_store = 'local')"),
        audit=audit,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
        engine_versions=_installed("cwltool"),
    )
    from gateway.adapters.crates.mirror import FolderWorkflowMirror
    from gateway.adapters.crates.tools import LocalCrateTools
    from gateway.adapters.db.submission_repository import SqlCratePolicyRepository, SqlSubmissionRepository

    root = getattr(store, "root", None)
    submissions = SubmissionService(
        repo=SqlSubmissionRepository(engine),
        policies=SqlCratePolicyRepository(engine),
        runs=runs,
        egress_requests=airlock.requests,
        tools=LocalCrateTools(),
        mirror=FolderWorkflowMirror(settings.five_safes_workflow_mirror),
        store=store,
        work_root=Path(root) / "work" if root is not None else None,
        new_id=new_task_id,
        now=utcnow,
        audit=audit,
    )
    chosen_store = store
    return Components(
        settings=settings,
        engine=engine,
        store=chosen_store,
        tasks=tasks,
        access_tokens=access_tokens,
        airlock=airlock,
        runs=runs,
        submissions=submissions,
        authenticator=authenticator,
        metrics=metrics,
        backend_factory=(lambda: backend) if backend is not None else (lambda: backend_factory(settings, chosen_store)),
    )
