"""The client's leverage commands and its reply key: the key made 0600 and never replaced by
accident; a portfolio envelope's ``prd_reply`` exactly kty/crv/x/y (and accepted by the
enclave's own header rule); the breakdown the enclave seals (enclave_bridge/enclave/reply.py,
imported here only to build one) opened here and printed as a table, with an error naming the
key file when it cannot be; the platform's errors shown with their code; and, against the live
test server, ``leverage show`` printing the stored figures and breakdown."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import requests

from prudencial.client import i18n, reply
from prudencial.client.cli import main
from prudencial.client.config import ClientConfig, save_config
from prudencial.client.errors import ReplyKeyError
from prudencial.client.session import Client, Submitted
from tests.client import payloads

WEEK = payloads.WEEK
AGENT = {"id": 7, "acronym": "CM47", "cnpj": payloads.make_cnpj("123456780001")}
BASE = "https://ccee.example"


@pytest.fixture(autouse=True)
def _english():
    i18n.set_language("en")
    yield
    i18n.set_language("pt-br")


# --- helpers -------------------------------------------------------------------------------------


def breakdown_of(public: dict[str, str], *, week: str = WEEK, acronym: str = "CM47") -> str:
    """A breakdown sealed exactly as the enclave seals it (its own module), for a real FA."""
    from enclave_bridge.enclave.reply import breakdown_document, seal_breakdown
    from prudencial.risk.concentration import counterparty_concentration
    from prudencial.risk.leverage import leverage_factor

    who = {"acronym": acronym, "cnpj": AGENT["cnpj"]}
    leverage = leverage_factor(payloads.worked_example(who, week), payloads.parameters(week))
    declared = json.loads((payloads.EXAMPLES / "counterparties.json").read_text())
    concentration = counterparty_concentration(declared, leverage.pla)
    return seal_breakdown(public, breakdown_document(week, who, leverage, concentration))


def result_body(**changes: Any) -> dict[str, Any]:
    """GET …/leverage/ as prudencial/closing/api.py answers it for the agent's own user."""
    body = {
        "week": WEEK,
        "agent": AGENT["id"],
        "acronym": "CM47",
        "status": "computed",
        "error": {},
        "closing": {
            "reference": f"{WEEK}-1",
            "sequence": 1,
            "is_current": True,
            "parameters_version": 3,
            "parameters_sha256": "ab" * 32,
            "finished_at": "2023-03-10T12:00:00-03:00",
            "correction": None,
        },
        "decision": {"state": "pending", "at": None, "reason": ""},
        "signature": {"status": "verified", "signing_kid": "sig-1", "reason": ""},
        "figures": {
            "fa": 0.043003523,
            "fa_risk": 0.0215,
            "res_fin_over_pla": 0.0,
            "concentration_largest": 0.13,
            "concentration_top_five": 0.21,
            "var_share_by_bucket": [0.5, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0],
            "network": {"cvar_intrinsic": 0.05, "cvar_total": 0.25, "community": 1},
        },
        "breakdown_jwe": None,
    }
    body.update(changes)
    return body


