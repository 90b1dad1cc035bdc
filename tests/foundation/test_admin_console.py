"""The staff console at work, as the "Equipe CCEE" group (setup_roles) uses it: the week actions
open and close through the services, a regulator reads who changed a parameter and when (old →
new) in the history, dates read dd/mm/aaaa in Brasília time, representations are for people
with a CPF, and the beat schedules are editable in the admin."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from prudencial.management.commands.sync_schedules import sync_schedules
from prudencial.models import ParameterBucket, Representation, RiskParameters, Week, WeekStatus
from tests.factories import (
    AgentFactory,
    UserFactory,
    WeekFactory,
    brasilia,
    grant,
    week_with_parameters,
)
from tests.foundation.admin_forms import change_form_data

pytestmark = pytest.mark.django_db

MARCH_20 = date(2023, 3, 20)


def march_week(**kwargs) -> Week:
    return week_with_parameters(
        operation_start=MARCH_20, operation_end=MARCH_20 + timedelta(days=6), **kwargs
    )


def run_action(client, action: str, *weeks: Week) -> list[str]:
    response = client.post(
        reverse("admin:prudencial_week_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [str(w.pk) for w in weeks]},
        follow=True,
    )
    assert response.redirect_chain[-1][1] == 302
    return [str(m) for m in response.context["messages"]]  # read, so the next page has none


# --- week actions -----------------------------------------------------------------------------


def test_open_and_close_actions_move_the_week_and_record_who(client, ccee_staff):
    week = march_week()
    client.force_login(ccee_staff)

    assert run_action(client, "open_weeks", week) == [f"Semana {week.code} aberta."]
    week.refresh_from_db()
    assert week.status == WeekStatus.OPEN

    assert run_action(client, "close_weeks", week) == [f"Semana {week.code} encerrada."]
    week.refresh_from_db()
    assert week.status == WeekStatus.CLOSED
    assert week.history.latest().history_user == ccee_staff


def test_week_actions_refuse_what_the_lifecycle_refuses_with_its_message(client, ccee_staff):
    ready = march_week()
    bare = WeekFactory(operation_start=date(2023, 4, 3), operation_end=date(2023, 4, 9))
    RiskParameters.objects.filter(week=bare).delete()
    client.force_login(ccee_staff)

    closing = run_action(client, "close_weeks", ready)
    assert closing == [
        f"A semana {ready.code} está Agendada: não pode passar para Encerrada. "
        "Transição permitida: Aberta."
    ]
    opening = run_action(client, "open_weeks", ready, bare)
    assert f"Semana {ready.code} aberta." in opening
    assert any("não tem parâmetros CCEE" in m and bare.code in m for m in opening)

    assert dict(Week.objects.values_list("code", "status")) == {
        ready.code: WeekStatus.OPEN,
        bare.code: WeekStatus.SCHEDULED,
    }


def test_week_actions_need_the_change_permission(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_week"))
    week = march_week()
    client.force_login(viewer)
    client.post(
        reverse("admin:prudencial_week_changelist"),
        {"action": "open_weeks", ACTION_CHECKBOX_NAME: [str(week.pk)]},
    )
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


# --- who changed a parameter, and when ------------------------------------------------------


def test_a_regulator_reads_who_changed_a_parameter_when_and_from_what(client, ccee_staff):
    week = march_week()
    parameters = week.parameters
    old_volatility = ParameterBucket.objects.get(parameters=parameters, index=2).volatility
    client.force_login(ccee_staff)
    url = reverse("admin:prudencial_riskparameters_change", args=[parameters.pk])
    data = change_form_data(client.get(url))
    data["buckets-2-volatility"] = "0.5"
    data["pld_floor"] = "61.07"
    assert client.post(url, data).status_code == 302

    page = client.get(reverse("admin:prudencial_riskparameters_history", args=[parameters.pk]))
    assert page.status_code == 200
    [row] = [r for r in page.context["bucket_history"] if r["who"] == ccee_staff.username]
    assert row["bucket"] == "M+2"
    assert "volatilidade" in row["changes"]
    assert f"{old_volatility:f}".replace(".", ",") + " → 0,500000" in row["changes"]
    when = datetime.strptime(row["when"], "%d/%m/%Y %H:%M")  # dd/mm/aaaa hh:mm, Brasília
    changed_at = ParameterBucket.history.filter(history_user=ccee_staff).get().history_date
    assert when == changed_at.astimezone(brasilia(MARCH_20).tzinfo).replace(
        tzinfo=None, second=0, microsecond=0
    )

    listing = client.get(
        reverse("admin:prudencial_historicalriskparameters_changelist"),
        {"q": ccee_staff.username},
    )
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "PLD mínimo (R$/MWh)</strong>: 58,60 → 61,07" in body
    assert ccee_staff.username in body


# --- dates dd/mm/aaaa, Brasília time ---------------------------------------------------------


def test_week_list_shows_dates_as_dd_mm_aaaa_in_brasilia_time(client, ccee_staff):
    march_week(opens_at=brasilia(date(2023, 3, 27)), deadline=brasilia(date(2023, 3, 29), 20))
    client.force_login(ccee_staff)
    body = client.get(reverse("admin:prudencial_week_changelist")).content.decode()
    assert "20/03/2023 – 26/03/2023" in body
    assert "27/03/2023 00:00" in body
    assert "29/03/2023 20:00" in body  # 23:00 UTC in the database


def test_week_form_reads_dd_mm_aaaa_as_brasilia_time(client, ccee_staff):
    client.force_login(ccee_staff)
    response = client.post(
        reverse("admin:prudencial_week_add"),
        {
            "code": "",
            "operation_start": "03/04/2023",  # 3 April, not 4 March
            "operation_end": "09/04/2023",
            "opens_at_0": "10/04/2023",
            "opens_at_1": "00:00",
            "deadline_0": "12/04/2023",
            "deadline_1": "20:00",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    week = Week.objects.get()
    assert (week.code, week.operation_start) == ("202304001", date(2023, 4, 3))
    assert week.deadline == datetime(2023, 4, 12, 23, 0, tzinfo=UTC)


# --- representations are for people with a CPF --------------------------------------------------


def test_admin_refuses_a_representation_for_a_user_without_cpf_on_the_user_field(
    client, ccee_staff
):
    agent = AgentFactory()
    nameless = UserFactory(cpf=None)
    client.force_login(ccee_staff)
    response = client.post(
        reverse("admin:prudencial_representation_add"),
        {
            "user": str(nameless.pk),
            "agent": str(agent.pk),
            "role": "controls",
            "valid_from": "01/03/2023",
            "valid_until": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["user"]
    assert "não tem CPF cadastrado" in errors["user"][0]
    assert not Representation.objects.exists()


# --- beat schedules, editable in the admin -------------------------------------------------------


def test_sync_schedules_installs_the_beat_entries_once_and_keeps_staff_edits():
    assert sync_schedules() == dict.fromkeys(settings.PRUDENCIAL_BEAT_SCHEDULE, "criada")
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("crontab")}
    assert {n: t.task for n, t in tasks.items()} == {
        n: e["task"] for n, e in settings.PRUDENCIAL_BEAT_SCHEDULE.items()
    }
    assert {str(t.crontab.timezone) for t in tasks.values()} == {"America/Sao_Paulo"}
    assert tasks["expire-representations"].crontab.minute == "*/15"

    PeriodicTask.objects.filter(name="open-due-weeks").update(enabled=False)
    assert sync_schedules() == dict.fromkeys(settings.PRUDENCIAL_BEAT_SCHEDULE, "mantida")
    assert not PeriodicTask.objects.get(name="open-due-weeks").enabled

    assert sync_schedules(force=True)["open-due-weeks"] == "atualizada"
    assert PeriodicTask.objects.get(name="open-due-weeks").enabled
    assert PeriodicTask.objects.count() == len(settings.PRUDENCIAL_BEAT_SCHEDULE)


def test_staff_edit_a_beat_schedule_in_the_admin(client, ccee_staff):
    sync_schedules()
    task = PeriodicTask.objects.get(name="expire-representations")
    client.force_login(ccee_staff)
    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert listing.status_code == 200
    assert "expire-representations" in listing.content.decode()

    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    data = change_form_data(client.get(url))
    data.pop("enabled", None)  # unticked: staff pause the task
    assert client.post(url, data).status_code == 302
    task.refresh_from_db()
    assert not task.enabled


# transaction=True: the scheduler calls close_old_connections(), which closes a connection held
# inside the test's transaction (PostgreSQL), as it would never be in a real beat process.
@pytest.mark.django_db(transaction=True)
def test_beat_starting_keeps_the_schedules_staff_edited():
    """Beat's DatabaseScheduler writes app.conf.beat_schedule over the table when it starts, so
    the defaults live in a setting Celery does not read, installed only by sync_schedules."""
    from django_celery_beat.models import CrontabSchedule
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery_app import app as celery_app

    sync_schedules()
    daily = CrontabSchedule.objects.create(
        minute="5", hour="0", timezone="America/Sao_Paulo"
    )  # staff: once a day, at 00:05
    PeriodicTask.objects.filter(name="expire-representations").update(crontab=daily)

    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    scheduler.setup_schedule()

    task = PeriodicTask.objects.select_related("crontab").get(name="expire-representations")
    assert (task.crontab.minute, task.crontab.hour) == ("5", "0")
    assert task.enabled


def test_the_cpf_of_someone_who_represents_an_agent_cannot_be_removed(client, ccee_staff):
    agent = AgentFactory()
    person = UserFactory()
    grant(person, agent)
    client.force_login(ccee_staff)
    url = reverse("admin:prudencial_user_change", args=[person.pk])
    data = change_form_data(client.get(url), cpf="")

    response = client.post(url, data)

    assert response.status_code == 200
    assert "o CPF é obrigatório" in response.context["adminform"].form.errors["cpf"][0]
    person.refresh_from_db()
    assert person.cpf
