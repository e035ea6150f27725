"""Safe settings: which container images a task may run.

A TRE admits only images it has reviewed and mirrored into its own registry. The policy maps the
names researchers write (`alpine`, `ubuntu:22.04`) to those mirrored images; anything else is refused
before the task is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.errors import ImageNotAllowed


def normalise_image(name: str) -> str:
    """`alpine`, `alpine:latest`, `docker.io/library/alpine` all become `docker.io/library/alpine:latest`."""
    name = name.strip()
    digest = ""
    if "@" in name:
        name, digest = name.split("@", 1)
        digest = "@" + digest
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    registry, _, path = name.partition("/")
    if registry in ("docker.io", "index.docker.io") and "/" not in path:
        name = "docker.io/library/" + path
    return name + digest


@dataclass(frozen=True)
class ImagePolicy:
    """`mapping` keys are requested names (with or without a tag); values are the images to run."""

    mapping: dict[str, str]

    def resolve(self, requested: str) -> str:
        wanted = normalise_image(requested)
        for key, target in self.mapping.items():
            norm = normalise_image(key)
            if norm == wanted:
                return target
            # A key given without a tag admits every tag of that repository.
            if ":" not in key.rsplit("/", 1)[-1] and "@" not in key:
                if wanted.rsplit(":", 1)[0] == norm.rsplit(":", 1)[0]:
                    return target
        raise ImageNotAllowed(
            f"image {requested!r} is not on this TRE's image policy; allowed: "
            + ", ".join(sorted(self.mapping))
        )
