"""Safe data: which URLs a project's task may read from and write to.

Inputs come from the project's own folder of the `inputs` area (its granted datasets) or from its
released outputs; outputs go only to the project's folder of the `released` area, and only through
quarantine and the release step. Every other URL, scheme or project is refused.

A workflow run's steps are the one exception: they read and write the run's own folder of the
`work` area (`<project>/runs/<run>/`), which never leaves the TRE. Only tasks of that run get it.
"""

from __future__ import annotations

from gateway.domain.errors import DestinationNotAllowed, InvalidRequest
from gateway.services.ports import Area, Location, ObjectStore, check_key


def run_work_prefix(project: str, run_id: str) -> str:
    """The folder of the `work` area that belongs to one workflow run."""
    return f"{project}/runs/{run_id}/"


def task_work_prefix(project: str, tags: dict[str, str]) -> str | None:
    """The run folder a task may use: set only for tasks tagged with a run (a tag only its engine can set)."""
    run = tags.get("wes_run")
    return run_work_prefix(project, run) if run else None


def _project_location(
    store: ObjectStore, url: str, areas: set[Area], project: str, what: str, work_prefix: str | None = None
) -> Location:
    where = store.locate(url.rstrip("/"))
    if where is not None and work_prefix is not None and where.area is Area.WORK:
        try:
            check_key(where.key)
        except InvalidRequest as exc:
            raise DestinationNotAllowed(f"{what} {url!r}: {exc.msg}") from exc
        if not (where.key + "/").startswith(work_prefix):
            raise DestinationNotAllowed(f"{what} {url!r} is outside this run's work folder")
        return where
    if where is None or where.area not in areas:
        allowed = ", ".join(store.url_for(a, project + "/") for a in sorted(areas, key=lambda a: a.value))
        raise DestinationNotAllowed(f"{what} {url!r} is outside this TRE's allowed locations ({allowed})")
    try:
        check_key(where.key)
    except InvalidRequest as exc:
        raise DestinationNotAllowed(f"{what} {url!r}: {exc.msg}") from exc
    if not where.key.startswith(project + "/"):
        raise DestinationNotAllowed(f"{what} {url!r} belongs to another project than {project!r}")
    return where


def input_location(store: ObjectStore, project: str, url: str, work_prefix: str | None = None) -> Location:
    return _project_location(store, url, {Area.INPUTS, Area.RELEASED}, project, "input url", work_prefix)


def output_location(store: ObjectStore, project: str, url: str, work_prefix: str | None = None) -> Location:
    return _project_location(store, url, {Area.RELEASED}, project, "output url", work_prefix)
