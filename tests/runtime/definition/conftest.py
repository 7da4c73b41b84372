"""Shared fixtures for the definition tests: the example definitions every release must run."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[3] / "examples"


@pytest.fixture(params=sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def example_text(request) -> str:
    return request.param.read_text(encoding="utf-8")
