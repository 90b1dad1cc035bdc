"""API fuzzing with schemathesis over our own OpenAPI schema, in-process against the WSGI app,
as a CCEE staff member and as an agent's user: valid and invalid inputs for every operation, no
server error, and every answer conforms to the schema (status code, content type, headers, body).

Bounded for CI: FUZZ_EXAMPLES examples per operation, generation mode and user (default 25: about
500 requests). docs/benchmarks.md § API fuzzing has a longer run against gunicorn. Driven through
schemathesis' Python API (operation strategies + hypothesis) rather than its pytest plugin, whose
lazy-fixture loader does not run under pytest 9."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# Conformance of every answer, no 5xx, and invalid input refused. Not positive_data_acceptance:
# a wrong password is schema-valid and rightly a 400, which no schema can predict.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
]
# A fresh attestation needs a running enclave (tests/enclave_bridge tries it for real).
EXCLUDED = "/api/v1/enclave/attestation/"


@pytest.fixture
def wsgi_app(db):
    """Django's WSGI app on the test database: as Django's test client does, requests must not
    close the connection that holds the test's transaction."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def market(agent_a, agent_b):
    from tests.factories import week_with_parameters

    week_with_parameters()
    week_with_parameters()
    return [agent_a, agent_b]


def fuzz(app, token: str) -> collections.Counter:
    """Every operation, valid then invalid inputs; raises on the first failed check."""
    # The refusals of invalid input besides schemathesis' defaults (413: a generated list past a
    # maxItems can be past the body limit first) are those of the long run's configuration.
    config = schemathesis.Config.from_path(str(Path(__file__).with_name("schemathesis.toml")))
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", app, config=config)
    statuses: collections.Counter = collections.Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:
        if operation.path == EXCLUDED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call_and_validate(
                    headers={"Authorization": f"Token {token}"}, checks=CHECKS
                )
                statuses[response.status_code] += 1

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (an operation without parameters or body).
                assert mode is GenerationMode.NEGATIVE, operation.label
    return statuses


def test_api_conforms_to_its_schema_for_ccee_staff(wsgi_app, market, ccee_staff):
    from prudencial.access.tokens import token_create

    statuses = fuzz(wsgi_app, token_create(user=ccee_staff)[1])
    assert sum(statuses.values()) >= 6 * 2 * min(EXAMPLES, 5)
    assert not any(status >= 500 for status in statuses)


def test_api_conforms_to_its_schema_for_an_agent_s_user(wsgi_app, market, agent_user):
    from prudencial.access.tokens import token_create

    statuses = fuzz(wsgi_app, token_create(user=agent_user)[1])
    assert sum(statuses.values()) >= 6 * 2 * min(EXAMPLES, 5)
    assert not any(status >= 500 for status in statuses)
