"""Parameter validation whose messages name the offending parameter."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.validators import (
    VALIDATOR_MAP,
    JSONRequestBodyValidator,
    MultiPartFormDataValidator,
    ParameterValidator,
)
from starlette.formparsers import MultiPartException


class NamedParameterValidator(ParameterValidator):
    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> Any:
        error = ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        if error and not str(error).startswith("Missing"):
            sentence = str(error).split("\n\n", 1)[0]
            return f"{parameter_type} parameter '{param.get('name', param_name)}': {sentence}"
        return error


class Utf8JSONRequestBodyValidator(JSONRequestBodyValidator):
    """connexion decodes the body unguarded, so bytes that are not UTF-8 escaped as a 500."""

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Any) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        try:
            raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            raise BadRequestProblem(detail=f"request body: not valid {self._encoding} (byte {exc.start})") from None

        async def replay() -> AsyncGenerator[bytes, None]:
            yield raw

        return await super()._parse(replay(), scope)


class CheckedMultiPartValidator(MultiPartFormDataValidator):
    """A malformed multipart body (bad part headers, no boundary) escaped connexion's parser as a 500."""

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Any) -> Any:
        try:
            return await super()._parse(stream, scope)
        except MultiPartException as exc:
            raise BadRequestProblem(detail=f"request body: not a valid multipart form ({exc.message})") from None


def validator_map() -> dict[str, Any]:
    body = MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": Utf8JSONRequestBodyValidator,
                          "multipart/form-data": CheckedMultiPartValidator})
    return {**VALIDATOR_MAP, "parameter": NamedParameterValidator, "body": body}
