"""pt-BR is the default for everyone; English only when chosen (cookie set by /i18n/setlang/)."""

import pytest


@pytest.fixture(autouse=True)
def _language_put_back():
    """A request activates the chosen language for the rest of the thread (the locale middleware
    never deactivates it): put back the language that was active, so an English test here leaves
    no English behind for the tests that run after it in the same process."""
    from django.utils import translation

    before = translation.get_language()
    yield
    translation.activate(before)


@pytest.mark.django_db
def test_portuguese_even_for_an_english_browser(client):
    page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "Monitoramento Prudencial" in page.content.decode()


@pytest.mark.django_db
def test_english_when_chosen(client):
    client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    page = client.get("/admin/login/")
    assert "Prudential Monitoring Platform" in page.content.decode()


@pytest.mark.django_db
def test_api_errors_follow_the_same_rule(api_client):
    assert (
        "Autenticação necessária"
        in api_client.get("/api/v1/agents/", HTTP_ACCEPT_LANGUAGE="en").json()["error"]["message"]
    )


# django-celery-beat ships no pt_BR catalog; locale/pt_BR/LC_MESSAGES/django.po translates it.
CELERY_BEAT_SECTION_PT = (
    "Tarefas periódicas",
    "Agendamentos crontab",
    "Intervalos",
    "Eventos solares",
    "Horário (clocked)",
)
CELERY_BEAT_SECTION_EN = ("Periodic Tasks", "Crontabs", "Intervals", "Solar events", "Clocked")


def _a_periodic_task():
    """The changelist only offers its actions when it lists something."""
    from django_celery_beat.models import DAYS, IntervalSchedule, PeriodicTask

    every_day, _ = IntervalSchedule.objects.get_or_create(every=1, period=DAYS)
    PeriodicTask.objects.create(name="teste de idioma", task="noop", interval=every_day)


@pytest.mark.django_db
def test_celery_beat_admin_in_portuguese_by_default(client, superuser):
    _a_periodic_task()
    client.force_login(superuser)
    index = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    for label in CELERY_BEAT_SECTION_PT:
        assert label in index
    assert "Periodic Tasks" not in index
    assert "Crontabs" not in index

    changelist = client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "tarefa periódica" in changelist
    assert "Habilitar tarefas selecionadas" in changelist
    assert "a cada dia" in changelist
    assert "Periodic Tasks" not in changelist
    assert "periodic task" not in changelist

    form = client.get("/admin/django_celery_beat/periodictask/add/").content.decode()
    assert "Argumentos posicionais" in form
    assert "Opções de execução" in form
    assert "Positional Arguments" not in form


@pytest.mark.django_db
def test_celery_beat_admin_in_english_when_chosen(client, superuser):
    _a_periodic_task()
    client.force_login(superuser)
    client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})
    index = client.get("/admin/").content.decode()
    for label in CELERY_BEAT_SECTION_EN:
        assert label in index
    assert "Tarefas periódicas" not in index

    changelist = client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "periodic task" in changelist
    assert "Enable selected tasks" in changelist


def test_celery_beat_messages_and_schedules_in_portuguese():
    from django.utils import translation
    from django.utils.translation import ngettext
    from django_celery_beat.models import DAYS, HOURS, IntervalSchedule

    with translation.override("pt-br"):
        one = ngettext(
            "{0} task was successfully enabled", "{0} tasks were successfully enabled", 1
        )
        many = ngettext(
            "{0} task was successfully enabled", "{0} tasks were successfully enabled", 3
        )
        assert one.format(1) == "1 tarefa foi habilitada com sucesso"
        assert many.format(3) == "3 tarefas foram habilitadas com sucesso"
        assert str(IntervalSchedule(every=2, period=DAYS)) == "a cada 2 dias"
        assert str(IntervalSchedule(every=1, period=HOURS)) == "a cada hora"
    with translation.override("en"):
        assert str(IntervalSchedule(every=2, period=DAYS)) == "every 2 days"


# --- the services' errors speak the language of whoever triggered them -------------------------

