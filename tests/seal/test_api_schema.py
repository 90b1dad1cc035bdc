"""The seal's answers in the OpenAPI schema: each operation's success answer is a named component
with its properties (not a free-form object), its errors the API's shared ``Error`` answers, and
the real bodies validate against those components (strictly: no key the schema does not name)
and against their serializers. The schema is generated as tests/api does (GET /api/v1/schema/,
with the project's postprocessing hooks)."""

from __future__ import annotations

import jsonschema
import pytest

from seal import api, selectors, services
from tests.seal.conftest import PDF, decide_all
from tests.seal.test_adherence import evaluation as enclave_evaluation  # noqa: F401
from tests.seal.test_adherence import market  # noqa: F401

pytestmark = pytest.mark.django_db

EVALUATIONS = "/api/v1/seal/evaluations/"
DETAIL = "/api/v1/seal/evaluations/{id}/"

# (path, method, success status) → (component, an array of it?, serializer)
OPERATIONS = {
    (EVALUATIONS, "get", "200"): ("EvaluationSummary", True, api.EvaluationSummarySerializer),
    (DETAIL, "get", "200"): ("EvaluationDetail", False, api.EvaluationDetailSerializer),
    (f"{DETAIL}adherence/", "get", "200"): ("Adherence", False, api.AdherenceSerializer),
    (f"{DETAIL}responses/", "post", "201"): (
        "ResponseCreated",
        False,
        api.ResponseCreatedSerializer,
    ),
    (f"{DETAIL}evidence/", "post", "201"): (
        "EvidenceCreated",
        False,
        api.EvidenceCreatedSerializer,
    ),
}


