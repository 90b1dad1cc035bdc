"""The staff's case queue in the admin: filters and ordering, assignment, comments, the closing
decision (form and action), the read-only history, the value hidden until the result is sent,
and what staff may not do (add, delete, edit history, close without reasons)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from prudencial.alerts import services
from prudencial.alerts.models import Case, CaseEvent, CaseState

pytestmark = pytest.mark.django_db

QUEUE = "/admin/alerts/case/"


@pytest.fixture
def cases(week, agent_a, agent_b, make_closing, make_result, settings):
    settings.ALERTS_STAFF_EMAILS = ["risco@ccee.example"]
    closing = make_closing(week)
    make_result(closing, agent_a, fa=1.3, largest=0.4)
    make_result(closing, agent_b, fa=0.85)
    services.cases_open_for_closing(closing_id=closing.pk)
    return {(c.agent.acronym, c.figure): c for c in Case.objects.select_related("agent")}


@pytest.fixture
def staff_client(staff_member):
    client = Client()
    client.force_login(staff_member)
    return client


def form_data(response) -> dict:
    """What the change page would post back unchanged (its inline's management form too)."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for form in formset.forms:
            for name in form.fields:
                value = form[name].value()
                if value is not None:
                    data[form.add_prefix(name)] = value
    return data


def test_the_queue_filters_and_orders(cases, staff_client, week):
    overdue = cases[("AGA", "fa")]
    Case.objects.filter(pk=overdue.pk).update(
        opened_at=timezone.now() - timedelta(days=20),
        response_due=timezone.now() - timedelta(days=1),
    )

    def ids(query: str = "") -> list[int]:
        response = staff_client.get(QUEUE + query)
        assert response.status_code == 200
        return [c.pk for c in response.context["cl"].result_list]

    assert ids()[0] == overdue.pk  # ordered by deadline
    assert set(ids()) == {c.pk for c in cases.values()}
    assert ids("?prazo=overdue") == [overdue.pk]
    assert overdue.pk not in ids("?prazo=in_time")
    assert set(ids("?figure=concentration_largest")) == {cases[("AGA", "concentration_largest")].pk}
    assert set(ids(f"?week__id__exact={week.pk}")) == {c.pk for c in cases.values()}
    assert ids("?state=closed") == []
    assert set(ids("?q=AGB")) == {cases[("AGB", "fa")].pk}
    page = staff_client.get(QUEUE).content.decode()
    assert "oculto até o envio pelo agente" in page  # no value before the agent sends


def test_assign_comment_and_close_through_the_form(cases, staff_client, staff_member):
    case = cases[("AGA", "fa")]
    url = f"{QUEUE}{case.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    data = {**form_data(page), "assign_to": staff_member.pk, "comment": "Pedimos o plano."}
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    case.refresh_from_db()
    assert case.assignee == staff_member
    assert [e.kind for e in case.events.all()] == ["opened", "assigned", "comment"]

    # A decision needs its reasons (the form says so, nothing is written).
    page = staff_client.get(url)
    response = staff_client.post(url, {**form_data(page), "decision": "justified"})
    assert response.status_code == 200
    assert "decision_text" in response.context["adminform"].form.errors
    case.refresh_from_db()
    assert case.state == CaseState.OPEN

    response = staff_client.post(
        url, {**form_data(page), "decision": "justified", "decision_text": "Aporte comprovado."}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.state, case.decision, case.decided_by) == (
        CaseState.CLOSED,
        "justified",
        staff_member,
    )
    assert case.events.last().kind == "closed"
    # A closed case shows its decision read-only: no more form to act with.
    page = staff_client.get(url).content.decode()
    assert "Aporte comprovado." in page
    assert 'name="comment"' not in page


def test_the_actions_assign_to_me_and_close_with_a_decision(cases, staff_client, staff_member):
    selected = [c.pk for c in cases.values()]
    response = staff_client.post(
        QUEUE, {"action": "assign_to_me", "_selected_action": selected}, follow=True
    )
    assert response.status_code == 200
    assert set(Case.objects.values_list("assignee", flat=True)) == {staff_member.pk}

    page = staff_client.post(QUEUE, {"action": "close_cases", "_selected_action": selected})
    assert page.status_code == 200
    assert "Encerrar casos" in page.content.decode()
    staff_client.post(
        QUEUE,
        {
            "action": "close_cases",
            "_selected_action": selected,
            "apply": "1",
            "decision": "no_action",
            "decision_text": "Correção publicada.",
        },
    )
    assert set(Case.objects.values_list("state", flat=True)) == {CaseState.CLOSED}
    assert CaseEvent.objects.filter(kind="closed").count() == len(selected)
    # Closing again changes nothing and says why.
    response = staff_client.post(
        QUEUE,
        {
            "action": "close_cases",
            "_selected_action": selected,
            "apply": "1",
            "decision": "referred",
            "decision_text": "outra",
        },
        follow=True,
    )
    assert "já foi encerrado" in response.content.decode()
    assert set(Case.objects.values_list("decision", flat=True)) == {"no_action"}


def test_the_value_shows_once_the_agent_sent_it(cases, staff_client, agent_user, send_decision):
    case = cases[("AGA", "fa")]
    url = f"{QUEUE}{case.pk}/change/"
    assert "oculto até o envio pelo agente" in staff_client.get(url).content.decode()
    send_decision(case.leverage_result, agent_user)
    assert "1,3000" in staff_client.get(url).content.decode()


def test_nobody_adds_or_deletes_a_case_nor_edits_history(cases, staff_client, superuser):
    case = cases[("AGA", "fa")]
    assert staff_client.get(f"{QUEUE}add/").status_code == 403
    assert staff_client.post(f"{QUEUE}{case.pk}/delete/", {"post": "yes"}).status_code == 403
    root = Client()
    root.force_login(superuser)
    assert root.get(f"{QUEUE}add/").status_code == 403
    assert root.get("/admin/alerts/caseevent/").status_code == 404  # no admin of its own
    assert root.get("/admin/alerts/alertemail/").status_code == 200
    assert root.get("/admin/alerts/alertemail/add/").status_code == 403
    event = case.events.get()
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    # The database refuses too (PostgreSQL trigger), whatever bypasses the model.
    with pytest.raises(Exception, match="case_event_append_only|Cannot"), transaction.atomic():
        CaseEvent.objects.filter(pk=event.pk).update(text="reescrito")
    with pytest.raises(Exception, match="case_event_append_only|Cannot"), transaction.atomic():
        CaseEvent.objects.filter(pk=event.pk).delete()


def test_the_database_holds_one_case_per_result_and_figure(cases):
    case = cases[("AGA", "fa")]
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(
            agent=case.agent,
            week=case.week,
            closing=case.closing,
            leverage_result=case.leverage_result,
            figure="fa",
            value=2.0,
            band="alert",
            threshold=1.0,
            response_due=case.response_due,
        )
    # Closed without a decision is refused as well.
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.filter(pk=case.pk).update(state=CaseState.CLOSED)


def test_only_active_staff_can_be_assigned(cases, staff_member, agent_user):
    from django.core.exceptions import ValidationError

    case = cases[("AGA", "fa")]
    with pytest.raises(ValidationError) as exc:
        services.case_assign(case=case, assignee=agent_user, by=staff_member)
    assert "assignee" in exc.value.message_dict
    assert case.events.count() == 1


def test_staff_without_alerts_permissions_do_not_see_the_queue(cases, staff_user):
    client = Client()
    client.force_login(staff_user)  # the test group: prudencial view permissions only
    assert client.get(QUEUE).status_code == 403