class FakePlatform(requests.adapters.BaseAdapter):
    """The platform's API as canned answers by (method, path); records every request."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, Any]]) -> None:
        super().__init__()
        self.routes = {("GET", "agents/"): (200, {"results": [AGENT], "next": None}), **routes}
        self.seen: list[tuple[str, str, Any]] = []

    def send(self, request, **kwargs):
        path = request.path_url.split("?", 1)[0].removeprefix("/api/v1/")
        body = request.body
        self.seen.append((request.method, path, json.loads(body) if body else None))
        status, answer = self.routes.get(
            (request.method, path),
            (404, {"error": {"code": "not_found", "message": "Não encontrado.", "fields": {}}}),
        )
        response = requests.Response()
        response.request = request
        response.status_code = status
        response._content = json.dumps(answer).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    def close(self) -> None:
        pass

    def posts(self) -> list[tuple[str, Any]]:
        return [(path, body) for method, path, body in self.seen if method == "POST"]


def run(
    home: Path, platform: FakePlatform | None, *args: str, stdin: str = "", monkeypatch
) -> tuple[int, str, str]:
    """The command line against the fake platform (a real Client and Api over its transport)."""
    config = ClientConfig(base_url=BASE, directory=home)
    save_config(config)
    if platform is not None:
        session = requests.Session()
        session.mount(BASE, platform)
        monkeypatch.setattr(
            "prudencial.client.cli._client",
            lambda args: Client(config, token="t", session=session),
        )
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--config", str(home / "client.toml"), "--lang", "en", *args], stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


def leverage_path(tail: str = "") -> str:
    return f"weeks/{WEEK}/agents/{AGENT['id']}/leverage/{tail}"


# --- the reply key -------------------------------------------------------------------------------


def test_reply_key_is_made_0600_shown_public_and_not_replaced_without_force(tmp_path, monkeypatch):
    home = tmp_path / "home"
    code, out, err = run(home, None, "reply-key", "init", monkeypatch=monkeypatch)
    assert code == 0, err
    path = home / reply.REPLY_KEY_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key = reply.load(path)
    assert key is not None and key.has_private
    assert reply.thumbprint(key) in out
    private = json.loads(path.read_text())["d"]
    assert private not in out + err

    code, out, err = run(home, None, "reply-key", "init", monkeypatch=monkeypatch)
    assert code == 2 and str(path) in err and "--force" in err
    assert reply.thumbprint(reply.load(path)) == reply.thumbprint(key)  # kept

    code, out, err = run(home, None, "--json", "reply-key", "show", monkeypatch=monkeypatch)
    shown = json.loads(out)
    assert shown["jwk"] == reply.public_jwk(key) and set(shown["jwk"]) == {"kty", "crv", "x", "y"}
    assert private not in out + err

    code, out, err = run(home, None, "reply-key", "init", "--force", monkeypatch=monkeypatch)
    assert code == 0 and reply.thumbprint(reply.load(path)) != reply.thumbprint(key)

    path.chmod(0o644)
    with pytest.raises(ReplyKeyError) as exc:
        reply.load(path)
    assert exc.value.code == "permissions" and str(path) in exc.value.message


def test_reply_key_init_path_option(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere" / "chave.json"
    code, out, err = run(
        tmp_path / "home", None, "reply-key", "init", "--path", str(target), monkeypatch=monkeypatch
    )
    assert code == 0 and target.exists() and str(target) in out
    assert not (tmp_path / "home" / reply.REPLY_KEY_NAME).exists()


# --- prd_reply in the portfolio envelope ---------------------------------------------------------


def _verified_attestation():
    """A VerifiedAttestation for an RSA key made here (what fetch_verified returns)."""
    import datetime as dt

    from jwcrypto import jwk

    from prudencial.client.attestation import VerifiedAttestation

    rsa = jwk.JWK.generate(kty="RSA", size=2048)
    public = {**rsa.export_public(as_dict=True), "kid": "enc-1", "use": "enc"}
    now = dt.datetime.now(dt.UTC)
    att = VerifiedAttestation(
        kid="enc-1",
        kids=("enc-1",),
        signing_kid="sig-1",
        jwks={"keys": [public]},
        module_id="test",
        timestamp=now,
        pcrs={0: "00"},
        nonce=b"n" * 32,
        verified_at=now,
    )
    return att, rsa


def test_the_envelope_carries_prd_reply_exactly_kty_crv_x_y(tmp_path):
    from jwcrypto import jwe

    from enclave_bridge.enclave.envelope import read_header
    from enclave_bridge.enclave.reply import reply_key_of
    from enclave_bridge.wire.protocol import reply_key_problem
    from prudencial.client import envelope

    key = reply.create(tmp_path / "k.json")
    public = reply.public_jwk(key)
    att, rsa = _verified_attestation()
    token = envelope.encrypt(b'{"a": 1}', att, reply=public)
    header = envelope.protected_header(token)
    assert set(header) == {"alg", "enc", "kid", "prd_reply"}
    assert set(header["prd_reply"]) == {"kty", "crv", "x", "y"}
    assert header["prd_reply"] == public and reply_key_problem(header["prd_reply"]) is None
    assert read_header(token)["prd_reply"] == public  # the enclave's header rule accepts it
    assert reply_key_of(token) == public  # and the closing would seal to it
    box = jwe.JWE()
    box.deserialize(token, key=rsa)  # the header is the AAD: still decrypts as sent
    assert box.payload == b'{"a": 1}'
    # Without a reply key the header is the one it always was.
    assert set(envelope.protected_header(envelope.encrypt(b"{}", att))) == {"alg", "enc", "kid"}
    with pytest.raises(ValueError, match="exactly kty, crv, x and y"):
        envelope.encrypt(b"{}", att, reply={**public, "kid": "x"})


def test_submit_puts_the_stored_key_in_a_portfolio_and_says_once_when_there_is_none(
    tmp_path, monkeypatch
):
    from prudencial.client import envelope

    att, _ = _verified_attestation()
    platform = FakePlatform({})

    from prudencial.client.reply import thumbprint as reply_thumbprint

    def fake_submit(self, kind, *, week, agent, file, check, idempotency_key, progress, reply):
        public = self.reply_public() if reply is True else (reply or None)
        token = envelope.encrypt(file.data, att, reply=public)
        calls.append(envelope.protected_header(token))
        answer = {"id": 1, "status": "received", "receipt": envelope.receipt(token), "version": 1}
        kid = None if public is None else reply_thumbprint(public)
        return Submitted(answer, kind, week, (7,), envelope.receipt(token), "k", att.kid, kid)

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(Client, "submit", fake_submit)
    home = tmp_path / "home"
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(payloads.worked_example({k: AGENT[k] for k in ("acronym", "cnpj")})))
    argv = ("submit", "portfolio", str(doc), "--week", WEEK, "--agent", "CM47", "--no-wait")

    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 0, err
    assert err.count("No reply key at") == 1 and str(home / reply.REPLY_KEY_NAME) in err
    assert "prd_reply" not in calls[-1]

    code, out, err = run(home, platform, *argv, "--no-reply-key", monkeypatch=monkeypatch)
    assert code == 0 and "No reply key" not in err and "prd_reply" not in calls[-1]

    key = reply.create(home / reply.REPLY_KEY_NAME)
    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 0 and "No reply key" not in err
    assert calls[-1]["prd_reply"] == reply.public_jwk(key)
    assert f"kid {reply.thumbprint(key)}" in out

    code, out, err = run(home, platform, *argv, "--no-reply-key", monkeypatch=monkeypatch)
    assert "prd_reply" not in calls[-1]  # the explicit opt-out wins over a stored key

    counterparties = ("submit", "counterparties", str(doc), "--week", WEEK, "--agent", "CM47")
    code, out, err = run(home, platform, *counterparties, "--no-wait", monkeypatch=monkeypatch)
    assert "prd_reply" not in calls[-1]  # only a portfolio's leverage has a breakdown


def test_client_submit_sends_the_reply_key_in_the_jwe_it_posts(tmp_path, monkeypatch):
    """The library path itself (no CLI): the posted JWE's header carries prd_reply."""
    from prudencial.client import envelope

    att, _ = _verified_attestation()
    home = tmp_path / "home"
    key = reply.create(home / reply.REPLY_KEY_NAME)
    answer = {"id": 3, "status": "received", "version": 1}
    path = f"weeks/{WEEK}/agents/{AGENT['id']}/portfolio/"
    platform = FakePlatform({("POST", path): (202, answer)})
    session = requests.Session()
    session.mount(BASE, platform)
    client = Client(ClientConfig(base_url=BASE, directory=home), token="t", session=session)
    monkeypatch.setattr(Client, "current_attestation", lambda self: att)
    who = {k: AGENT[k] for k in ("acronym", "cnpj")}
    sent = client.submit(
        "portfolio", week=WEEK, agent=AGENT, payload=payloads.worked_example(who), check=False
    )
    ((posted_path, body),) = platform.posts()
    assert posted_path == path
    assert envelope.protected_header(body["jwe"])["prd_reply"] == reply.public_jwk(key)
    assert sent.reply_kid == reply.thumbprint(key)
    client.submit(
        "portfolio",
        week=WEEK,
        agent=AGENT,
        payload=payloads.worked_example(who),
        check=False,
        reply=False,
    )
    assert "prd_reply" not in envelope.protected_header(platform.posts()[-1][1]["jwe"])


