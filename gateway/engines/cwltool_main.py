"""cwltool, telling the step command each job's name and resources: `python -m gateway.engines.cwltool_main ARGS`.

With `--user-space-docker-cmd`, cwltool 3.3 passes neither a step's ResourceRequirement (`--cpus`,
`--memory` are only given to real docker) nor the job's name. This entry point appends
`--name=<job name> --cpus=<cores> --memory=<ram>m` to every docker-style invocation, which
`gateway.engines.cwl_step` turns into the task's `wes_step` tag and TES `resources`; otherwise it is
cwltool's own `main`, with the same arguments and exit codes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import MutableMapping
from typing import Any

from cwltool import udocker
from cwltool.context import RuntimeContext
from cwltool.docker import DockerCommandLineJob
from cwltool.main import main as cwltool_main

_create_runtime = udocker.UDockerCommandLineJob.create_runtime


def _create_runtime_with_step(
    self: DockerCommandLineJob, env: MutableMapping[str, str], runtime_context: RuntimeContext
) -> tuple[list[str], str | None]:
    runtime, cidfile = _create_runtime(self, env, runtime_context)
    resources: dict[str, Any] = dict(self.builder.resources)
    runtime.append(f"--name={self.name}")
    if resources.get("cores"):
        runtime.append(f"--cpus={math.ceil(float(resources['cores']))}")
    if resources.get("ram"):
        runtime.append(f"--memory={math.ceil(float(resources['ram']))}m")  # cwltool counts MiB
    return runtime, cidfile


def install() -> None:
    """Patch cwltool's user-space docker job (idempotent)."""
    udocker.UDockerCommandLineJob.create_runtime = _create_runtime_with_step  # type: ignore[method-assign,assignment]


def main(argv: list[str] | None = None) -> int:
    install()
    return int(cwltool_main(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