TRANSITION_REFUSED = {
    "en": "Week {code} is Scheduled: it cannot move to Closed. Allowed transition: Open.",
    "pt-br": (
        "A semana {code} está Agendada: não pode passar para Encerrada. "
        "Transição permitida: Aberta."
    ),
}
NOTHING_AFTER_PUBLISHED = {
    "en": "Week {code} is Published: it cannot move to Open. Allowed transition: none.",
    "pt-br": (
        "A semana {code} está Publicada: não pode passar para Aberta. Transição permitida: nenhuma."
    ),
}
WITHOUT_CPF = {
    "en": (
        "User “{username}” has no CPF on record: whoever controls or represents an agent is "
        "identified by their CPF. Enter the user's CPF before granting the representation."
    ),
    "pt-br": (
        "O usuário “{username}” não tem CPF cadastrado: quem controla ou representa um agente é "
        "identificado pelo CPF. Cadastre o CPF do usuário antes de conceder a representação."
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_refused_week_transition_is_explained_in_the_active_language(language):
    from django.utils import translation

    from prudencial.exceptions import TransitionError
    from prudencial.models import Week, WeekStatus
    from prudencial.services.weeks import week_transition
    from tests.factories import WeekFactory

    week = WeekFactory()
    published = WeekFactory()
    Week.objects.filter(pk=published.pk).update(status=WeekStatus.PUBLISHED)
    with translation.override(language):
        with pytest.raises(TransitionError) as refused:
            week_transition(week=week, to=WeekStatus.CLOSED)
        with pytest.raises(TransitionError) as nothing_after:
            week_transition(week=published, to=WeekStatus.OPEN)
    assert refused.value.messages == [TRANSITION_REFUSED[language].format(code=week.code)]
    assert refused.value.code == "invalid_transition"
    assert nothing_after.value.messages == [
        NOTHING_AFTER_PUBLISHED[language].format(code=published.code)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_representation_for_a_user_without_cpf_is_refused_in_the_active_language(language):
    from datetime import date

    from django.core.exceptions import ValidationError
    from django.utils import translation

    from prudencial.models import Representation
    from prudencial.services.representations import representation_grant
    from tests.factories import AgentFactory, UserFactory

    user = UserFactory(cpf=None)
    with translation.override(language), pytest.raises(ValidationError) as refused:
        representation_grant(
            user=user, agent=AgentFactory(), role="controls", valid_from=date(2023, 3, 1)
        )
    assert refused.value.message_dict == {
        "user": [WITHOUT_CPF[language].format(username=user.username)]
    }
    assert not Representation.objects.exists()


def _choose(client, language: str | None) -> None:
    """Switch the language as a person does (the /i18n/setlang/ cookie); None keeps the default."""
    if language is not None:
        client.post("/i18n/setlang/", {"language": language, "next": "/admin/"})


@pytest.mark.django_db
@pytest.mark.parametrize(("chosen", "language"), [("en", "en"), (None, "pt-br")])
def test_the_admin_week_action_reports_a_refusal_in_the_chosen_language(
    client, ccee_staff, chosen, language
):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.urls import reverse

    from prudencial.models import WeekStatus
    from tests.factories import WeekFactory

    week = WeekFactory()
    client.force_login(ccee_staff)
    _choose(client, chosen)
    response = client.post(
        reverse("admin:prudencial_week_changelist"),
        {"action": "close_weeks", ACTION_CHECKBOX_NAME: [str(week.pk)]},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9",  # the browser's language never decides
    )
    assert [str(m) for m in response.context["messages"]] == [
        TRANSITION_REFUSED[language].format(code=week.code)
    ]
    week.refresh_from_db()
    assert week.status == WeekStatus.SCHEDULED


@pytest.mark.django_db
@pytest.mark.parametrize(("chosen", "language"), [("en", "en"), (None, "pt-br")])
def test_the_admin_refuses_a_user_without_cpf_in_the_chosen_language(
    client, ccee_staff, chosen, language
):
    from django.urls import reverse

    from prudencial.models import Representation
    from tests.factories import AgentFactory, UserFactory

    user = UserFactory(cpf=None)
    client.force_login(ccee_staff)
    _choose(client, chosen)
    response = client.post(
        reverse("admin:prudencial_representation_add"),
        {
            "user": str(user.pk),
            "agent": str(AgentFactory().pk),
            "role": "controls",
            "valid_from": "01/03/2023",
            "valid_until": "",
        },
        HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9",
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {"user": [WITHOUT_CPF[language].format(username=user.username)]}
    assert not Representation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ("en", "Authentication required: send 'Authorization: Token <token>' or log in."),
        (None, "Autenticação necessária: envie 'Authorization: Token <token>' ou faça login."),
    ],
)
def test_api_errors_in_the_chosen_language(api_client, chosen, message):
    from django.conf import settings

    if chosen is not None:
        api_client.cookies[settings.LANGUAGE_COOKIE_NAME] = chosen
    error = api_client.get("/api/v1/agents/", HTTP_ACCEPT_LANGUAGE="en").json()["error"]
    assert error["message"] == message
    missing = api_client.get("/api/v1/no-such-endpoint/").json()["error"]
    assert missing["code"] == "not_found"
    assert missing["message"] == (
        "Address not found in the API: see /api/v1/docs/."
        if chosen
        else "Endereço não encontrado na API: veja /api/v1/docs/."
    )
