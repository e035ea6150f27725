"""Structural checks of a request crate, run before anything else touches it.

They catch what a client most often gets wrong and say so in plain words. The SHACL shapes (run by the
adapter) remain the authority on the profile; these checks cover what the shapes cannot see, such as
the JSON-LD context version, and what the gateway itself relies on to process the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.domain.crates.model import Crate, Entity, reference_ids, types_of
from gateway.domain.crates.vocab import FIVE_SAFES_PROFILE_BASE, WORKFLOW_RO_CRATE_PREFIX
from gateway.domain.errors import InvalidRequest

# RO-Crate 1.2 or a later 1.x (drafts included): the profile needs the 1.2 vocabulary.
_RO_CRATE_CONTEXT = re.compile(r"https://w3id\.org/ro/crate/1\.([2-9]|[1-9][0-9])(-DRAFT)?/context")
_RO_CRATE_SPEC = re.compile(r"https://w3id\.org/ro/crate/1\.([2-9]|[1-9][0-9])(-DRAFT)?")


@dataclass(frozen=True)
class Problem:
    """One reason the crate cannot be processed. `code` is stable for programs, `message` is for people."""

    code: str
    message: str


def structural_problems(crate: Crate) -> tuple[Problem, ...]:
    """Everything structurally wrong with a request crate; empty when it can be processed."""
    problems = list(_context_problems(crate))
    descriptor = crate.find_descriptor()
    if descriptor is None:
        return (*problems, Problem("no_descriptor", "the crate has no 'ro-crate-metadata.json' descriptor entity"))
    if not any(_RO_CRATE_SPEC.fullmatch(i) for i in reference_ids(descriptor.get("conformsTo"))):
        problems.append(
            Problem(
                "ro_crate_version",
                "ro-crate-metadata.json must declare conformsTo RO-Crate 1.2 or later (https://w3id.org/ro/crate/1.2)",
            )
        )
    root = crate.find_root()
    if root is None:
        return (*problems, Problem("no_root", "the descriptor's 'about' does not lead to a root data entity"))
    if "Dataset" not in types_of(root):
        problems.append(Problem("root_not_dataset", "the root data entity must have @type Dataset"))
    problems.extend(_profile_problems(crate))
    workflow = _main_entity(crate, root, problems)
    _workflow_run_problems(crate, workflow, problems)
    return tuple(problems)


def require_processable(crate: Crate) -> None:
    """Raise InvalidRequest listing every structural problem, if there is any."""
    problems = structural_problems(crate)
    if problems:
        raise InvalidRequest("the crate is not a valid Five Safes request: " + "; ".join(p.message for p in problems))


def _context_problems(crate: Crate) -> list[Problem]:
    if any(_RO_CRATE_CONTEXT.fullmatch(url) for url in crate.context_urls()):
        return []
    return [
        Problem(
            "context_version",
            "@context must include the RO-Crate 1.2 (or later 1.x) context, https://w3id.org/ro/crate/1.2/context",
        )
    ]


def _profile_problems(crate: Crate) -> list[Problem]:
    declared = [i for i in reference_ids(crate.root().get("conformsTo")) if i.startswith(FIVE_SAFES_PROFILE_BASE)]
    if not declared:
        return [Problem("no_profile", "the root data entity must declare conformsTo a Five Safes RO-Crate profile")]
    try:
        crate.profile_version()
    except InvalidRequest as e:
        return [Problem("unknown_profile", e.msg)]
    return []


def _main_entity(crate: Crate, root: Entity, problems: list[Problem]) -> str | None:
    ids = reference_ids(root.get("mainEntity"))
    if not ids:
        problems.append(Problem("no_main_entity", "the root data entity has no mainEntity (the requested workflow)"))
        return None
    if len(ids) > 1:
        problems.append(Problem("several_main_entities", "the root data entity must have exactly one mainEntity"))
        return None
    workflow = crate.get(ids[0])
    if workflow is None:
        problems.append(Problem("missing_workflow", f"mainEntity {ids[0]!r} is not described in the crate"))
        return ids[0]
    if "Dataset" not in types_of(workflow):
        problems.append(Problem("workflow_not_dataset", f"mainEntity {ids[0]!r} must have @type Dataset"))
    profiles = reference_ids(workflow.get("conformsTo"))
    if len(profiles) != 1 or not profiles[0].startswith(WORKFLOW_RO_CRATE_PREFIX):
        problems.append(
            Problem(
                "workflow_profile",
                f"mainEntity {ids[0]!r} must declare exactly one conformsTo {WORKFLOW_RO_CRATE_PREFIX}/...",
            )
        )
    return ids[0]


def _workflow_run_problems(crate: Crate, workflow_id: str | None, problems: list[Problem]) -> None:
    runs = crate.mentioned_of_type("CreateAction")
    if not runs:
        problems.append(
            Problem("no_workflow_run", "the root data entity must mention a CreateAction (the requested workflow run)")
        )
        return
    if len(runs) > 1:
        problems.append(Problem("several_workflow_runs", "the crate must request exactly one workflow run"))
        return
    run = runs[0]
    if workflow_id is not None and reference_ids(run.get("instrument")) != [workflow_id]:
        problems.append(
            Problem("run_instrument", f"the CreateAction's instrument must be the mainEntity {workflow_id!r}")
        )
    for object_id in reference_ids(run.get("object")):
        if object_id not in crate:
            problems.append(
                Problem("missing_input", f"the CreateAction's object {object_id!r} is not described in the crate")
            )
    name = run.get("name")
    if not isinstance(name, str) or len(name) < 10:
        problems.append(Problem("run_name", "the CreateAction needs a name of at least 10 characters"))