# --- leverage show: the result and its breakdown -------------------------------------------------


def test_show_prints_the_result_and_the_decrypted_breakdown(tmp_path, monkeypatch):
    home = tmp_path / "home"
    key = reply.create(home / reply.REPLY_KEY_NAME)
    token = breakdown_of(reply.public_jwk(key))
    platform = FakePlatform({("GET", leverage_path()): (200, result_body(breakdown_jwe=token))})
    code, out, err = run(
        home, platform, "leverage", "show", WEEK, "--agent", "CM47", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert "FA = 0.0430" in out and "FA_risk = 0.0215" in out
    assert "pending" in out and "enclave signature: verified (kid sig-1)" in out
    assert "Breakdown" in out and str(home / reply.REPLY_KEY_NAME) in out
    assert "PLA = 10,000,000.00" in out
    assert "MAR/2023" in out and "SE/conventional" in out  # per bucket and per source
    assert "205,232.65" in out  # M+0's VaR (R$), only in the sealed breakdown
    assert "GE12" in out  # the concentration detail
    assert "WARNING" not in err
    private = json.loads((home / reply.REPLY_KEY_NAME).read_text())["d"]
    assert private not in out + err

    code, out, err = run(
        home,
        platform,
        "--json",
        "leverage",
        "show",
        WEEK,
        "--agent",
        "CM47",
        monkeypatch=monkeypatch,
    )
    shown = json.loads(out)
    assert shown["breakdown"]["leverage"]["pla"] == 10_000_000.0
    assert shown["breakdown"]["agent"]["acronym"] == "CM47"


def test_show_names_the_key_file_when_it_is_missing_or_does_not_open_it(tmp_path, monkeypatch):
    from jwcrypto import jwk

    home = tmp_path / "home"
    path = home / reply.REPLY_KEY_NAME
    other = jwk.JWK.generate(kty="EC", crv="P-256")
    token = breakdown_of(reply.public_jwk(other))
    platform = FakePlatform({("GET", leverage_path()): (200, result_body(breakdown_jwe=token))})
    argv = ("leverage", "show", WEEK, "--agent", "CM47")

    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 2 and "No reply key at" in err and str(path) in err
    assert "FA = 0.0430" in out  # the platform's figures are still shown

    mine = reply.create(path)
    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 2 and str(path) in err and "does not open it" in err
    assert other.thumbprint() in err and mine.thumbprint() in err  # public kids only
    secrets = [json.loads(path.read_text())["d"], other.export_private(as_dict=True)["d"]]
    assert not any(s in out + err for s in secrets)

    # Sealed to this key but for another agent: not shown under this result's heading.
    swapped = breakdown_of(reply.public_jwk(mine), acronym="GE12")
    platform.routes[("GET", leverage_path())] = (200, result_body(breakdown_jwe=swapped))
    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 2 and "not for this result" in err and "Breakdown" not in out

    # A tampered ciphertext with the right kid.
    good = breakdown_of(reply.public_jwk(mine))
    head, ek, iv, ct, tag = good.split(".")
    bad = ".".join((head, ek, iv, ("A" if ct[0] != "A" else "B") + ct[1:], tag))
    platform.routes[("GET", leverage_path())] = (200, result_body(breakdown_jwe=bad))
    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 2 and "does not open the breakdown" in err and str(path) in err


def test_show_warns_loudly_when_the_signature_does_not_verify(tmp_path, monkeypatch):
    body = result_body(
        signature={"status": "unverified", "signing_kid": "", "reason": "fa differs"},
        closing={
            **result_body()["closing"],
            "reference": f"{WEEK}-2",
            "sequence": 2,
            "correction": {
                "supersedes": f"{WEEK}-1",
                "why": "PLD corrigido",
                "by": "ccee.analista",
                "at": "2023-03-11T10:00:00-03:00",
                "what_changed": {"pld_floor": "61.07 → 69.04"},
            },
        },
    )
    platform = FakePlatform({("GET", leverage_path()): (200, body)})
    code, out, err = run(
        tmp_path / "home",
        platform,
        "leverage",
        "show",
        WEEK,
        "--agent",
        "CM47",
        monkeypatch=monkeypatch,
    )
    assert code == 1
    assert "WARNING" in err and "did NOT verify (unverified)" in err and "fa differs" in err
    assert "DOES NOT VERIFY" in out
    assert f"CORRECTION: this closing supersedes {WEEK}-1" in out and "PLD corrigido" in out
    assert "pld_floor" in out
    assert "no breakdown" in out  # none was sealed: the portfolio had no prd_reply


def test_show_in_portuguese(tmp_path, monkeypatch):
    platform = FakePlatform({("GET", leverage_path()): (200, result_body())})
    config = ClientConfig(base_url=BASE, directory=tmp_path)
    save_config(config)
    session = requests.Session()
    session.mount(BASE, platform)
    monkeypatch.setattr(
        "prudencial.client.cli._client", lambda args: Client(config, token="t", session=session)
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--config", str(tmp_path / "client.toml"), "leverage", "show", WEEK, "--agent", "CM47"],
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "semana 202303001" in text and "situação: calculado" in text
    assert "assinatura do enclave: verificada" in text and "FA_risco" in text


# --- send, cancel, history, network --------------------------------------------------------------


def test_send_asks_to_confirm_and_yes_skips_it(tmp_path, monkeypatch):
    sent = result_body(decision={"state": "sent", "at": "2023-03-10T15:00:00-03:00", "reason": ""})
    platform = FakePlatform(
        {
            ("GET", leverage_path()): (200, result_body()),
            ("POST", leverage_path("send/")): (200, sent),
        }
    )
    home = tmp_path / "home"
    argv = ("leverage", "send", WEEK, "--agent", "CM47")
    code, out, err = run(home, platform, *argv, stdin="n\n", monkeypatch=monkeypatch)
    assert code == 1 and "Sending is final" in err and "Not sent" in err
    assert platform.posts() == []
    code, out, err = run(home, platform, *argv, stdin="y\n", monkeypatch=monkeypatch)
    assert code == 0 and "sent to CCEE at 2023-03-10T15:00:00-03:00" in out
    assert platform.posts() == [(leverage_path("send/"), None)]
    code, out, err = run(home, platform, *argv, "--yes", monkeypatch=monkeypatch)
    assert code == 0 and "Sending is final" not in err and len(platform.posts()) == 2


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("unverified", "a assinatura do enclave sobre este resultado não confere"),
        ("already_sent", "O resultado já foi enviado."),
        ("superseded", "Este fechamento foi substituído por uma correção."),
    ],
)
def test_api_errors_show_the_servers_code_and_message(tmp_path, monkeypatch, code, message):
    refusal = {"error": {"code": code, "message": message, "fields": {}}}
    platform = FakePlatform(
        {
            ("GET", leverage_path()): (200, result_body()),
            ("POST", leverage_path("send/")): (409, refusal),
        }
    )
    home = tmp_path / "home"
    status, out, err = run(
        home,
        platform,
        "leverage",
        "send",
        WEEK,
        "--agent",
        "CM47",
        "--yes",
        monkeypatch=monkeypatch,
    )
    assert status == 4
    assert f"409 ({code})" in err and message in err
    status, out, err = run(
        home,
        platform,
        "--json",
        "leverage",
        "send",
        WEEK,
        "--agent",
        "CM47",
        "--yes",
        monkeypatch=monkeypatch,
    )
    assert status == 4 and json.loads(out) == {"error": code, "status": 409, "message": message}


