"""Safe data: which URLs a project's task may read from and write to.

Inputs come from the project's own folder of the `inputs` area (its granted datasets) or from its
released outputs; outputs go only to the project's folder of the `released` area, and only through
quarantine and the release step. Every other URL, scheme or project is refused.
"""

from __future__ import annotations

from gateway.domain.errors import DestinationNotAllowed, InvalidRequest
from gateway.services.ports import Area, Location, ObjectStore, check_key


def _project_location(store: ObjectStore, url: str, areas: set[Area], project: str, what: str) -> Location:
    where = store.locate(url.rstrip("/"))
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


def input_location(store: ObjectStore, project: str, url: str) -> Location:
    return _project_location(store, url, {Area.INPUTS, Area.RELEASED}, project, "input url")


def output_location(store: ObjectStore, project: str, url: str) -> Location:
    return _project_location(store, url, {Area.RELEASED}, project, "output url")
