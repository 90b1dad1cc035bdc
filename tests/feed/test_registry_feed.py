"""The registry feed (issue 10 item 3): applied twice changes nothing, a bad row applies nothing,
an ended representation loses access at once; permissions derived in bulk, history says who sent
each change; the command and the API endpoint."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from prudencial.domain.identifiers import format_cnpj, format_cpf
from prudencial.models import AgentUserObjectPermission, Representation, User
from prudencial.selectors import agent_list
from prudencial.services.registry_feed import FeedRefused, registry_feed_apply
from tests.factories import AgentFactory, UserFactory, make_cpf, today

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry_account(db):
    """CCEE's registry service account: the dedicated permission, nothing else."""
    account = UserFactory(username="registro.ccee", cpf=None)
    account.user_permissions.add(Permission.objects.get(codename="apply_registry_feed"))
    return User.objects.get(pk=account.pk)  # fresh permission cache


@pytest.fixture
def market(db):
    agents = [AgentFactory(acronym=f"CM{i}") for i in range(3)]
    people = [UserFactory(username=f"pessoa{i}") for i in range(2)]
    return agents, people


def feed(market, start=None):
    agents, people = market
    start = (start or today() - timedelta(days=10)).isoformat()
    return [
        {"external_id": "R-1", "action": "create", "cpf": people[0].cpf, "agent": agents[0].acronym,
         "role": "controls", "valid_from": start},
        {"external_id": "R-2", "action": "create", "cpf": format_cpf(people[1].cpf),
         "agent": format_cnpj(agents[1].cnpj), "role": "represents", "valid_from": start},
        # A person the platform does not know yet: created with the CPF as username.
        {"external_id": "R-3", "action": "create", "cpf": make_cpf(900), "agent": agents[2].acronym,
         "role": "monitoring", "valid_from": start, "name": "Maria Souza",
         "email": "maria@example.com"},
        {"external_id": "R-2", "action": "change", "valid_until": (today() + timedelta(days=60)).isoformat()},
    ]  # fmt: skip


def snapshot():
    return (
        sorted(
            Representation.objects.values_list(
                "external_id", "user_id", "agent_id", "role", "valid_from", "valid_until"
            )
        ),
        sorted(
            AgentUserObjectPermission.objects.values_list(
                "user_id", "content_object_id", "permission__codename"
            )
        ),
        Representation.history.count(),
    )


def test_feed_applies_with_history_and_permissions(market, registry_account):
    agents, people = market
    result = registry_feed_apply(rows=feed(market), by=registry_account, source="feed:test")

    assert (result.created, result.users_created) == (3, 1)
    maria = User.objects.get(cpf=make_cpf(900))
    assert maria.username == make_cpf(900) and not maria.has_usable_password()
    assert list(agent_list(user=people[0])) == [agents[0]]
    assert list(agent_list(user=people[1], permission="submit_agent_data")) == [agents[1]]
    assert list(agent_list(user=people[1], permission="send_leverage_result")) == []
    assert list(agent_list(user=maria)) == [agents[2]]
    r2 = Representation.objects.get(external_id="R-2")
    assert r2.valid_until == today() + timedelta(days=60)  # the change folded into the create
    assert r2.granted_by == registry_account
    records = Representation.history.filter(external_id="R-2")
    assert records.count() == 1  # one net change per representation and feed
    assert records.get().history_user == registry_account
    assert records.get().history_change_reason == "feed:test"


def test_the_same_feed_twice_changes_nothing(market, registry_account):
    registry_feed_apply(rows=feed(market), by=registry_account)
    before = snapshot()

    again = registry_feed_apply(rows=feed(market), by=registry_account)

    assert (again.created, again.changed, again.ended, again.unchanged) == (0, 0, 0, 3)
    assert (again.permissions_added, again.permissions_removed) == (0, 0)
    assert snapshot() == before


def test_a_bad_row_applies_nothing(market, registry_account):
    rows = feed(market)
    rows.insert(2, {"external_id": "R-9", "action": "create", "cpf": "123.456.789-00",
                    "agent": "NOPE", "role": "boss", "valid_from": "31/02/2026"})  # fmt: skip
    rows.append({"external_id": "R-404", "action": "end"})
    before = snapshot()

    with pytest.raises(FeedRefused) as refused:
        registry_feed_apply(rows=rows, by=registry_account)

    found = {(e.row, e.field, e.rule) for e in refused.value.errors}
    assert {(3, "cpf", "check_digits"), (3, "role", "choice"), (3, "valid_from", "date")} <= found
    assert snapshot() == before
    assert not User.objects.filter(cpf=make_cpf(900)).exists()

    # References are checked for the whole file before anything is written, too.
    rows = [*feed(market), {"external_id": "R-404", "action": "end"}]
    with pytest.raises(FeedRefused) as refused:
        registry_feed_apply(rows=rows, by=registry_account)
    assert [(e.row, e.field, e.rule) for e in refused.value.errors] == [
        (5, "external_id", "unknown_id")
    ]
    assert snapshot() == before


def test_overlap_and_period_order_refused(market, registry_account):
    agents, people = market
    registry_feed_apply(rows=feed(market), by=registry_account)
    start = today() - timedelta(days=5)
    overlapping = {"external_id": "R-10", "action": "create", "cpf": people[0].cpf,
                   "agent": agents[0].acronym, "role": "controls", "valid_from": start.isoformat()}  # fmt: skip
    backwards = {"external_id": "R-11", "action": "create", "cpf": people[0].cpf,
                 "agent": agents[1].acronym, "role": "controls", "valid_from": start.isoformat(),
                 "valid_until": (start - timedelta(days=1)).isoformat()}  # fmt: skip
    with pytest.raises(FeedRefused) as refused:
        registry_feed_apply(rows=[backwards], by=registry_account)
    assert [(e.row, e.field, e.rule) for e in refused.value.errors] == [
        (1, "valid_until", "period_order")
    ]
    with pytest.raises(FeedRefused) as refused:
        registry_feed_apply(rows=[overlapping], by=registry_account)
    assert [(e.row, e.field, e.rule) for e in refused.value.errors] == [
        (1, "valid_from", "overlap")
    ]


