"""Content checks of quarantined outputs: tabular disclosure rules and ACRO verdicts, streamed from the store."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from gateway.domain.airlock import ProjectPolicy
from gateway.domain.disclosure import CellFlag, TabularPolicy, acro_check, check_tabular, parse_acro_results
from gateway.domain.egress import CheckResult, QuarantinedFile, extension_of
from gateway.services.ports import Area, ObjectStore

ACRO_RESULTS = "results.json"
MAX_ACRO_BYTES = 16 << 20
DELIMITERS = {".csv": ",", ".tsv": "\t"}


def acro_verdicts(store: ObjectStore, files: list[QuarantinedFile]) -> dict[str, str]:
    """Verdicts from any ACRO results.json among the outputs (file name -> pass/fail/review)."""
    verdicts: dict[str, str] = {}
    for f in files:
        if posixpath.basename(f.container_path) == ACRO_RESULTS and f.size_bytes <= MAX_ACRO_BYTES:
            with store.open(Area.QUARANTINE, f.quarantine_key) as stream:
                verdicts.update(parse_acro_results(stream.read()))
    return verdicts


def make_content_inspector(
    store: ObjectStore,
) -> Callable[[QuarantinedFile, ProjectPolicy, dict[str, str]], tuple[tuple[CheckResult, ...], tuple[CellFlag, ...]]]:
    def inspect(
        f: QuarantinedFile, policy: ProjectPolicy, acro: dict[str, str]
    ) -> tuple[tuple[CheckResult, ...], tuple[CellFlag, ...]]:
        checks: list[CheckResult] = []
        flags: tuple[CellFlag, ...] = ()
        delimiter = DELIMITERS.get(extension_of(f.container_path))
        if delimiter is not None:
            rules = TabularPolicy(max_rows=policy.max_rows, small_cell_threshold=policy.small_cell_threshold)
            with store.open(Area.QUARANTINE, f.quarantine_key) as stream:
                outcome = check_tabular(stream, delimiter, rules)
            checks.extend(outcome.results)
            flags = outcome.flagged_cells
        verdict = acro_check(posixpath.basename(f.container_path), acro)
        if verdict is not None:
            checks.append(verdict)
        return tuple(checks), flags

    return inspect
