"""Staff in the admin (issue 11 item 8): the week's FA results with filters and ordering, the
missing and late agents, the closing's state, progress, stage times and notices, the
network-risk panel with its pictures, the re-run (correction) and degraded-rule actions, the
exports. Staff see a result's figures only once the agent has sent it; every view refuses an
agent's user and a staff member without the model permission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.urls import reverse

from tests.closing.admin_data import CANARY_TEXTS, make_closing
from tests.isolation import clear_cache

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    closing, results, agents = make_closing()
    return {"closing": closing, "results": results, "agents": agents}


def _staff(username: str, *codenames: str):
    from tests.factories import UserFactory

    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="closing", codename__in=codenames)
    )
    return user


@pytest.fixture
def viewer(client):
    """Staff with the closing app's view permissions (no change permission)."""
    user = _staff(
        "leitora.ccee",
        "view_closing",
        "view_leverageresult",
        "view_correctionnotice",
        "view_tradenetworkupload",
    )
    client.force_login(user)
    return client


@pytest.fixture
def editor(client):
    user = _staff("editora.ccee", "view_closing", "run_closing", "view_leverageresult")
    client.force_login(user)
    return client


def _results_url(**query) -> str:
    from urllib.parse import urlencode

    return reverse("admin:closing_leverageresult_changelist") + (
        "?" + urlencode(query) if query else ""
    )


def _text(response) -> str:
    return response.content.decode()


def _rows(response) -> list[str]:
    return [r.agent.acronym for r in response.context["cl"].result_list]


# --- results ---------------------------------------------------------------------------------


def test_results_show_figures_of_sent_results_only(viewer, stored):
    response = viewer.get(_results_url())
    assert response.status_code == 200
    page = _text(response)
    assert set(_rows(response)) == {"SENT", "HIDDEN", "GONE", "MISSING"}
    assert "1,5000" in page  # SENT's FA, pt-BR
    assert not any(t in page for t in CANARY_TEXTS), "an unsent FA reached the page"
    assert "não enviado" in page


def test_a_hidden_results_page_has_no_figure(viewer, stored):
    hidden = stored["results"]["HIDDEN"]
    response = viewer.get(reverse("admin:closing_leverageresult_change", args=[hidden.pk]))
    assert response.status_code == 200
    page = _text(response)
    assert not any(t in page for t in CANARY_TEXTS)
    assert "aparecem quando o agente o enviar" in page
    sent = stored["results"]["SENT"]
    page = _text(viewer.get(reverse("admin:closing_leverageresult_change", args=[sent.pk])))
    assert "1,500000" in page and "1 de 2" in page


def test_filters_status_decision_class(viewer, stored):
    assert set(_rows(viewer.get(_results_url(status__exact="missing")))) == {"MISSING"}
    assert set(_rows(viewer.get(_results_url(decision="sent")))) == {"SENT"}
    assert set(_rows(viewer.get(_results_url(decision="cancelled")))) == {"GONE"}
    assert set(_rows(viewer.get(_results_url(decision="pending")))) == {"HIDDEN", "MISSING"}
    by_class = _rows(viewer.get(_results_url(agent__agent_class__exact="generator")))
    assert set(by_class) == {"GONE", "MISSING"}
    assert set(_rows(viewer.get(_results_url(week="202303001")))) == {
        "SENT",
        "HIDDEN",
        "GONE",
        "MISSING",
    }


def test_above_the_bands_reads_sent_results_only(viewer, stored):
    """HIDDEN's FA (7.65) is far above the band, but it was not sent: the filter must not tell."""
    above = _rows(viewer.get(_results_url(bands="above")))
    assert above == ["SENT"]
    assert _rows(viewer.get(_results_url(bands="within"))) == []
    page = _text(viewer.get(_results_url()))
    assert "FA na faixa alert" in page


def test_ordering_by_fa_does_not_rank_unsent_results(viewer, stored):
    admin_cls = viewer.get(_results_url()).context["cl"].model_admin
    fa_index = list(admin_cls.list_display).index("fa_shown")
    for order in (str(fa_index), f"-{fa_index}"):
        rows = _rows(viewer.get(_results_url(o=order)))
        assert rows.index("SENT") in (0, len(rows) - 1)
        # The unsent ones sort as "no figure", in the same place whatever their FA.
        assert set(rows) == {"SENT", "HIDDEN", "GONE", "MISSING"}


