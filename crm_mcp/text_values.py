"""Text values a tool also takes as numbers or booleans.

The contract stores a custom object's field values and a custom object schema's default values as
text ("42", "true"), whatever the field's type. An agent naturally writes `42` or `true` for a
number or boolean field: the argument takes those and converts them to the text the contract
stores, rather than refusing them. The generated input models use `TextValue` for those fields
(`tools/generate.py`, TEXT_VALUES).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def as_text(value: str | int | float | bool) -> str:
    """42 -> "42", 2.5 -> "2.5", True -> "true" (JSON's spelling, which the CRM's boolean fields take)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


TextValue = Annotated[str | int | float | bool, AfterValidator(as_text)]
