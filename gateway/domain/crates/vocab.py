"""The identifiers the Five Safes RO-Crate profile builds on: profile IRIs, action statuses, phase types.

Values are the exact strings the profile's SHACL shapes compare against, so they must not be reformatted
(for example `actionStatus` is a plain string literal `http://schema.org/...`, not a compact term).
"""

from __future__ import annotations

from enum import StrEnum

SCHEMA_ORG = "http://schema.org/"
SAFE_HAVEN_PROVENANCE = "https://w3id.org/shp#"
FIVE_SAFES_PROFILE_BASE = "https://w3id.org/5s-crate/"
WORKFLOW_RO_CRATE_PREFIX = "https://w3id.org/workflowhub/workflow-ro-crate"
RO_CRATE_SPEC_BASE = "https://w3id.org/ro/crate/"
WORKFLOW_RUN_TERMS = "https://w3id.org/ro/terms/workflow-run#"

METADATA_FILE = "ro-crate-metadata.json"
ROOT_ID = "./"

# The checksum algorithm the BagIt manifests use; the profile names it as the instrument of checksum actions.
SHA512_ALGORITHM_ID = "https://www.iana.org/assignments/named-information#sha-512"


class ProfileVersion(StrEnum):
    """Five Safes RO-Crate profile versions this gateway understands."""

    V0_4 = "0.4"
    V0_5_DRAFT = "0.5-DRAFT"

    @property
    def iri(self) -> str:
        return FIVE_SAFES_PROFILE_BASE + self.value


class ActionStatus(StrEnum):
    """schema.org ActionStatusType, spelled as the profile's shapes expect it."""

    POTENTIAL = "http://schema.org/PotentialActionStatus"
    ACTIVE = "http://schema.org/ActiveActionStatus"
    COMPLETED = "http://schema.org/CompletedActionStatus"
    FAILED = "http://schema.org/FailedActionStatus"

    @property
    def is_final(self) -> bool:
        return self in (ActionStatus.COMPLETED, ActionStatus.FAILED)


class AssessmentType(StrEnum):
    """`additionalType` values of the profile's AssessActions (from the Safe Haven Provenance vocabulary)."""

    CHECK_VALUE = SAFE_HAVEN_PROVENANCE + "CheckValue"
    VALIDATION_CHECK = SAFE_HAVEN_PROVENANCE + "ValidationCheck"
    SIGN_OFF = SAFE_HAVEN_PROVENANCE + "SignOff"
    DISCLOSURE_CHECK = SAFE_HAVEN_PROVENANCE + "DisclosureCheck"


# `additionalType` of the publishing UpdateAction: the BagIt manifests were regenerated.
GENERATE_CHECK_VALUE = SAFE_HAVEN_PROVENANCE + "GenerateCheckValue"
