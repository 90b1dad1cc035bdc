"""pt-BR is the default for everyone; English only when chosen (cookie set by /i18n/setlang/)."""

import pytest


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
