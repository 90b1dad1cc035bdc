"""Shared fixtures for the risk engine tests (pure computation: no database)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "prudencial" / "risk" / "examples"


def _load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture
def worked_portfolio() -> dict:
    return copy.deepcopy(_load("worked_example_portfolio.json"))


@pytest.fixture
def worked_parameters() -> dict:
    return copy.deepcopy(_load("worked_example_parameters.json"))


@pytest.fixture
def counterparties_payload() -> dict:
    return copy.deepcopy(_load("counterparties.json"))
