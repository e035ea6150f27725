"""Who performed a phase: the gateway itself, or a person (requester, reviewer), as crate entities."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from gateway.domain.crates.model import Crate, Entity


def local_id(kind: str, key: str) -> str:
    """A crate-local `@id` for something the TRE names with a plain string (a user or project name)."""
    return f"#{kind}-{quote(key, safe='')}"


@dataclass(frozen=True)
class Agent:
    """An actor recorded as `agent` of an action. `id` is an absolute IRI (an ORCID, say) or a '#...' id."""

    id: str
    name: str
    type: str = "SoftwareApplication"

    @classmethod
    def person(cls, user: str, *, name: str | None = None, iri: str | None = None) -> Agent:
        """A human reviewer known to the TRE by `user`; `iri` (an ORCID) is used as the id when known."""
        return cls(iri or local_id("person", user), name or user, "Person")

    def entity(self) -> Entity:
        return {"@id": self.id, "@type": self.type, "name": self.name}


GATEWAY = Agent("#tre-gateway", "TRE Gateway", "SoftwareApplication")


def ensure_agent(crate: Crate, agent: Agent) -> None:
    """Describe `agent` in the crate unless an entity with its id is already there (it may carry more)."""
    if agent.id not in crate:
        crate.put(agent.entity())
