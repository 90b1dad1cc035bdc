"""The agents' web pages of the leverage factor (/fator/, prudencial.closing.agent_views) on
stored rows (tests/closing/admin_data.make_closing): the agent's own users see every figure; any
other user, CCEE staff included, gets 404 on every page and POST; a "represents" user reads but
cannot decide; cancel needs a reason; send asks to confirm, then is final and idempotent.

The rows of make_closing carry no enclave signature, so their computed results read as
"unverified" and cannot be sent (the page says so). The tests of a successful send patch
``SignatureChecker.check`` to answer "verified": what the signature check itself does is
tests/closing/test_leverage_signed.py.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from prudencial.closing.models import Closing, CorrectionNotice, LeverageDecision, LeverageResult
from prudencial.closing.signatures import VERIFIED, Signature, SignatureChecker
from tests.closing.admin_data import CANARY_TEXTS, make_closing
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db

JWE_TEXT = "eyJhbGciOiJFQ0RILUVTIn0.JWE-CANARY.x.y.z"


@pytest.fixture(autouse=True)
def _language_put_back():
    """A request activates its language for the rest of the thread: put the one before back."""
    from django.utils import translation

    before = translation.get_language()
    yield
    translation.activate(before)


@pytest.fixture
def stored():
    closing, results, agents = make_closing()
    LeverageResult.objects.filter(pk=results["HIDDEN"].pk).update(breakdown_jwe=JWE_TEXT)
    return closing, results, agents


def _user(agent, role="controls", name="decisor"):
    user = UserFactory(username=name)
    grant(user, agent, role=role)
    return user


def _web(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def _staff(name="ccee.analista"):
    user = UserFactory(username=name, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_leverageresult", content_type__app_label="closing")
    )
    return user


def _page(closing, agent, tail=""):
    return f"/fator/{agent.pk}/{closing.week.code}/{tail}"


def _text(response) -> str:
    return response.content.decode()


def _no_canary(response):
    text = _text(response)
    assert not any(c in text for c in CANARY_TEXTS), text
    assert JWE_TEXT not in text


def _decisions(agent):
    return list(
        LeverageDecision.objects.filter(result__agent=agent).values_list("action", flat=True)
    )


@pytest.fixture
def verified(monkeypatch):
    """The stored rows have no signed answer: make the check answer "verified" (see above)."""
    monkeypatch.setattr(SignatureChecker, "check", lambda self, result: Signature(VERIFIED, "k"))


def test_pages_need_a_login(stored):
    closing, _, agents = stored
    for url in (
        "/fator/",
        _page(closing, agents["HIDDEN"]),
        f"/fator/{agents['HIDDEN'].pk}/historico/",
    ):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = Client().post(_page(closing, agents["HIDDEN"], "cancelar/"), {"reason": "x"})
    assert response.status_code in (302, 403)
    assert _decisions(agents["HIDDEN"]) == []


def test_the_agent_sees_its_figures_and_the_unverified_warning(stored):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"]))
    listing = _text(web.get("/fator/"))
    assert "HIDDEN" in listing and _page(closing, agents["HIDDEN"]) in listing
    assert "SENT" not in listing  # only the agents the user acts for
    response = web.get(_page(closing, agents["HIDDEN"]))
    assert response.status_code == 200
    html = _text(response)
    assert "7,6543" in html  # its own FA (the canary is only hidden from others)
    assert "3,8271" in html  # FA_risk = FA / 2 (decimal_br truncates)
    assert "0,0500" in html and "0,2500" in html  # CVaR intrinsic and total
    assert re.search(r'id="rank">\s*1 de 2', html)
    assert closing.reference in html
    assert 'id="signature-warning"' in html and "não confere" in html
    assert 'id="send-form"' not in html and 'id="send-refused"' in html  # unverified: no send
    assert 'id="cancel-form"' in html and "csrfmiddlewaretoken" in html
    assert "leverage show" in html and JWE_TEXT not in html  # the breakdown is the client's
    assert 'id="correction"' not in html


def test_an_unverified_result_cannot_be_sent(stored):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"]))
    response = web.post(_page(closing, agents["HIDDEN"], "enviar/"), {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == _page(closing, agents["HIDDEN"])
    assert _decisions(agents["HIDDEN"]) == []
    assert "não pode ser enviado" in _text(web.get(response["Location"]))


def test_send_asks_to_confirm_then_is_final_and_idempotent(stored, verified):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"]))
    page = _text(web.get(_page(closing, agents["HIDDEN"])))
    assert 'id="send-form"' in page and 'id="signature-warning"' not in page
    ask = web.post(_page(closing, agents["HIDDEN"], "enviar/"))
    assert ask.status_code == 200 and 'id="confirm-send"' in _text(ask)
    assert "definitivo" in _text(ask)
    assert _decisions(agents["HIDDEN"]) == []  # nothing until confirmed
    done = web.post(_page(closing, agents["HIDDEN"], "enviar/"), {"confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == _page(closing, agents["HIDDEN"])
    assert _decisions(agents["HIDDEN"]) == ["sent"]
    again = web.post(_page(closing, agents["HIDDEN"], "enviar/"), {"confirm": "yes"})
    assert again.status_code == 302 and _decisions(agents["HIDDEN"]) == ["sent"]
    after = _text(web.get(_page(closing, agents["HIDDEN"])))
    assert "enviado à CCEE" in after
    assert 'id="send-form"' not in after and 'id="cancel-form"' not in after
    # A cancel after the send is the service's conflict, shown as a message.
    refused = web.post(_page(closing, agents["HIDDEN"], "cancelar/"), {"reason": "tarde"})
    assert refused.status_code == 302 and _decisions(agents["HIDDEN"]) == ["sent"]
    assert "já foi enviado" in _text(web.get(refused["Location"]))


def test_cancel_without_a_reason_names_the_field_and_writes_nothing(stored):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"]))
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 2001}):
        response = web.post(_page(closing, agents["HIDDEN"], "cancelar/"), body)
        assert response.status_code == 400, body
        errors = re.search(
            r'<ul class="errorlist"[^>]*id="cancel-errors">(.*?)</ul>', _text(response)
        )
        assert errors and "Motivo do cancelamento:" in errors.group(1), body
    assert _decisions(agents["HIDDEN"]) == []
    done = web.post(_page(closing, agents["HIDDEN"], "cancelar/"), {"reason": "revisar <b>x</b>"})
    assert done.status_code == 302
    assert _decisions(agents["HIDDEN"]) == ["cancelled"]
    html = _text(web.get(done["Location"]))
    assert "cancelado pelo agente" in html and "revisar &lt;b&gt;x&lt;/b&gt;" in html
    assert "Resultado cancelado." in html
    # A cancel may be followed by a send: the send form is still there (once verified).


@pytest.mark.parametrize(
    "method,tail",
    [("get", ""), ("post", "enviar/"), ("post", "cancelar/"), ("get", "historico")],
)
def test_another_agents_user_gets_404_everywhere(stored, method, tail):
    closing, _, agents = stored
    web = _web(_user(agents["SENT"], name="alheio"))
    url = (
        f"/fator/{agents['HIDDEN'].pk}/historico/"
        if tail == "historico"
        else _page(closing, agents["HIDDEN"], tail)
    )
    response = getattr(web, method)(url, {"reason": "x", "confirm": "yes"})
    assert response.status_code == 404
    _no_canary(response)
    assert "HIDDEN" not in _text(response)
    assert _decisions(agents["HIDDEN"]) == []


@pytest.mark.parametrize(
    "method,tail",
    [("get", ""), ("post", "enviar/"), ("post", "cancelar/"), ("get", "historico")],
)
def test_staff_without_a_representation_get_404(stored, method, tail):
    closing, _, agents = stored
    for user in (_staff(), UserFactory(username="raiz", is_staff=True, is_superuser=True)):
        web = _web(user)
        for name in ("HIDDEN", "SENT"):
            url = (
                f"/fator/{agents[name].pk}/historico/"
                if tail == "historico"
                else _page(closing, agents[name], tail)
            )
            response = getattr(web, method)(url, {"reason": "x", "confirm": "yes"})
            assert response.status_code == 404, (user, name)
            _no_canary(response)
        listing = web.get("/fator/")
        assert listing.status_code == 200 and 'id="no-agents"' in _text(listing)
    assert _decisions(agents["HIDDEN"]) == [] and _decisions(agents["SENT"]) == ["sent"]


def test_a_represents_user_reads_without_buttons_and_posts_are_403(stored, verified):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"], role="represents", name="representa"))
    page = web.get(_page(closing, agents["HIDDEN"]))
    html = _text(page)
    assert page.status_code == 200 and "7,6543" in html
    assert 'id="send-form"' not in html and 'id="cancel-form"' not in html
    for tail, body in (
        ("enviar/", {"confirm": "yes"}),
        ("enviar/", {}),
        ("cancelar/", {"reason": "x"}),
    ):
        response = web.post(_page(closing, agents["HIDDEN"], tail), body)
        assert response.status_code == 403, tail
        assert "Sem permissão" in _text(response)
    assert _decisions(agents["HIDDEN"]) == []


def test_csrf_is_enforced(stored):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"]), enforce_csrf_checks=True)
    url = _page(closing, agents["HIDDEN"], "cancelar/")
    assert web.post(url, {"reason": "sem token"}).status_code == 403
    assert _decisions(agents["HIDDEN"]) == []
    page = _text(web.get(_page(closing, agents["HIDDEN"])))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = web.post(url, {"reason": "com token", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and _decisions(agents["HIDDEN"]) == ["cancelled"]


def test_unknown_weeks_and_agents_are_404(stored):
    closing, _, agents = stored
    web = _web(_user(agents["HIDDEN"]))
    for url in (
        f"/fator/{agents['HIDDEN'].pk}/not-a-week/",
        f"/fator/{agents['HIDDEN'].pk}/202399001/",
        f"/fator/999999/{closing.week.code}/",
        f"/fator/99999999999999999999/{closing.week.code}/",
        "/fator/99999999999999999999/historico/",
    ):
        assert web.get(url).status_code == 404, url


def test_english_with_the_language_switch_or_the_cookie(stored):
    closing, _, agents = stored
    user = _user(agents["HIDDEN"])
    switched = _web(user)
    switched.post("/i18n/setlang/", {"language": "en", "next": "/fator/"})
    cookie = _web(user)
    cookie.cookies["django_language"] = "en"
    for web in (switched, cookie):
        for url in (
            "/fator/",
            _page(closing, agents["HIDDEN"]),
            f"/fator/{agents['HIDDEN'].pk}/historico/",
        ):
            html = _text(web.get(url))
            assert '<html lang="en">' in html, url
            assert "Leverage factor" in html and "Fator de alavancagem" not in html, url
        page = _text(web.get(_page(closing, agents["HIDDEN"])))
        assert "Reason for cancelling" in page and "Cancel" in page
        assert "1 of 2" in page and "7.6543" in page  # English separators
    portuguese = _text(_web(user).get(_page(closing, agents["HIDDEN"])))
    assert "Motivo do cancelamento" in portuguese and "1 de 2" in portuguese


def test_the_canary_is_never_on_another_users_pages(stored):
    closing, _, agents = stored
    web = _web(_user(agents["SENT"], name="outro"))
    for url in (
        "/fator/",
        _page(closing, agents["SENT"]),
        f"/fator/{agents['SENT'].pk}/historico/",
    ):
        response = web.get(url)
        assert response.status_code == 200, url
        _no_canary(response)
    assert "1,5000" in _text(web.get(_page(closing, agents["SENT"])))


def test_the_history_flags_superseded_closings_and_plots_fa(stored):
    first, results, agents = stored
    hidden = agents["HIDDEN"]
    hidden.legal_name = '<script>alert("x")</script>'
    hidden.save(update_fields=["legal_name"])
    by = results["SENT"].decisions.first().by
    Closing.objects.filter(pk=first.pk).update(is_current=False, state="superseded")
    correction = Closing.objects.create(
        week=first.week,
        sequence=2,
        supersedes=first,
        reason="parâmetros corrigidos",
        state="done",
        is_current=True,
        agents_total=1,
        agents_done=1,
        parameters_version=first.parameters_version,
        network_source="counterparties",
    )
    CorrectionNotice.objects.create(
        closing=correction, supersedes=first, why="volatilidade errada", by=by, what_changed={}
    )
    LeverageResult.objects.create(closing=correction, agent=hidden, status="computed", fa=2.25)
    web = _web(_user(hidden))
    response = web.get(f"/fator/{hidden.pk}/historico/")
    html = _text(response)
    assert response.status_code == 200
    assert f"{first.week.code}-1" in html and f"{first.week.code}-2" in html
    assert html.count('class="superseded"') == 1 and "substituído" in html
    assert "volatilidade errada" in html
    assert "<svg" in html and "<polyline" in html and "<script>" not in html
    assert "&lt;script&gt;" in html
    points = re.search(r'<polyline[^>]*points="([^"]+)"', html).group(1)
    assert re.fullmatch(r"\d+\.\d,\d+\.\d", points)  # one current week, dot decimals
    detail = _text(web.get(_page(correction, hidden)))
    assert 'id="correction"' in detail and "volatilidade errada" in detail
    assert f"{first.week.code}-1" in detail and "2,2500" in detail
