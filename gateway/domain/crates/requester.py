"""Safe people, safe projects: the requester and project come from the authenticated identity.

A client can write any Person and Project into its crate. The gateway replaces both with what it knows
from authentication: the CreateAction's `agent` becomes the authenticated user, a member of the project
the request runs under, and the root's `sourceOrganization` becomes that project.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.crates.agents import local_id
from gateway.domain.crates.model import Crate, Entity, reference_ids, types_of


@dataclass(frozen=True)
class Organization:
    """The requester's institution (a ROR IRI, ideally); recorded as their affiliation and a project member."""

    id: str
    name: str


@dataclass(frozen=True)
class RequestingAgent:
    """The authenticated requester and the project the request runs under, as crate entities."""

    person_id: str
    person_name: str
    project_id: str
    project_name: str
    # The TRE's own name for the project, kept as the Project's `identifier`.
    project_key: str
    affiliation: Organization | None = None

    @classmethod
    def member(
        cls,
        user: str,
        project: str,
        *,
        person_iri: str | None = None,
        person_name: str | None = None,
        project_name: str | None = None,
        affiliation: Organization | None = None,
    ) -> RequestingAgent:
        """Build from the TRE's user and project names; an ORCID `person_iri` is used as the id when known."""
        return cls(
            person_id=person_iri or local_id("person", user),
            person_name=person_name or user,
            project_id=local_id("project", project),
            project_name=project_name or project,
            project_key=project,
            affiliation=affiliation,
        )


def set_requesting_agent(crate: Crate, requester: RequestingAgent) -> None:
    """Make `requester` the agent of the workflow run and its project the crate's `sourceOrganization`.

    With an affiliation, the organisation is the person's `affiliation` and a `member` of the project,
    which is how the profile relates a requester's institution to the project.

    Person and Project entities the client supplied in those places are dropped once nothing else in
    the crate refers to them, so they cannot be mistaken for the authenticated ones.
    """
    root = crate.root()
    run = crate.workflow_run()
    replaced = set(reference_ids(run.get("agent"))) | set(reference_ids(root.get("sourceOrganization")))
    project: Entity = {
        "@id": requester.project_id,
        "@type": "Project",
        "name": requester.project_name,
        "identifier": requester.project_key,
    }
    person: Entity = {
        "@id": requester.person_id,
        "@type": "Person",
        "name": requester.person_name,
        "memberOf": {"@id": requester.project_id},
    }
    if requester.affiliation is not None:
        organization = requester.affiliation
        crate.put({"@id": organization.id, "@type": "Organization", "name": organization.name})
        person["affiliation"] = {"@id": organization.id}
        project["member"] = {"@id": organization.id}
    crate.put(project)
    crate.put(person)
    run["agent"] = {"@id": requester.person_id}
    root["sourceOrganization"] = {"@id": requester.project_id}
    replaced -= {requester.person_id, requester.project_id}
    # A client Person may name its project through memberOf: drop people first, then their projects.
    people = [i for i in replaced if "Person" in types_of(crate.get(i) or {})]
    crate.remove([i for i in people if not crate.is_referenced(i)])
    crate.remove([i for i in replaced - set(people) if i in crate and not crate.is_referenced(i)])
