"""One typed settings object. Read from a TOML file and `TRE_GATEWAY_*` environment variables
(environment wins), then passed into the app factory: nothing reads configuration at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "TRE_GATEWAY_"

DEFAULT_IMAGE_POLICY = {
    "alpine": "localhost/tre-base:latest",
    "busybox": "localhost/tre-base:latest",
}


class SettingsError(ValueError):
    """A setting has an unknown name or a value of the wrong form."""


@dataclass(frozen=True)
class Settings:
    """Every setting, with its default. Field docs appear in `tre-gateway config --help` and README."""

    data_dir: Path = Path(".tre-gateway")
    host: str = "127.0.0.1"
    port: int = 8080
    # External base URL (behind a proxy); defaults to http://host:port.
    public_url: str = ""
    # Distinguishes gateways that share a container runtime (default: derived from data_dir).
    instance_id: str = ""
    database_url: str = ""  # default: SQLite file in data_dir
    compute_backend: str = "podman"
    object_store: str = "local"
    store_dir: Path | None = None  # default: data_dir/store
    workspace_dir: Path | None = None  # default: data_dir/work
    # object_store = "s3": one bucket, an optional key prefix; credentials are read from files
    # (Kubernetes Secrets mounted as files), never from the environment or the command line.
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_prefix: str = ""
    s3_addressing_style: str = "path"
    s3_access_key_id_file: Path | None = None
    s3_secret_access_key_file: Path | None = None
    s3_ca_bundle: Path | None = None
    s3_create_bucket: bool = False
    s3_multipart_threshold_bytes: int = 8 << 20
    # compute_backend = "kubernetes" (docs/kubernetes-backend.md)
    kubernetes_namespace: str = ""
    kubernetes_kubeconfig: Path | None = None
    kubernetes_context: str = ""
    kubernetes_service_account: str = ""
    kubernetes_helper_image: str = ""
    kubernetes_helper_path: str = ""  # default: helper_binary
    kubernetes_stager_image: str = ""  # default: the helper image
    kubernetes_stager_credentials_secret: str = ""
    kubernetes_image_pull_policy: str = "IfNotPresent"
    kubernetes_storage_class: str = ""
    kubernetes_node_selector: dict[str, str] = field(default_factory=dict)
    kubernetes_gpu_resource: str = "nvidia.com/gpu"
    kubernetes_max_gpus: int = 8
    kubernetes_active_deadline_seconds: int = 0
    kubernetes_keep_failed_seconds: float = 0.0
    kubernetes_resync_seconds: float = 300.0
    kubernetes_image_pull_grace_seconds: float = 60.0
    kubernetes_unschedulable_seconds: float = 0.0
    containers_conf: Path | None = None  # default: the one shipped with the gateway
    helper_binary: Path = Path("/bin/busybox")
    executor_uid: int = 10001
    executor_gid: int = 10001
    image_policy: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGE_POLICY))
    auth: str = "dev"  # dev | oidc | none
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_public_key_file: Path | None = None
    claim_username: str = "preferred_username"
    claim_roles: str = "roles"
    claim_projects: str = "projects"
    egress_review: str = "human"  # human | automatic
    egress_required_approvals: int = 1
    egress_small_cell_threshold: int = 10
    egress_max_rows: int = 1_000_000
    egress_max_file_bytes: int = 1 << 30
    egress_max_total_bytes: int = 4 << 30
    egress_allowed_extensions: list[str] = field(
        default_factory=lambda: [".txt", ".csv", ".tsv", ".json", ".md", ".log", ".png", ".pdf", ".html", ""]
    )
    max_request_bytes: int = 16 << 20
    # WES: the image for CWL steps without a DockerRequirement (a name the image policy knows).
    wes_default_image: str = "alpine"
    # Absolute workflow_url prefixes the gateway may fetch (a TRE's own registry mirror); nothing else.
    wes_workflow_url_prefixes: list[str] = field(default_factory=list)
    wes_max_workflow_bytes: int = 4 << 20
    # How the workflow engine reaches this gateway's TES API (default: http://host:port, loopback for 0.0.0.0).
    wes_engine_api_url: str = ""
    # "bwrap": the engine sees only its run's files (needs bubblewrap); "none": unconfined (never in a TRE).
    wes_engine_sandbox: str = "bwrap"
    # Five Safes crates: the folder of Workflow RO-Crates the TRE has approved copies of (index.json inside).
    five_safes_workflow_mirror: Path | None = None
    default_page_size: int = 256
    max_page_size: int = 2047
    dispatcher_poll_seconds: float = 0.5
    dispatcher_lease_seconds: float = 30.0
    dispatcher_threads: int = 4
    log_level: str = "INFO"
    log_json: bool = True

    # ------------------------------------------------------------ derived

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @property
    def resolved_instance_id(self) -> str:
        """Names this gateway's containers; by default derived from its data directory."""
        if self.instance_id:
            return self.instance_id
        return hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]

    @property
    def resolved_store_dir(self) -> Path:
        return self.store_dir or self.data_dir / "store"

    @property
    def resolved_workspace_dir(self) -> Path:
        return self.workspace_dir or self.data_dir / "work"

    @property
    def resolved_containers_conf(self) -> Path:
        return self.containers_conf or Path(__file__).parent / "adapters" / "compute" / "containers.conf"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def engine_api_url(self) -> str:
        if self.wes_engine_api_url:
            return self.wes_engine_api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 - a comparison
        return f"http://{host}:{self.port}"

    @property
    def dev_secret_file(self) -> Path:
        return self.data_dir / "dev-jwt-secret"

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, env: Mapping[str, str], config_file: Path | None = None, **overrides: Any) -> Settings:
        """Defaults < config file < environment < explicit overrides (e.g. command-line flags)."""
        values: dict[str, Any] = {}
        path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
        if path is not None:
            with open(path, "rb") as fh:
                values.update(tomllib.load(fh))
        for key, raw in env.items():
            if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
                values[key[len(ENV_PREFIX):].lower()] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        parsed = {name: _coerce(name, hints[name], value) for name, value in values.items()}
        settings = cls(**parsed)
        settings.validate()
        return settings

    def validate(self) -> None:
        choices = {"auth": ("dev", "oidc", "none"), "egress_review": ("human", "automatic"),
                   "wes_engine_sandbox": ("bwrap", "none")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.auth == "oidc" and not (self.oidc_issuer and (self.oidc_audience or self.oidc_public_key_file)):
            raise SettingsError("auth=oidc needs oidc_issuer and oidc_audience")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise SettingsError("default_page_size must be between 1 and max_page_size")


def _coerce(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)][0]
        if value in (None, ""):
            return None
        return _coerce(name, inner, value)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint in (int, float, str):
            return hint(value)
        if hint is Path:
            return Path(value)
        if origin is dict:
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("{") else dict(
                    item.split("=", 1) for item in value.split(",") if item.strip()
                )
            return {str(k).strip(): str(v).strip() for k, v in value.items()}
        if origin is list:
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else value.split(",")
            return [str(v).strip() for v in value]
    except (ValueError, TypeError, AttributeError) as exc:
        raise SettingsError(f"{name}: cannot read {value!r} as {hint}") from exc
    raise SettingsError(f"{name}: unsupported setting type {hint}")
