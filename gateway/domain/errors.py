"""Domain errors. Adapters translate vendor failures into these; the API maps them to HTTP once."""


class DomainError(Exception):
    """Base class; `msg` is safe to show to the caller."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


class InvalidRequest(DomainError):
    """The caller asked for something malformed or not allowed by policy."""


class ImageNotAllowed(InvalidRequest):
    """The requested container image is not on the TRE's image policy."""


class DestinationNotAllowed(InvalidRequest):
    """An input or output URL points outside what the TRE controls or the project may use."""


class NotFound(DomainError):
    """The object does not exist, or the caller may not know that it exists."""


class Unauthenticated(DomainError):
    """No identity could be established from the credentials."""


class Forbidden(DomainError):
    """The identity is known but lacks the role for this action."""


class Conflict(DomainError):
    """The request is valid but clashes with the object's current state."""


class BackendError(DomainError):
    """The compute backend or object store failed for reasons outside the task."""
