"""Parameter validation whose messages name the offending parameter."""

from __future__ import annotations

from typing import Any

from connexion.validators import VALIDATOR_MAP, ParameterValidator


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


def validator_map() -> dict[str, Any]:
    return {**VALIDATOR_MAP, "parameter": NamedParameterValidator}
