"""Safe people and safe projects: who the caller is and what they may see."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.domain.errors import Forbidden, InvalidRequest, NotFound


class Role(StrEnum):
    RESEARCHER = "researcher"
    OUTPUT_CHECKER = "output_checker"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `projects` are the approved projects the caller is a member of."""

    user: str
    roles: frozenset[Role]
    projects: frozenset[str]
    # Internal identities (the dispatcher, a WES engine) are marked so the audit trail can tell them apart.
    service: bool = False
    # A workflow engine's identity is confined to one run: it may read and write only that run's
    # folder of the work area, and every task it submits is tagged with the run.
    run_scope: str | None = None

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def can_see_project(self, project: str) -> bool:
        return self.is_admin or project in self.projects

    def require_role(self, *roles: Role) -> None:
        if not self.is_admin and not (self.roles & set(roles)):
            names = ", ".join(r.value for r in roles)
            raise Forbidden(f"this action needs one of the roles: {names}")

    def project_for_submission(self, requested: str | None) -> str:
        """Pick the project a new task belongs to, checking membership.

        The project comes from the request (a `project` tag) or, when the caller belongs to exactly one
        project, from the identity. Membership is required even for admins: every job belongs to one
        approved project its submitter is a member of.
        """
        self.require_role(Role.RESEARCHER)
        if requested:
            if requested not in self.projects:
                raise InvalidRequest(f"project {requested!r}: you are not a member of this project")
            return requested
        if len(self.projects) == 1:
            return next(iter(self.projects))
        if not self.projects:
            raise InvalidRequest("you are not a member of any project, so no task can be submitted")
        raise InvalidRequest(
            "you belong to several projects: name one with the 'project' tag"
        )

    def check_visible(self, project: str, what: str) -> None:
        """Raise NotFound (not Forbidden) so that other projects' objects stay undiscoverable."""
        if not self.can_see_project(project):
            raise NotFound(f"{what} not found")


def parse_roles(values: list[str]) -> frozenset[Role]:
    """Known roles from claim values; unknown names are ignored (an IdP carries other roles too)."""
    known = {r.value: r for r in Role}
    return frozenset(known[v] for v in values if v in known)
