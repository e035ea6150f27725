"""Thin TES handlers, named by operationId: parse, call a use case, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import bootstrap
from gateway.bootstrap import Components
from gateway.domain.task import View
from gateway.domain.views import task_document
from gateway.services.ports import Area

VERSION = "0.1.0"


def service_info(c: Components) -> dict[str, Any]:
    backend_parameters = bootstrap.backend_parameters(c.settings)
    return {
        "id": "org.tre-gateway.tes",
        "name": "TRE Gateway TES",
        "type": {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"},
        "description": "GA4GH TES inside a Trusted Research Environment: sandboxed jobs, reviewed outputs.",
        "organization": {"name": "TRE Gateway", "url": c.settings.base_url + "/"},
        "documentationUrl": c.settings.base_url + "/ga4gh/tes/v1/ui/",
        "environment": "dev" if c.settings.auth != "oidc" else "prod",
        "version": VERSION,
        "storage": [c.store.url_for(Area.INPUTS), c.store.url_for(Area.RELEASED)],
        "tesResources_backend_parameters": backend_parameters,
    }


def handlers(c: Components) -> dict[str, Callable[..., Any]]:
    def GetServiceInfo() -> dict[str, Any]:
        return service_info(c)

    def CreateTask(body: dict[str, Any], token_info: dict[str, Any]) -> dict[str, Any]:
        task = c.tasks.create(token_info["principal"], body)
        return {"id": task.id}

    def GetTask(id: str, token_info: dict[str, Any], view: str = "MINIMAL") -> dict[str, Any]:  # noqa: A002
        return task_document(c.tasks.get(token_info["principal"], id), View(view))

    def ListTasks(
        token_info: dict[str, Any],
        name_prefix: str | None = None,
        state: str | None = None,
        tag_key: list[str] | None = None,
        tag_value: list[str] | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        view: str = "MINIMAL",
    ) -> dict[str, Any]:
        result = c.tasks.list(
            token_info["principal"],
            name_prefix=name_prefix,
            state=state,
            tag_keys=tag_key,
            tag_values=tag_value,
            size=page_size,
            token=page_token,
        )
        body: dict[str, Any] = {"tasks": [task_document(t, View(view)) for t in result.tasks]}
        if result.next_page_token:
            body["next_page_token"] = result.next_page_token
        return body

    def CancelTask(id: str, token_info: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        c.tasks.cancel(token_info["principal"], id)
        return {}

    return {
        "GetServiceInfo": GetServiceInfo,
        "CreateTask": CreateTask,
        "GetTask": GetTask,
        "ListTasks": ListTasks,
        "CancelTask": CancelTask,
    }