def test_superseded_results_are_hidden_unless_asked(viewer, stored):
    from prudencial.closing.models import Closing

    Closing.objects.filter(pk=stored["closing"].pk).update(is_current=False)
    assert _rows(viewer.get(_results_url())) == []
    assert len(_rows(viewer.get(_results_url(current="all")))) == 4


# --- closings ----------------------------------------------------------------------------------


def test_the_closing_shows_state_progress_stage_times_and_links(viewer, stored):
    closing = stored["closing"]
    listing = _text(viewer.get(reverse("admin:closing_closing_changelist")))
    assert "4 de 4 agentes" in listing
    page = _text(viewer.get(reverse("admin:closing_closing_change", args=[closing.pk])))
    assert "4 de 4 agentes" in page and "1,2 s" in page  # ship: 1.25 s
    assert reverse("admin:closing_closing_network", args=[closing.pk]) in page


def test_the_network_panel_ranks_communities_and_draws_pictures(viewer, stored):
    closing = stored["closing"]
    clear_cache()
    response = viewer.get(reverse("admin:closing_closing_network", args=[closing.pk]))
    assert response.status_code == 200
    page = _text(response)
    assert 'id="community-ranking"' in page and "1 de 2" in page and "2 de 2" in page
    assert "0,1250" in page  # the network mean
    for kind in ("ranking", "sizes"):
        url = reverse("admin:closing_closing_picture", args=[closing.pk, kind])
        assert url in page
        picture = viewer.get(url)
        assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG")
        assert cache.get(f"closing:{closing.pk}:done:{kind}:pt") == picture.content
    assert (
        viewer.get(reverse("admin:closing_closing_picture", args=[closing.pk, "other"])).status_code
        == 404
    )


def test_missing_and_late_agents(viewer, stored, settings):
    closing = stored["closing"]
    url = reverse("admin:closing_closing_missing", args=[closing.pk])
    settings.CLOSING_PUBLICATION_DELAY_HOURS = 24  # deadline 3 days ago: publication passed
    groups = viewer.get(url).context["groups"]
    missing, late, pending = ([r.acronym for r in rows] for _title, rows, _n in groups)
    assert missing == ["MISSING"] and late == ["HIDDEN"] and pending == []
    settings.CLOSING_PUBLICATION_DELAY_HOURS = 24 * 7  # publication still ahead
    groups = viewer.get(url).context["groups"]
    missing, late, pending = ([r.acronym for r in rows] for _title, rows, _n in groups)
    assert late == [] and pending == ["HIDDEN"]
    assert not any(t in _text(viewer.get(url)) for t in CANARY_TEXTS)


def test_exports_download_sent_figures_only(viewer, stored):
    closing = stored["closing"]
    for fmt, kind in (("csv", "text/csv"), ("xlsx", "spreadsheetml")):
        response = viewer.get(reverse("admin:closing_closing_export", args=[closing.pk, fmt]))
        assert response.status_code == 200 and kind in response["Content-Type"]
        assert f"resultados_202303001_f1.{fmt}" in response["Content-Disposition"]
    csv_text = viewer.get(
        reverse("admin:closing_closing_export", args=[closing.pk, "csv"])
    ).content.decode("utf-8-sig")
    assert "SENT" in csv_text and not any(t in csv_text for t in CANARY_TEXTS)
    assert (
        viewer.get(reverse("admin:closing_closing_export", args=[closing.pk, "pdf"])).status_code
        == 404
    )


# --- actions -------------------------------------------------------------------------------------


def _action(client, name: str, closing):
    return client.post(
        reverse("admin:closing_closing_changelist"),
        {"action": name, "_selected_action": [closing.pk]},
    )