def test_an_ended_representation_loses_access_at_once(market, registry_account):
    agents, people = market
    registry_feed_apply(rows=feed(market), by=registry_account)
    assert list(agent_list(user=people[0])) == [agents[0]]

    result = registry_feed_apply(
        rows=[{"external_id": "R-1", "action": "end"}], by=registry_account
    )

    assert result.ended == 1
    assert list(agent_list(user=people[0])) == []
    assert not AgentUserObjectPermission.objects.filter(user=people[0]).exists()
    assert Representation.objects.get(external_id="R-1").valid_until == today() - timedelta(days=1)
    # Ending again (another day's yesterday) never prolongs: nothing changes.
    again = registry_feed_apply(rows=[{"external_id": "R-1", "action": "end"}], by=registry_account)
    assert again.unchanged == 1 and again.ended == 0


def test_an_end_before_the_start_removes_it_and_stays_idempotent(market, registry_account):
    agents, people = market
    rows = [
        {"external_id": "F-1", "action": "create", "cpf": people[0].cpf, "agent": agents[1].acronym,
         "role": "represents", "valid_from": (today() + timedelta(days=10)).isoformat()},
    ]  # fmt: skip
    registry_feed_apply(rows=rows, by=registry_account)
    end = [{"external_id": "F-1", "action": "end"}]
    assert registry_feed_apply(rows=end, by=registry_account).removed == 1
    assert not Representation.objects.filter(external_id="F-1").exists()
    record = Representation.history.get(external_id="F-1", history_type="-")
    assert record.history_user == registry_account
    assert registry_feed_apply(rows=end, by=registry_account).removed == 0


def test_bulk_queries_do_not_grow_with_rows(
    market, registry_account, django_assert_max_num_queries
):
    agents, people = market
    many_agents = [AgentFactory() for _ in range(40)]
    rows = [
        {"external_id": f"B-{i}", "action": "create", "cpf": people[i % 2].cpf,
         "agent": a.acronym, "role": "represents", "valid_from": "2026-01-01"}
        for i, a in enumerate(many_agents)
    ]  # fmt: skip
    with django_assert_max_num_queries(30):
        result = registry_feed_apply(rows=rows, by=registry_account)
    assert result.created == 40
    assert AgentUserObjectPermission.objects.filter(user__in=people).count() == 80


# --- the command ------------------------------------------------------------------------------


def test_command_applies_a_file_twice_idempotently(market, registry_account, tmp_path):
    path = tmp_path / "feed.json"
    path.write_text(json.dumps({"changes": feed(market)}))
    out = io.StringIO()
    call_command("apply_registry_feed", str(path), by="registro.ccee", stdout=out, verbosity=0)
    assert "3 criadas" in out.getvalue()
    before = snapshot()
    out = io.StringIO()
    call_command("apply_registry_feed", str(path), by="registro.ccee", stdout=out, verbosity=0)
    assert "0 criadas" in out.getvalue() and "3 sem alteração" in out.getvalue()
    assert snapshot() == before


def test_command_reads_csv_and_refuses_a_bad_file_whole(market, registry_account, tmp_path):
    agents, people = market
    path = tmp_path / "feed.csv"
    path.write_text(
        "external_id;action;cpf;agent;role;valid_from;valid_until\n"
        f"C-1;create;{people[0].cpf};{agents[0].acronym};controls;2026-01-01;\n"
        f"C-2;create;{people[1].cpf};{agents[1].acronym};controls;01/13/2026;\n"
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="nada foi aplicado"):
        call_command("apply_registry_feed", str(path), stderr=err, verbosity=0)
    assert "linha 2, valid_from" in err.getvalue() and "[date]" in err.getvalue()
    assert not Representation.objects.exists()
    path.write_text(path.read_text().replace("01/13/2026", "13/01/2026"))
    call_command("apply_registry_feed", str(path), stdout=io.StringIO(), verbosity=0)
    assert Representation.objects.filter(external_id__in=["C-1", "C-2"]).count() == 2


# --- the endpoint -----------------------------------------------------------------------------

URL = "/api/v1/registry/feed/"


def test_endpoint_needs_the_dedicated_permission(market, client_for, staff_user, api_client):
    agents, people = market
    body = {"changes": feed(market)}
    assert api_client.post(URL, body, format="json").status_code == 401
    assert client_for(people[0]).post(URL, body, format="json").status_code == 403
    assert client_for(staff_user).post(URL, body, format="json").status_code == 403
    assert not Representation.objects.exists()


def test_endpoint_applies_and_refuses_whole(market, client_for, registry_account):
    client = client_for(registry_account)
    response = client.post(URL, {"changes": feed(market)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 3
    before = snapshot()

    again = client.post(URL, {"changes": feed(market)}, format="json")
    assert again.json()["unchanged"] == 3 and snapshot() == before

    bad = [*feed(market), {"external_id": "X", "action": "create", "cpf": "1"}]
    refused = client.post(URL, {"changes": bad}, format="json")
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert {"row": 5, "field": "cpf", "rule": "format"} in [
        {k: e[k] for k in ("row", "field", "rule")} for e in errors
    ]
    assert snapshot() == before
