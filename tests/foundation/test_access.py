"""Who sees which agent: the permission matrix over every API endpoint, representations in time,
token authentication and the guardian rows derived from the roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from prudencial import selectors
from prudencial.models import Agent, AgentUserObjectPermission, Representation, RepresentationRole
from prudencial.services.representations import (
    expire_representations,
    representation_delete,
    representation_end,
    representation_update,
)
from tests.factories import PASSWORD, AgentFactory, UserFactory, WeekFactory, grant, today

pytestmark = pytest.mark.django_db

CONTROLS = RepresentationRole.CONTROLS
REPRESENTS = RepresentationRole.REPRESENTS
MONITORING = RepresentationRole.MONITORING
UNAUTHENTICATED_MESSAGE = (
    "Autenticação necessária: envie 'Authorization: Token <token>' ou faça login."
)


def visible(client) -> list[str]:
    response = client.get("/api/v1/agents/")
    assert response.status_code == 200, response.content
    return [row["acronym"] for row in response.json()["results"]]


def detail_status(client, agent: Agent) -> int:
    return client.get(f"/api/v1/agents/{agent.pk}/").status_code


def codenames(user, agent) -> set[str]:
    return set(
        AgentUserObjectPermission.objects.filter(user=user, content_object=agent).values_list(
            "permission__codename", flat=True
        )
    )


def granted_by_roles(*roles: str) -> set[str]:
    return {code for role in roles for code in settings.PRUDENCIAL_PERMISSIONS_BY_ROLE[role]}


# --- the matrix ------------------------------------------------------------------------------


@pytest.fixture
def world(agent_a, agent_b, agent_user, staff_user, superuser):
    stranger = UserFactory(username="sem.representacao")
    inactive = UserFactory(username="inativo")
    grant(inactive, agent_a)
    inactive.is_active = False
    inactive.save()
    week = WeekFactory()
    return {
        "agent_a": agent_a,
        "agent_b": agent_b,
        "week": week,
        "users": {
            "agent_user": agent_user,
            "staff": staff_user,
            "superuser": superuser,
            "stranger": stranger,
            "inactive": inactive,
        },
    }


def endpoint_url(name: str, world: dict) -> str:
    return {
        "agents": "/api/v1/agents/",
        "agent_a": f"/api/v1/agents/{world['agent_a'].pk}/",
        "agent_b": f"/api/v1/agents/{world['agent_b'].pk}/",
        "agent_missing": "/api/v1/agents/999999/",
        "weeks": "/api/v1/weeks/",
        "week": f"/api/v1/weeks/{world['week'].code}/",
        "week_missing": "/api/v1/weeks/209912999/",
        "schema": "/api/v1/schema/",
        "docs": "/api/v1/docs/",
        "token": "/api/v1/auth/token/",
        "enclave_keys": "/api/v1/enclave/keys/",
    }[name]


ALL_AGENTS = ["AGA", "AGB"]
# (endpoint, who) → (status, agents listed or None). Schema and docs are public (drf-spectacular's
# default SERVE_PERMISSIONS); GET on the token endpoint is not a method it answers.
MATRIX = {
    "agents": {
        "anonymous": (401, None),
        "inactive": (401, None),
        "stranger": (200, []),
        "agent_user": (200, ["AGA"]),
        "staff": (200, ALL_AGENTS),
        "superuser": (200, ALL_AGENTS),
    },
    "agent_a": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 404,
        "agent_user": 200,
        "staff": 200,
        "superuser": 200,
    },
    "agent_b": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 404,
        "agent_user": 404,
        "staff": 200,
        "superuser": 200,
    },
    "agent_missing": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 404,
        "agent_user": 404,
        "staff": 404,
        "superuser": 404,
    },
    "weeks": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 200,
        "agent_user": 200,
        "staff": 200,
        "superuser": 200,
    },
    "week": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 200,
        "agent_user": 200,
        "staff": 200,
        "superuser": 200,
    },
    "week_missing": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 404,
        "agent_user": 404,
        "staff": 404,
        "superuser": 404,
    },
    "schema": {
        "anonymous": 200,
        "inactive": 401,
        "stranger": 200,
        "agent_user": 200,
        "staff": 200,
        "superuser": 200,
    },
    "docs": {
        "anonymous": 200,
        "inactive": 401,
        "stranger": 200,
        "agent_user": 200,
        "staff": 200,
        "superuser": 200,
    },
    # The enclave's public keys: for every authenticated user (POST /enclave/attestation/ needs an
    # enclave process and is tried in tests/enclave_bridge).
    "enclave_keys": {
        "anonymous": 401,
        "inactive": 401,
        "stranger": 200,
        "agent_user": 200,
        "staff": 200,
        "superuser": 200,
    },
    "token": {
        "anonymous": 405,
        "inactive": 401,
        "stranger": 405,
        "agent_user": 405,
        "staff": 405,
        "superuser": 405,
    },
}
CASES = [(endpoint, who) for endpoint, row in MATRIX.items() for who in row]


@pytest.mark.parametrize(("endpoint", "who"), CASES, ids=[f"{e}-{w}" for e, w in CASES])
def test_permission_matrix(world, api_client, client_for, endpoint, who):
    expected = MATRIX[endpoint][who]
    status, agents = expected if isinstance(expected, tuple) else (expected, None)
    client = api_client if who == "anonymous" else client_for(world["users"][who])

    response = client.get(endpoint_url(endpoint, world))

    assert response.status_code == status, response.content
    if endpoint in ("schema", "docs"):
        return  # rendered as OpenAPI YAML / HTML, not the JSON error shape
    body = response.json()
    if status >= 400:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "fields"}
        assert body["error"]["message"]
        assert body["error"]["fields"] == {}
    if status == 401:
        assert response["WWW-Authenticate"] == "Token"
        if who == "anonymous":
            assert body["error"] == {
                "code": "not_authenticated",
                "message": UNAUTHENTICATED_MESSAGE,
                "fields": {},
            }
        else:
            assert body["error"]["code"] == "authentication_failed"
    if status == 404:
        assert body["error"]["code"] == "not_found"
    if agents is not None:
        assert [row["acronym"] for row in body["results"]] == agents
        assert body["count"] == len(agents)
    if endpoint == "agent_a" and status == 200:
        assert body["acronym"] == "AGA"
        assert body["cnpj"] == world["agent_a"].cnpj_display
    if endpoint == "week" and status == 200:
        assert body["code"] == world["week"].code


def test_a_hidden_agent_answers_exactly_like_a_missing_one(world, client_for):
    client = client_for(world["users"]["agent_user"])
    hidden = client.get(endpoint_url("agent_b", world))
    missing = client.get(endpoint_url("agent_missing", world))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_schema_lists_every_endpoint(world, api_client):
    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {
        "/api/v1/agents/",
        "/api/v1/agents/{id}/",
        "/api/v1/weeks/",
        "/api/v1/weeks/{code}/",
        "/api/v1/auth/token/",
    } <= paths


def test_interactive_docs_load_their_scripts_from_our_static_files(db, api_client):
    """Swagger UI comes from the pinned sidecar package: it works on a closed network and runs
    no unpinned third-party script."""
    page = api_client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui-bundle.js" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    assert "/static/drf_spectacular_sidecar/" in page


def test_schema_is_valid_openapi_3_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    # --fail-on-warn: an unnamed enum or an untyped field is a defect of the public contract.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert text.startswith("openapi: 3.")
    assert "WeekStatusEnum" in text


def test_bad_token_is_401_with_the_error_shape(api_client, agent_user):
    api_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = api_client.get("/api/v1/agents/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response.json()["error"]["fields"] == {}


def test_session_login_works_for_the_api(client, agent_user):
    assert client.login(username=agent_user.username, password=PASSWORD)
    assert [a["acronym"] for a in client.get("/api/v1/agents/").json()["results"]] == ["AGA"]


def test_a_session_post_without_csrf_says_so_not_forbidden(agent_user):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent_user)
    response = browser.post(
        "/api/v1/auth/token/", {"username": agent_user.username, "password": PASSWORD}
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "csrf_failed"
    assert "X-CSRFToken" in error["message"] and "Authorization: Token" in error["message"]


def test_a_refusal_with_its_own_reason_keeps_it():
    from rest_framework.exceptions import PermissionDenied

    from prudencial.api.errors import exception_handler

    generic = exception_handler(PermissionDenied(), {}).data["error"]
    assert generic["message"] == "Você não tem permissão para esta operação."
    specific = exception_handler(PermissionDenied("Só quem controla o agente envia o FA."), {})
    assert specific.status_code == 403
    assert specific.data["error"]["message"] == "Só quem controla o agente envia o FA."


# --- token authentication --------------------------------------------------------------------


def test_token_endpoint_gives_a_working_token(api_client, agent_user):
    from prudencial.access.models import AccessToken
    from prudencial.access.tokens import digest

    response = api_client.post(
        "/api/v1/auth/token/", {"username": agent_user.username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert AccessToken.objects.get(user=agent_user).digest == digest(token)

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert visible(api_client) == ["AGA"]


def test_token_endpoint_refuses_a_wrong_password(api_client, agent_user):
    response = api_client.post(
        "/api/v1/auth/token/", {"username": agent_user.username, "password": "errada"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["non_field_errors"]
    assert "credenciais" in error["fields"]["non_field_errors"][0]
    assert error["message"].startswith("Dados inválidos — non_field_errors: ")
    assert "token" not in response.json()


def test_token_endpoint_names_a_missing_field(api_client, agent_user):
    response = api_client.post("/api/v1/auth/token/", {"username": agent_user.username})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["password"]


def test_token_endpoint_refuses_an_inactive_user(api_client, agent_user):
    agent_user.is_active = False
    agent_user.save()
    response = api_client.post(
        "/api/v1/auth/token/", {"username": agent_user.username, "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "token" not in response.json()
    assert "non_field_errors" in response.json()["error"]["fields"]


def test_a_token_stops_working_when_the_user_is_deactivated(client_for, agent_user):
    client = client_for(agent_user)
    assert visible(client) == ["AGA"]
    agent_user.is_active = False
    agent_user.save()
    assert client.get("/api/v1/agents/").status_code == 401


# --- the selector ----------------------------------------------------------------------------


def test_inactive_user_sees_nothing_even_with_representations(agent_a, agent_user, superuser):
    agent_user.is_active = False
    superuser.is_active = False
    assert list(selectors.agent_list(user=agent_user)) == []
    assert list(selectors.agent_list(user=superuser)) == []


def test_anonymous_user_sees_nothing(agent_a):
    from django.contrib.auth.models import AnonymousUser

    assert list(selectors.agent_list(user=AnonymousUser())) == []
    assert list(selectors.agent_list(user=None)) == []


def test_global_permission_as_a_user_permission_sees_all(agent_a, agent_b):
    from django.contrib.auth.models import Permission

    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_agent"))
    assert sorted(a.acronym for a in selectors.agent_list(user=user)) == ALL_AGENTS


def test_staff_flag_alone_grants_no_agent(agent_a, agent_b):
    user = UserFactory(is_staff=True)
    grant(user, agent_b, REPRESENTS)
    assert [a.acronym for a in selectors.agent_list(user=user)] == ["AGB"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [(CONTROLS, ["AGA"]), (MONITORING, ["AGA"]), (REPRESENTS, [])],
)
def test_only_controls_and_monitoring_may_send_the_leverage_result(agent_a, role, expected):
    user = UserFactory()
    grant(user, agent_a, role)
    assert [a.acronym for a in selectors.agent_list(user=user)] == ["AGA"]
    assert [a.acronym for a in selectors.agent_list(user=user, permission="submit_agent_data")] == [
        "AGA"
    ]
    sending = selectors.agent_list(user=user, permission="send_leverage_result")
    assert [a.acronym for a in sending] == expected


def test_unknown_permission_is_refused(agent_user):
    with pytest.raises(ValueError, match="delete_agent"):
        selectors.agent_list(user=agent_user, permission="delete_agent")


def test_selector_is_a_single_id_in_subquery(agent_user):
    sql = str(selectors.agent_list(user=agent_user).query)
    assert sql.count("SELECT") == 2
    assert "prudencial_agentuserobjectpermission" in sql.lower()


# --- representations in time -----------------------------------------------------------------


def test_ended_representation_loses_access_at_once(client_for, agent_a, agent_user):
    client = client_for(agent_user)
    assert visible(client) == ["AGA"]
    representation = Representation.objects.get(user=agent_user, agent=agent_a)

    ended = representation_end(representation=representation)

    assert ended.valid_until == today() - timedelta(days=1)
    assert detail_status(client, agent_a) == 404
    assert visible(client) == []
    assert codenames(agent_user, agent_a) == set()


def test_ending_a_representation_that_has_not_started_removes_it(agent_a):
    user = UserFactory()
    representation = grant(user, agent_a, valid_from=today() + timedelta(days=3))
    pk = representation.pk
    assert representation_end(representation=representation) is None
    assert not Representation.objects.filter(pk=pk).exists()
    # Created, then deleted: the trail stays.
    assert list(
        Representation.history.filter(id=pk)
        .order_by("history_id")
        .values_list("history_type", flat=True)
    ) == ["+", "-"]
    assert list(selectors.agent_list(user=user)) == []


def test_representation_expired_by_date_loses_access_when_the_task_runs(client_for, agent_a):
    user = UserFactory()
    last_day = today() + timedelta(days=2)
    grant(user, agent_a, valid_until=last_day)
    client = client_for(user)
    assert visible(client) == ["AGA"]

    # The last day is inclusive: still in force on it.
    expire_representations(today=last_day)
    assert visible(client) == ["AGA"]

    expire_representations(today=last_day + timedelta(days=1))
    assert detail_status(client, agent_a) == 404
    assert visible(client) == []

    # Idempotent: a second run changes nothing.
    expire_representations(today=last_day + timedelta(days=1))
    assert visible(client) == []


def test_future_representation_grants_nothing_until_its_first_day(client_for, agent_a):
    user = UserFactory()
    start = today() + timedelta(days=3)
    representation = grant(user, agent_a, valid_from=start)
    client = client_for(user)
    assert visible(client) == []
    assert detail_status(client, agent_a) == 404

    expire_representations(today=start - timedelta(days=1))
    assert visible(client) == []

    # The calendar reaches the first day (moved here, since the selector reads the real date):
    # the beat task grants the rows that day.
    Representation.objects.filter(pk=representation.pk).update(valid_from=today())
    assert visible(client) == []
    expire_representations(today=today())
    assert visible(client) == ["AGA"]
    assert detail_status(client, agent_a) == 200


def test_representation_past_its_last_day_loses_access_at_once_without_the_task(
    client_for, agent_a
):
    """The selector requires a representation in force today, so the 15-minute gap before the
    beat task runs gives no access."""
    user = UserFactory()
    representation = grant(user, agent_a, valid_until=today() + timedelta(days=2))
    client = client_for(user)
    assert visible(client) == ["AGA"]
    # Time passes beyond the last day (the guardian rows are still there: no task has run).
    Representation.objects.filter(pk=representation.pk).update(
        valid_from=today() - timedelta(days=10), valid_until=today() - timedelta(days=1)
    )
    assert codenames(user, agent_a) == granted_by_roles(CONTROLS)
    assert visible(client) == []
    assert detail_status(client, agent_a) == 404


def test_a_role_that_ended_loses_its_own_permission_at_once(agent_a):
    user = UserFactory()
    grant(user, agent_a, REPRESENTS)
    controls = grant(user, agent_a, CONTROLS, valid_until=today() + timedelta(days=1))
    assert list(selectors.agent_list(user=user, permission="send_leverage_result")) == [agent_a]
    Representation.objects.filter(pk=controls.pk).update(
        valid_from=today() - timedelta(days=10), valid_until=today() - timedelta(days=1)
    )
    assert list(selectors.agent_list(user=user, permission="send_leverage_result")) == []
    assert list(selectors.agent_list(user=user)) == [agent_a]  # still represents it


def test_expire_catches_up_a_role_that_ended_while_another_continues(agent_a):
    """The pair keeps some permissions (represents) but must lose those of the ended role."""
    user = UserFactory()
    grant(user, agent_a, REPRESENTS)
    grant(user, agent_a, CONTROLS, valid_until=today() + timedelta(days=1))
    assert codenames(user, agent_a) == granted_by_roles(REPRESENTS, CONTROLS)

    expire_representations(today=today() + timedelta(days=4))  # a few runs were missed

    assert codenames(user, agent_a) == granted_by_roles(REPRESENTS)


def test_expire_catches_up_after_months_without_a_run(agent_a):
    """No look-back window: the comparison is exact, however long beat was down."""
    user = UserFactory()
    grant(user, agent_a, REPRESENTS)
    grant(user, agent_a, CONTROLS, valid_until=today() + timedelta(days=1))

    assert expire_representations(today=today() + timedelta(days=120)) == 1
    assert codenames(user, agent_a) == granted_by_roles(REPRESENTS)
    assert expire_representations(today=today() + timedelta(days=120)) == 0  # idempotent


def test_updating_a_representation_to_another_agent_moves_access(client_for, agent_a, agent_b):
    user = UserFactory()
    representation = grant(user, agent_a)
    client = client_for(user)
    assert visible(client) == ["AGA"]

    representation_update(representation=representation, agent=agent_b)

    assert visible(client) == ["AGB"]
    assert detail_status(client, agent_a) == 404
    assert detail_status(client, agent_b) == 200
    assert codenames(user, agent_a) == set()
    assert codenames(user, agent_b) == granted_by_roles(CONTROLS)


def test_updating_a_representation_to_another_user_moves_access(agent_a):
    first, second = UserFactory(), UserFactory()
    representation = grant(first, agent_a)
    representation_update(representation=representation, user=second)
    assert codenames(first, agent_a) == set()
    assert codenames(second, agent_a) == granted_by_roles(CONTROLS)


def test_postponing_a_representation_suspends_access(agent_a):
    user = UserFactory()
    representation = grant(user, agent_a)
    representation_update(representation=representation, valid_from=today() + timedelta(days=1))
    assert list(selectors.agent_list(user=user)) == []


# --- overlaps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((-30, None), (-10, None)),
        ((-30, -10), (-15, None)),
        ((-30, -10), (-40, -30)),  # touches the first day
        ((-30, -10), (-10, 5)),  # touches the last day
        ((-30, None), (100, 200)),  # an open end covers the future
        ((-5, 5), (-30, 30)),  # contains it
    ],
)
def test_overlapping_representations_of_the_same_role_are_refused(agent_a, first, second):
    user = UserFactory()
    day = today()

    def days(offset):
        return None if offset is None else day + timedelta(days=offset)

    grant(user, agent_a, valid_from=days(first[0]), valid_until=days(first[1]))
    with pytest.raises(ValidationError) as info:
        grant(user, agent_a, valid_from=days(second[0]), valid_until=days(second[1]))
    assert list(info.value.message_dict) == ["valid_from"]
    assert "mesmo usuário, agente e papel" in info.value.message_dict["valid_from"][0]
    assert Representation.objects.filter(user=user).count() == 1


def test_adjacent_periods_and_other_roles_may_coexist(agent_a, agent_b):
    user = UserFactory()
    grant(
        user, agent_a, valid_from=today() - timedelta(days=30), valid_until=today() - timedelta(1)
    )
    grant(user, agent_a, valid_from=today())
    grant(user, agent_a, REPRESENTS)
    grant(user, agent_b)
    assert Representation.objects.filter(user=user).count() == 4


def test_an_update_that_would_overlap_is_refused_and_changes_nothing(agent_a):
    user = UserFactory()
    grant(
        user, agent_a, valid_from=today() - timedelta(days=30), valid_until=today() - timedelta(1)
    )
    later = grant(user, agent_a, valid_from=today())
    with pytest.raises(ValidationError):
        representation_update(representation=later, valid_from=today() - timedelta(days=5))
    later.refresh_from_db()
    assert later.valid_from == today()


def test_period_must_be_ordered(agent_a):
    user = UserFactory()
    with pytest.raises(ValidationError):
        grant(user, agent_a, valid_from=today(), valid_until=today() - timedelta(days=1))
    assert not Representation.objects.exists()


# --- guardian rows = union of effective roles ------------------------------------------------


def test_guardian_rows_follow_the_effective_roles(agent_a, agent_b):
    user = UserFactory()
    bystander = UserFactory()
    grant(bystander, agent_a, REPRESENTS)
    grant(user, agent_b, MONITORING)

    represents = grant(user, agent_a, REPRESENTS)
    assert (
        codenames(user, agent_a)
        == granted_by_roles(REPRESENTS)
        == {
            "view_agent",
            "submit_agent_data",
        }
    )

    controls = grant(user, agent_a, CONTROLS)
    assert (
        codenames(user, agent_a)
        == granted_by_roles(REPRESENTS, CONTROLS)
        == {
            "view_agent",
            "submit_agent_data",
            "send_leverage_result",
        }
    )

    representation_end(representation=controls)
    assert codenames(user, agent_a) == granted_by_roles(REPRESENTS)

    representation_update(representation=represents, role=MONITORING)
    assert codenames(user, agent_a) == granted_by_roles(MONITORING)

    representation_delete(representation=represents)
    assert codenames(user, agent_a) == set()

    # Nobody else's rows were touched, and there are no duplicates.
    assert codenames(bystander, agent_a) == granted_by_roles(REPRESENTS)
    assert codenames(user, agent_b) == granted_by_roles(MONITORING)
    assert AgentUserObjectPermission.objects.count() == len(granted_by_roles(REPRESENTS)) + len(
        granted_by_roles(MONITORING)
    )


def test_roles_grant_what_the_setting_says(settings, agent_a):
    settings.PRUDENCIAL_PERMISSIONS_BY_ROLE = {
        **settings.PRUDENCIAL_PERMISSIONS_BY_ROLE,
        "represents": ["view_agent"],
    }
    user = UserFactory()
    grant(user, agent_a, REPRESENTS)
    assert codenames(user, agent_a) == {"view_agent"}


def test_deleting_an_agent_removes_its_rows(agent_a, agent_user):
    assert codenames(agent_user, agent_a)
    Agent.objects.filter(pk=agent_a.pk).delete()
    assert not AgentUserObjectPermission.objects.exists()


def test_ending_on_a_later_day_never_prolongs_a_representation(agent_a):
    user = UserFactory()
    last_day = today() + timedelta(days=5)
    representation = grant(user, agent_a, valid_until=last_day)

    representation_end(representation=representation, on=today() + timedelta(days=10))

    representation.refresh_from_db()
    assert representation.valid_until == last_day
    expire_representations(today=last_day + timedelta(days=2))
    assert codenames(user, agent_a) == set()


def test_many_agents_for_one_user(client_for):
    user = UserFactory()
    agents = AgentFactory.create_batch(3)
    for agent in agents:
        grant(user, agent, REPRESENTS)
    assert visible(client_for(user)) == sorted(a.acronym for a in agents)


# --- people are identified by CPF -------------------------------------------------------------


def test_a_user_without_cpf_cannot_be_granted_a_representation(agent_a):
    user = UserFactory(cpf=None)
    with pytest.raises(ValidationError) as info:
        grant(user, agent_a)
    assert list(info.value.message_dict) == ["user"]
    assert "não tem CPF cadastrado" in info.value.message_dict["user"][0]
    assert not Representation.objects.exists()
    assert codenames(user, agent_a) == set()


def test_a_representation_cannot_move_to_a_user_without_cpf(agent_a, agent_user):
    representation = Representation.objects.get(user=agent_user, agent=agent_a)
    nameless = UserFactory(cpf=None)
    with pytest.raises(ValidationError) as info:
        representation_update(representation=representation, user=nameless)
    assert list(info.value.message_dict) == ["user"]
    representation.refresh_from_db()
    assert representation.user == agent_user
    assert codenames(nameless, agent_a) == set()
    assert codenames(agent_user, agent_a) == granted_by_roles(CONTROLS)
