"""Fixtures of the API tests: no login lockout carried from one test to the next."""

from __future__ import annotations

import itertools

import pytest

_addresses = itertools.count(1)


@pytest.fixture(autouse=True)
def _no_lockout_left_over(request):
    """django-axes keeps failures in the database; clear them around every test that has one
    (the transaction's rollback does too, but not for transactional tests or a live server)."""
    if not {"db", "transactional_db"} & set(request.fixturenames):
        yield
        return
    from axes.utils import reset

    request.getfixturevalue(
        "transactional_db" if "transactional_db" in request.fixturenames else "db"
    )
    reset()
    yield
    reset()


@pytest.fixture
def fresh_address():
    """A client address no earlier test used, so throttle counters in the cache start at zero
    without clearing a cache that may be a shared Redis."""
    return lambda: f"2001:db8::{next(_addresses):x}"