def test_cancel_sends_the_reason_and_a_refusal_names_the_field(tmp_path, monkeypatch):
    cancelled = result_body(
        decision={"state": "cancelled", "at": "2023-03-10T16:00:00-03:00", "reason": "revisão"}
    )
    platform = FakePlatform({("POST", leverage_path("cancel/")): (200, cancelled)})
    home = tmp_path / "home"
    argv = ("leverage", "cancel", WEEK, "--agent", "CM47", "--reason", "revisão")
    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 0 and "cancelled" in out and "reason: revisão" in out
    assert platform.posts() == [(leverage_path("cancel/"), {"reason": "revisão"})]
    platform.routes[("POST", leverage_path("cancel/"))] = (
        400,
        {
            "error": {
                "code": "invalid",
                "message": "Dados inválidos — reason: Este campo é obrigatório.",
                "fields": {"reason": ["Este campo é obrigatório."]},
            }
        },
    )
    code, out, err = run(home, platform, *argv, monkeypatch=monkeypatch)
    assert code == 4 and "400 (invalid)" in err and "reason: Este campo é obrigatório." in err


def test_history_and_network(tmp_path, monkeypatch):
    first, second = result_body()["closing"], result_body()["closing"]
    first = {**first, "is_current": False}
    second = {
        **second,
        "reference": f"{WEEK}-2",
        "sequence": 2,
        "parameters_version": 4,
        "correction": {
            "supersedes": f"{WEEK}-1",
            "why": "PLD corrigido",
            "by": "ccee",
            "at": "2023-03-11T10:00:00-03:00",
            "what_changed": {},
        },
    }
    entry = {
        "week": WEEK,
        "status": "computed",
        "fa": 0.043,
        "fa_risk": 0.02,
        "decision": {"state": "pending", "at": None, "reason": ""},
        "signature": {"status": "verified", "signing_kid": "s", "reason": ""},
    }
    history = [{**entry, "closing": second}, {**entry, "closing": first, "fa": 0.05}]
    risk = {
        "week": WEEK,
        "agent": AGENT["id"],
        "source": "counterparties",
        "signature": {"status": "verified", "signing_kid": "s", "reason": ""},
        "local": {"cvar_intrinsic": 0.05, "cvar_total": 0.25, "community": 1, "n_communities": 2},
        "network_mean": 0.125,
        "summary": {"n_agents": 4, "n_communities": 2},
        "communities": [
            {
                "community": 1,
                "rank": 1,
                "size": 3,
                "propagators": 1,
                "mean_cvar_intrinsic": 0.05,
                "mean_cvar_propagated": 0.2,
                "mean_cvar_total": 0.25,
            }
        ],
    }
    platform = FakePlatform(
        {
            ("GET", f"agents/{AGENT['id']}/leverage/history/"): (200, history),
            ("GET", f"weeks/{WEEK}/agents/{AGENT['id']}/network-risk/"): (200, risk),
        }
    )
    home = tmp_path / "home"
    code, out, err = run(
        home, platform, "leverage", "history", "--agent", "CM47", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert f"{WEEK}-2" in out and f"{WEEK}-1 *" in out and "superseded by a correction" in out
    assert "v4" in out and "0.0500" in out and "PLD corrigido" in out
    code, out, err = run(
        home, platform, "leverage", "network", WEEK, "--agent", "CM47", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert "counterparties declarations" in out and "network mean: 0.1250" in out
    assert "community 1 (rank — of 2)" in out and "n_agents = 4" in out


# --- against the live test server ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_leverage_show_against_the_live_server_prints_the_stored_figures(
    live_server, tmp_path, monkeypatch
):
    """A stored closing (tests/closing/admin_data, no pipeline) whose row holds a breakdown
    sealed to the agent's reply key: `leverage show` prints the stored FA and opens the
    breakdown; `leverage send` of that row (never verified: no enclave answer) is refused
    with the platform's code."""
    from prudencial.closing.models import LeverageResult
    from tests.closing.admin_data import CANARY_FA, make_closing
    from tests.factories import PASSWORD, UserFactory, grant

    closing, results, agents = make_closing()
    hidden = agents["HIDDEN"]
    home = tmp_path / "home"
    key = reply.create(home / reply.REPLY_KEY_NAME)
    token = breakdown_of(reply.public_jwk(key), week=closing.week.code, acronym=hidden.acronym)
    LeverageResult.objects.filter(pk=results["HIDDEN"].pk).update(breakdown_jwe=token)
    user = UserFactory(username="agente.show")
    grant(user, hidden)
    config = ClientConfig(base_url=live_server.url, directory=home)
    save_config(config)
    Client(config).login(user.username, PASSWORD)

    def cli(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--config", str(home / "client.toml"), "--lang", "en", *args], stdout=out, stderr=err
        )
        return code, out.getvalue(), err.getvalue()

    code, out, err = cli("leverage", "show", closing.week.code, "--agent", hidden.acronym)
    assert f"FA = {CANARY_FA:.4f}" in out and f"FA_risk = {CANARY_FA / 2:.4f}" in out
    assert f"closing: {closing.reference} (current)" in out
    assert "PLA = 10,000,000.00" in out and "SE/conventional" in out  # opened here
    # Rows written without an enclave answer are never shown as verified: loud, and exit 1.
    assert code == 1 and "did NOT verify" in err

    code, out, err = cli("leverage", "send", closing.week.code, "--agent", hidden.acronym, "--yes")
    assert code == 4 and "409 (unverified)" in err
    code, out, err = cli("leverage", "history", "--agent", hidden.acronym)
    assert closing.reference in out and f"{CANARY_FA:.4f}" in out
    code, out, err = cli("leverage", "show", closing.week.code, "--agent", "999999")
    assert code == 2 and "not found" in err  # not among the user's agents: never asked
