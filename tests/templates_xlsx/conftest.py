"""Fixtures of the template, schema and registry-lookup tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def week(db):
    """A week with parameters (M+0 = the code's month), default energy types."""
    from tests.factories import week_with_parameters

    return week_with_parameters()


@pytest.fixture
def week_two_types(db):
    """A week whose energy types are only conventional and incentivized 50%."""
    from prudencial.models import RiskParameters
    from tests.factories import week_with_parameters

    week = week_with_parameters()
    RiskParameters.objects.filter(week=week).update(
        energy_types=["conventional", "incentivized_50"]
    )
    week.refresh_from_db()
    return week
