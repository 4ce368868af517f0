"""Shared base for immutable domain models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    """Immutable pydantic model; unknown fields are refused so stored files stay honest."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())
