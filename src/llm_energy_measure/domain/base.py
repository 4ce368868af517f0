"""Shared base for immutable domain models, and the value types their fields use."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from llm_energy_measure.constants import MAX_COUNT


class FrozenModel(BaseModel):
    """Immutable pydantic model; unknown fields are refused so stored files stay honest.

    Every float must be finite (NaN and infinities are refused when a result is built and when
    it is read back: JSON has no NaN, and writing one would store ``null``).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", protected_namespaces=(), allow_inf_nan=False
    )


#: A count of tokens, requests, bytes or parameters: 0 .. MAX_COUNT (2**53).
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
#: A physical quantity that cannot be negative (seconds, joules, watts, FLOPs, rates).
NonNegative = Annotated[float, Field(ge=0)]
