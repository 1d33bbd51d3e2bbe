"""Shared test settings: a deterministic hypothesis profile."""
from __future__ import annotations

from hypothesis import settings

settings.register_profile("ncg", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("ncg")