@pytest.fixture
def schema(api_client):
    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def strict(node, components):
    """An OpenAPI 3.0 schema as JSON Schema: references inlined, ``nullable`` as a null
    alternative, and an object with properties closed to any other key."""
    if isinstance(node, list):
        return [strict(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return strict(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {k: strict(v, components) for k, v in node.items() if k != "nullable"}
    if "properties" in node:
        out.setdefault("additionalProperties", False)
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def validator(schema, node):
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    return jsonschema.Draft7Validator(
        strict(node, schema["components"]["schemas"]), format_checker=checker
    )


def success_schema(schema, path, method, status):
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]


def test_each_answer_is_a_named_component_with_properties(schema):
    components = schema["components"]["schemas"]
    for (path, method, status), (name, many, _serializer) in OPERATIONS.items():
        answer = success_schema(schema, path, method, status)
        if many:
            assert answer["type"] == "array", path
            answer = answer["items"]
        assert answer == {"$ref": f"#/components/schemas/{name}"}, (path, method)
        component = components[name]
        assert component["type"] == "object" and component["properties"], name
        assert "additionalProperties" not in component, name
    detail = components["EvaluationDetail"]["properties"]
    assert detail["items"]["items"] == {"$ref": "#/components/schemas/EvaluationItem"}
    assert detail["breakdown"] == {"$ref": "#/components/schemas/ScoreBreakdown"}
    assert detail["responses"]["items"] == {"$ref": "#/components/schemas/EvaluationResponse"}
    item = components["EvaluationItem"]["properties"]
    assert item["evidence"]["items"] == {"$ref": "#/components/schemas/EvidenceMetadata"}
    row = components["ScoreBreakdown"]["properties"]["items"]["items"]
    assert row == {"$ref": "#/components/schemas/ScoreBreakdownRow"}
    assert "implied_by" in components["ScoreBreakdownRow"]["properties"]
    assert components["SealDecisionEnum"]["enum"] == [
        "pending",
        "achieved",
        "not_achieved",
        "not_evaluated",
    ]
    # Not computed yet: status null and the rest absent, so only these two are required.
    assert set(components["Adherence"]["required"]) == {"computed", "status"}
    for name in ("margin", "limit", "worst_scenario"):
        assert components["Adherence"]["properties"][name]["nullable"] is True


def test_each_operation_documents_its_refusals_with_the_error_component(schema):
    responses = schema["components"]["responses"]
    for path, method, _status in OPERATIONS:
        documented = schema["paths"][path][method]["responses"]
        expected = {"400", "401", "403", "404", "413"} | (
            {"409", "415"} if method == "post" else set()
        )
        for status in expected:
            assert documented[status] == {"$ref": f"#/components/responses/Error{status}"}
            assert responses[f"Error{status}"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def check(schema, path, method, status, body):
    """The body validates against the operation's documented answer and its serializer."""
    validator(schema, success_schema(schema, path, method, status)).validate(body)
    _name, many, serializer = OPERATIONS[path, method, status]
    parsed = serializer(data=body, many=many)
    assert parsed.is_valid(), parsed.errors


def check_error(schema, response, status):
    assert response.status_code == status, response.content
    validator(schema, {"$ref": "#/components/schemas/Error"}).validate(response.json())


def test_real_bodies_validate_against_their_components(
    schema, client_for, agent_user, other_user, seal_staff, evaluation_a, settings
):
    agent, staff = client_for(agent_user), client_for(seal_staff)
    base = f"{EVALUATIONS}{evaluation_a.pk}/"

    uploaded = agent.post(
        f"{base}evidence/", {"criterion": "fs-half-yearly", "file": _pdf()}, format="multipart"
    )
    assert uploaded.status_code == 201, uploaded.content
    check(schema, f"{DETAIL}evidence/", "post", "201", uploaded.json())

    # Before notification the agent sees no decision, score or breakdown.
    for client in (agent, staff):
        listing = client.get(EVALUATIONS)
        check(schema, EVALUATIONS, "get", "200", listing.json())
        check(schema, DETAIL, "get", "200", client.get(base).json())
    assert agent.get(base).json()["breakdown"] == {}

    # Half-yearly statements with the annual ones not marked: the breakdown says implied_by.
    decide_all(
        evaluation_a, seal_staff, **{"fs-half-yearly": "achieved", "contracts-daily": "achieved"}
    )
    services.evaluation_transition(evaluation=evaluation_a, to="under_review", by=seal_staff)
    services.evaluation_transition(evaluation=evaluation_a, to="notified", by=seal_staff)
    answered = agent.post(
        f"{base}responses/", {"text": "Segue a DF", "criterion": "fs-annual"}, format="json"
    )
    assert answered.status_code == 201, answered.content
    check(schema, f"{DETAIL}responses/", "post", "201", answered.json())
    detail = agent.get(base).json()
    check(schema, DETAIL, "get", "200", detail)
    rows = {r["code"]: r for r in detail["breakdown"]["items"]}
    assert rows["fs-annual"]["implied_by"] == "fs-half-yearly" and rows["fs-annual"]["penalty"] == 0
    assert [e["file_type"] for i in detail["items"] for e in i["evidence"]] == ["pdf"]
    assert [r["criterion"] for r in detail["responses"]] == ["fs-annual"]
    check(schema, EVALUATIONS, "get", "200", agent.get(EVALUATIONS).json())

    not_computed = agent.get(f"{base}adherence/").json()
    assert not_computed == {"status": None, "computed": False}
    check(schema, f"{DETAIL}adherence/", "get", "200", not_computed)

    # The refusals these operations document, in the shared error shape.
    check_error(schema, client_for(other_user).get(base), 404)
    check_error(schema, agent.post(f"{base}responses/", {"text": ""}, format="json"), 400)
    settings.SEAL_EVIDENCE_MAX_BYTES = 10
    too_big = agent.post(
        f"{base}evidence/", {"criterion": "fs-annual", "file": _pdf()}, format="multipart"
    )
    check_error(schema, too_big, 413)
    settings.SEAL_EVIDENCE_MAX_BYTES = 2 * 1024 * 1024
    lying = agent.post(
        f"{base}evidence/",
        {"criterion": "fs-annual", "file": _pdf(name="df.xlsx")},
        format="multipart",
    )
    check_error(schema, lying, 415)


def test_a_refusal_of_the_state_is_409_in_the_error_shape(
    schema, client_for, agent_user, evaluation_a
):
    early = client_for(agent_user).post(
        f"{EVALUATIONS}{evaluation_a.pk}/responses/", {"text": "cedo"}, format="json"
    )
    check_error(schema, early, 409)


def test_a_computed_adherence_body_validates(schema):
    """Unit level, every status the answer can carry (the real enclave's is checked below)."""
    for status, verified, margin, limit, worst in (
        ("adherent", True, 0.964, 1.0, "shift_-100"),
        ("not_adherent", True, -0.02, 0.01, "pld_cap"),
        ("rejected", True, None, 1.0, None),
        ("unverified", False, None, None, None),
    ):
        body = api.AdherenceSerializer(
            {
                "computed": True,
                "status": status,
                "verified": verified,
                "margin": margin,
                "limit": limit,
                "worst_scenario": worst,
                "week": "202305001",
                "submission": 7,
                "computed_at": "2026-05-04T12:00:00Z",
            }
        ).data
        check(schema, f"{DETAIL}adherence/", "get", "200", dict(body))


def _pdf(name: str = "df.pdf"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


# --- with the real enclave (the adherence tests' market and evaluation) ---------------------------


@pytest.mark.enclave
def test_the_enclave_adherence_body_validates(schema, client_for, request):
    evaluation = request.getfixturevalue("enclave_evaluation")
    user = request.getfixturevalue("market")["user"]
    row = services.adherence_compute(evaluation=evaluation)
    body = client_for(user).get(f"{EVALUATIONS}{evaluation.pk}/adherence/").json()
    assert body["computed"] is True and body["status"] == "adherent" and body["verified"] is True
    assert (body["submission"], body["week"]) == (row.submission_id, row.week.code)
    check(schema, f"{DETAIL}adherence/", "get", "200", body)
    assert selectors.adherence_for(evaluation).margin == body["margin"]