def test_rerun_asks_for_the_reason_and_calls_the_correction(editor, stored):
    from prudencial.closing.models import Closing

    closing = stored["closing"]
    response = _action(editor, "rerun_correction", closing)
    url = reverse("admin:closing_closing_correct", args=[closing.pk])
    assert response.status_code == 302 and response["Location"] == url
    form = editor.get(url)
    assert form.status_code == 200 and "motivo da correção" in _text(form)
    short = editor.post(url, {"why": "curto"})
    assert short.status_code == 200 and Closing.objects.filter(week=closing.week).count() == 1
    done = editor.post(url, {"why": "PLD da semana corrigido pela CCEE (publicação retificada)."})
    assert done.status_code == 302, _text(done)
    new = Closing.objects.filter(week=closing.week).order_by("-sequence").first()
    assert new.sequence == 2 and "PLD da semana corrigido" in new.reason


def test_degraded_rule_only_for_a_delayed_closing(editor, stored):
    from prudencial.closing.models import Closing

    closing = stored["closing"]
    url = reverse("admin:closing_closing_degraded", args=[closing.pk])
    refused = editor.get(url)
    assert refused.status_code == 302  # done: no degraded rule, with a message
    Closing.objects.filter(pk=closing.pk).update(state="delayed", is_current=False)
    form = editor.get(url)
    assert form.status_code == 200
    rules = form.context["form"].fields["rule"].choices
    assert rules, "the closing services document no degraded rule"
    chosen = editor.post(url, {"rule": rules[0][0], "confirm": "on"})
    assert chosen.status_code == 302, _text(chosen)
    assert Closing.objects.get(pk=closing.pk).degraded_rule == rules[0][0]


# --- who may see -----------------------------------------------------------------------------


def _urls(stored) -> list[str]:
    closing = stored["closing"]
    result = stored["results"]["SENT"]
    return [
        reverse("admin:closing_closing_changelist"),
        reverse("admin:closing_closing_change", args=[closing.pk]),
        reverse("admin:closing_closing_network", args=[closing.pk]),
        reverse("admin:closing_closing_picture", args=[closing.pk, "ranking"]),
        reverse("admin:closing_closing_missing", args=[closing.pk]),
        reverse("admin:closing_closing_export", args=[closing.pk, "csv"]),
        reverse("admin:closing_closing_export", args=[closing.pk, "xlsx"]),
        reverse("admin:closing_closing_correct", args=[closing.pk]),
        reverse("admin:closing_closing_degraded", args=[closing.pk]),
        reverse("admin:closing_leverageresult_changelist"),
        reverse("admin:closing_leverageresult_change", args=[result.pk]),
        reverse("admin:closing_correctionnotice_changelist"),
        reverse("admin:closing_tradenetworkupload_changelist"),
    ]


def test_an_agents_user_never_enters(client, stored):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="agente.curioso"))
    for url in _urls(stored):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    response = _action(client, "rerun_correction", stored["closing"])
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_staff_without_the_model_permission_get_403(client, stored):
    client.force_login(_staff("sem.permissao"))
    for url in _urls(stored):
        assert client.get(url).status_code == 403, url
    assert (
        client.post(
            reverse("admin:closing_closing_correct", args=[stored["closing"].pk]),
            {"why": "tentativa sem permissão de alteração"},
        ).status_code
        == 403
    )


def test_view_permission_does_not_allow_the_actions(viewer, stored):
    from prudencial.closing.models import Closing

    closing = stored["closing"]
    for name in ("correct", "degraded"):
        url = reverse(f"admin:closing_closing_{name}", args=[closing.pk])
        assert viewer.get(url).status_code == 403
        assert (
            viewer.post(url, {"why": "sem permissão de alteração, não deve rodar"}).status_code
            == 403
        )
    response = _action(viewer, "rerun_correction", closing)
    assert response.status_code in (200, 302)
    assert Closing.objects.filter(week=closing.week).count() == 1
    actions = viewer.get(reverse("admin:closing_closing_changelist")).context["cl"].model_admin
    assert "rerun_correction" not in actions.get_actions(
        viewer.get(reverse("admin:closing_closing_changelist")).wsgi_request
    )


def test_the_publication_delay_default_is_the_settings(stored):
    from prudencial.closing import exports

    week = stored["closing"].week
    assert exports.publication_time(week) > week.deadline
    assert exports.publication_time(week) - week.deadline <= timedelta(days=30)
