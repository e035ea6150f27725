"""Five Safes RO-Crate request and result crates (profile 0.4 and the 0.5 draft), as pure domain logic.

The model (`Crate`) works on the crate's flattened JSON-LD; reading archives, JSON-LD processing and
SHACL validation live in `gateway.adapters.crates`. A request goes through:

    admit_request(document, requester)     repair, structural checks, strip client actions, set requester
    plan_phase / start_phase / complete_phase / fail_phase     record each phase as the profile's action
    check_sign_off(...) + record_sign_off(...)                 the approved-workflow rule
    set_run_outputs(...) + record_disclosure(...)              released outputs and the reviewers' decision
"""

from gateway.domain.crates.admission import AdmittedRequest, admit_request
from gateway.domain.crates.agents import GATEWAY, Agent, local_id
from gateway.domain.crates.approval import (
    ApprovedWorkflow,
    RequestedWorkflow,
    RuleOutcome,
    check_sign_off,
    check_workflow_approved,
    record_sign_off,
)
from gateway.domain.crates.checks import Problem, require_processable, structural_problems
from gateway.domain.crates.model import Crate, Entity
from gateway.domain.crates.outputs import (
    DisclosureDecision,
    OutputFile,
    check_crate_path,
    record_disclosure,
    set_run_outputs,
)
from gateway.domain.crates.phases import (
    Phase,
    Policy,
    complete_phase,
    complete_workflow_retrieval,
    fail_phase,
    phase_action,
    phase_status,
    plan_phase,
    remove_client_actions,
    set_phase_agents,
    start_phase,
)
from gateway.domain.crates.repair import Repair, repair_type_keys
from gateway.domain.crates.requester import Organization, RequestingAgent, set_requesting_agent
from gateway.domain.crates.vocab import ActionStatus, AssessmentType, ProfileVersion

__all__ = [
    "GATEWAY",
    "ActionStatus",
    "AdmittedRequest",
    "Agent",
    "ApprovedWorkflow",
    "AssessmentType",
    "Crate",
    "DisclosureDecision",
    "Entity",
    "Organization",
    "OutputFile",
    "Phase",
    "Policy",
    "Problem",
    "ProfileVersion",
    "Repair",
    "RequestedWorkflow",
    "RequestingAgent",
    "RuleOutcome",
    "admit_request",
    "check_crate_path",
    "check_sign_off",
    "check_workflow_approved",
    "complete_phase",
    "complete_workflow_retrieval",
    "fail_phase",
    "local_id",
    "phase_action",
    "phase_status",
    "plan_phase",
    "record_disclosure",
    "record_sign_off",
    "remove_client_actions",
    "repair_type_keys",
    "require_processable",
    "set_phase_agents",
    "set_requesting_agent",
    "set_run_outputs",
    "start_phase",
    "structural_problems",
]
