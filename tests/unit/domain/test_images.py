"""Image names: normalisation to full references, and the TRE's image policy."""

from __future__ import annotations

import pytest

from gateway.domain.errors import ImageNotAllowed, InvalidRequest
from gateway.domain.images import ImagePolicy, normalise_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name, expected",
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("  alpine  ", "docker.io/library/alpine:latest"),
        ("alpine:latest", "docker.io/library/alpine:latest"),
        ("alpine:3.19", "docker.io/library/alpine:3.19"),
        ("library/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/library/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/library/alpine:3.19", "docker.io/library/alpine:3.19"),
        ("biocontainers/samtools:1.9", "docker.io/biocontainers/samtools:1.9"),
        ("quay.io/biocontainers/samtools:1.9--h10a08f8_12", "quay.io/biocontainers/samtools:1.9--h10a08f8_12"),
        ("registry.example.org:5000/team/tool", "registry.example.org:5000/team/tool:latest"),
        ("registry.example.org:5000/team/tool:1.2", "registry.example.org:5000/team/tool:1.2"),
        ("registry:5000/tool", "registry:5000/tool:latest"),  # a port marks a registry even without a dot
        ("localhost/tre-base", "localhost/tre-base:latest"),
        ("localhost/tre-base:1", "localhost/tre-base:1"),
        ("localhost:5000/tool", "localhost:5000/tool:latest"),
        (f"alpine@{DIGEST}", f"docker.io/library/alpine@{DIGEST}"),
        (f"alpine:3.19@{DIGEST}", f"docker.io/library/alpine:3.19@{DIGEST}"),
        (f"localhost:5000/tool@{DIGEST}", f"localhost:5000/tool@{DIGEST}"),
    ],
)
def test_normalise_image(name: str, expected: str) -> None:
    assert normalise_image(name) == expected


def test_normalising_is_idempotent() -> None:
    for name in ("alpine", "registry:5000/tool", f"alpine@{DIGEST}", "localhost/tre-base"):
        once = normalise_image(name)
        assert normalise_image(once) == once


def test_docker_hub_official_image_without_library_namespace() -> None:
    assert normalise_image("docker.io/alpine") == "docker.io/library/alpine:latest"


# ---------------------------------------------------------------- policy


POLICY = ImagePolicy(
    {
        "alpine": "localhost/tre-base:latest",
        "ubuntu:22.04": "localhost/ubuntu:22.04",
        "registry.example.org:5000/team/tool": "localhost/tool:mirrored",
    }
)


@pytest.mark.parametrize(
    "requested, target",
    [
        ("alpine", "localhost/tre-base:latest"),
        ("alpine:latest", "localhost/tre-base:latest"),
        ("alpine:3.19", "localhost/tre-base:latest"),
        ("docker.io/library/alpine:edge", "localhost/tre-base:latest"),
        ("library/alpine", "localhost/tre-base:latest"),
        ("ubuntu:22.04", "localhost/ubuntu:22.04"),
        ("docker.io/library/ubuntu:22.04", "localhost/ubuntu:22.04"),
        ("registry.example.org:5000/team/tool", "localhost/tool:mirrored"),
        ("registry.example.org:5000/team/tool:2", "localhost/tool:mirrored"),
    ],
)
def test_allowed_images_resolve_to_their_mirror(requested: str, target: str) -> None:
    assert POLICY.resolve(requested) == target


@pytest.mark.parametrize(
    "requested",
    [
        "ubuntu",             # tagged key admits only that tag: not latest
        "ubuntu:24.04",
        "alpine-evil",        # a repository whose name merely starts like an allowed one
        "evil/alpine",        # same name, other namespace
        "quay.io/library/alpine",  # same path, other registry
        "registry.example.org/team/tool",  # other port
        "registry.example.org:5000/team/tool-x",
        "python:3.12",
    ],
)
def test_unknown_images_are_refused(requested: str) -> None:
    with pytest.raises(ImageNotAllowed):
        POLICY.resolve(requested)


def test_refusal_names_the_image_and_lists_allowed_names() -> None:
    with pytest.raises(ImageNotAllowed) as info:
        POLICY.resolve("python:3.12")
    msg = info.value.msg
    assert "'python:3.12'" in msg
    assert msg.endswith("allowed: alpine, registry.example.org:5000/team/tool, ubuntu:22.04")
    assert isinstance(info.value, InvalidRequest)  # so the API answers 400


def test_key_with_digest_admits_only_that_digest() -> None:
    policy = ImagePolicy({f"alpine@{DIGEST}": "localhost/pinned"})
    assert policy.resolve(f"docker.io/library/alpine@{DIGEST}") == "localhost/pinned"
    for other in ("alpine", "alpine:3.19", "alpine@sha256:" + "cd" * 32):
        with pytest.raises(ImageNotAllowed):
            policy.resolve(other)


def test_empty_policy_refuses_everything() -> None:
    with pytest.raises(ImageNotAllowed):
        ImagePolicy({}).resolve("alpine")
