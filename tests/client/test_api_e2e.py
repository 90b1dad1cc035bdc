"""The agent client end to end: the Django platform served for real (live_server), PostgreSQL,
the enclave's keys registered by the host, a real Celery worker on Redis validating in the REAL
enclave process. The client logs in, verifies the attestation itself, encrypts, submits, follows
the status, shows errors by field and row, computes fa-preview from the week's published
parameters — equal to the FA the enclave computes with the host's parameters (0.0430)."""

from __future__ import annotations

import io
import json
import stat
from datetime import date
from decimal import Decimal

import pytest

from prudencial.client import Client, PayloadError, read_file
from prudencial.client.cli import main
from prudencial.client.config import ClientConfig, load_config, save_config
from prudencial.client.errors import ApiError, AttestationRefused
from tests.client import payloads

pytestmark = [pytest.mark.enclave, pytest.mark.celery]
WEEK = payloads.WEEK
VOLATILITY = (0.05, 0.06, 0.07, 0.07, 0.08, 0.08, 0.09)
FORWARD = (150, 160, 170, 175, 180, 185, 190)


def worked_example_week():
    """Week 202303001 open, with the worked example's parameters (docs/risk.md)."""
    from prudencial.services.parameters import parameters_save
    from tests.submissions.conftest import open_week

    week = open_week(WEEK)
    parameters_save(
        week=week,
        fields={
            "first_month": date(2023, 3, 1),
            "correlation": [[1.0] * 7 for _ in range(7)],
            "pld_floor": Decimal("61.07"),
            "pld_cap": Decimal("716.80"),
            "confidence": Decimal("0.95"),
            "liquidation_days": 5,
            "k": Decimal("0"),
            "theta": Decimal("0"),
        },
        buckets=[
            {
                "volatility": Decimal(str(VOLATILITY[i])),
                **{f"forward_price_{sm}": Decimal(FORWARD[i]) for sm in ("se", "s", "ne", "n")},
                "stress_price_long": Decimal("716.80"),
                "stress_price_short": Decimal("61.07"),
            }
            for i in range(7)
        ],
    )
    week.refresh_from_db()
    return week


@pytest.fixture
def platform(worker, host_enclave, live_server, policy, tmp_path):
    from tests.factories import PASSWORD, AgentFactory, UserFactory, grant

    week = worked_example_week()
    trader = AgentFactory(acronym="CM47", agent_class="trader")
    generator = AgentFactory(acronym="GE12", agent_class="generator")
    foreign = AgentFactory(acronym="CS99", agent_class="free_consumer")
    user = UserFactory(username="agente.cliente")
    grant(user, trader)
    grant(user, generator)
    home = tmp_path / "client-home"
    config = ClientConfig(base_url=live_server.url, trust=policy, directory=home)
    save_config(config)
    return {
        "week": week,
        "trader": trader,
        "generator": generator,
        "foreign": foreign,
        "user": user,
        "password": PASSWORD,
        "config": load_config(home / "client.toml"),
        "home": home,
        "worker": worker,
    }


def who(agent) -> dict[str, str]:
    return {"acronym": agent.acronym, "cnpj": agent.cnpj}


@pytest.fixture
def client(platform) -> Client:
    c = Client(platform["config"])
    c.login(platform["user"].username, platform["password"])
    return c


def test_login_stores_the_token_only_for_its_owner(platform, client):
    path = platform["config"].token_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = Client(platform["config"])  # a new process reads the stored token
    assert {a["acronym"] for a in again.agents()} == {"CM47", "GE12"}
    path.chmod(0o644)
    from prudencial.client.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        Client(platform["config"])
    assert exc.value.code == "token_permissions"


def test_wrong_password_is_the_platforms_refusal(platform):
    c = Client(platform["config"])
    with pytest.raises(ApiError) as exc:
        c.login(platform["user"].username, "wrong")
    assert exc.value.status == 400


def test_attestation_through_the_platform_is_verified_here(client, enclave):
    att = client.attestation()
    assert att.pcrs[0] == enclave.pcrs[0].hex()
    from enclave_bridge.models import EnclaveKey

    assert EnclaveKey.objects.get(use="enc", status="current").kid == att.kid


def test_wrong_pcr_refuses_before_anything_is_sent(platform, client, policy):
    import dataclasses

    from prudencial.submissions.models import Submission

    bad = dataclasses.replace(policy, pcrs={**policy.pcrs, 0: bytes(48)})
    c = Client(platform["config"], trust=bad)
    with pytest.raises(AttestationRefused):
        c.submit(
            "portfolio",
            week=WEEK,
            agent="CM47",
            payload=payloads.worked_example(who(platform["trader"])),
        )
    assert Submission.objects.count() == 0


def test_submit_and_follow_until_accepted(platform, client):
    trader = platform["trader"]
    sent = client.submit(
        "portfolio", week=WEEK, agent="CM47", payload=payloads.with_contracts(who(trader))
    )
    assert sent.status == "received" and sent.receipt_ok and sent.answer["version"] == 1
    final = client.wait(sent, timeout=90)
    assert final["status"] == "accepted" and final["verdict_verified"], final
    assert final["receipt"] == sent.receipt


def test_rejected_shows_errors_by_field_and_row(platform, client):
    trader = platform["trader"]
    doc = payloads.invalid(who(trader))
    with pytest.raises(PayloadError) as local:  # the local check refuses first, nothing sent
        client.submit("portfolio", week=WEEK, agent="CM47", payload=doc)
    sent = client.submit("portfolio", week=WEEK, agent="CM47", payload=doc, check=False)
    final = client.wait(sent, timeout=90)
    assert final["status"] == "rejected"
    assert {(e["field"], e["row"]) for e in final["errors"]} == {
        (e["field"], e["row"]) for e in local.value.errors
    }
    assert ("forecasts[1].generation_mwm", 2) in {(e["field"], e["row"]) for e in final["errors"]}


def test_idempotency_key_makes_one_version(platform, client):
    """A retried POST (same envelope, same key) answers the first and stores no second version;
    the same key with another body (a new JWE) is 422."""
    trader = platform["trader"]
    payload = payloads.worked_example(who(trader))
    jwe = client.encrypt(payload)
    first = client.api.submit(WEEK, trader.pk, "portfolio", jwe, idempotency_key="k-1")
    retried = client.api.submit(WEEK, trader.pk, "portfolio", jwe, idempotency_key="k-1")
    assert retried["id"] == first["id"] and retried["version"] == 1
    with pytest.raises(ApiError) as exc:
        client.submit("portfolio", week=WEEK, agent="CM47", payload=payload, idempotency_key="k-1")
    assert exc.value.status == 422
    assert len(client.submissions(WEEK, "CM47")) == 1


def test_foreign_agent_is_not_found(platform, client):
    foreign = platform["foreign"]
    with pytest.raises(PayloadError) as exc:  # not among the user's agents: never looked up
        client.resolve_agent("CS99")
    assert exc.value.code == "agent_not_found"
    with pytest.raises(ApiError) as exc:
        client.submit(
            "portfolio",
            week=WEEK,
            agent={"id": foreign.pk, "acronym": foreign.acronym, "cnpj": foreign.cnpj},
            payload=payloads.worked_example(who(foreign)),
            check=False,
        )
    assert exc.value.status == 404


def test_batch_declares_the_agents_it_covers(platform, client, tmp_path):
    trader, generator = platform["trader"], platform["generator"]
    doc = {
        "schema": "prudencial/batch/v1",
        "week": WEEK,
        "portfolios": [
            payloads.worked_example(who(trader)),
            payloads.with_contracts(who(generator)),
        ],
        "counterparties": [],
    }
    path = tmp_path / "lote.json"
    path.write_text(json.dumps(doc))
    assert [a["acronym"] for a in client.batch_agents(WEEK, read_file(path))] == ["CM47", "GE12"]
    sent = client.submit_batch(week=WEEK, path=path)
    assert sorted(sent.agent_ids) == sorted([trader.pk, generator.pk])
    final = client.wait(sent, timeout=120)
    assert final["status"] == "accepted", final
    assert {s["status"] for s in final["submissions"]} == {"accepted"}


def test_fa_preview_equals_the_enclave_with_the_hosts_parameters(platform, client, enclave_client):
    """Local: the week's public parameters (GET /weeks/{code}/) and the agent's plaintext.
    Enclave: the same payload's envelope, computed with the parameters the host ships."""
    from prudencial.services.parameters import parameters_payload

    trader = platform["trader"]
    doc = payloads.worked_example(who(trader))
    (preview,), errors = client.fa_preview(WEEK, payload=doc)
    assert not errors and preview.ok
    assert round(preview.fa, 4) == 0.0430
    host = parameters_payload(platform["week"].parameters)
    token = client.encrypt(doc)
    results = enclave_client.compute(
        host,
        [
            {
                "agent": dict(who(trader), **{"class": "trader"}),
                "portfolio": token,
                "counterparties": None,
            }
        ],
    )
    (published,) = results["agents"]
    assert published["leverage"]["fa"] == preview.fa  # exactly: same code, same numbers
    assert round(published["leverage"]["fa"], 4) == 0.0430


def test_cli_end_to_end(platform, tmp_path, monkeypatch):
    """login (password on stdin), attestation --export, submit and follow, status, fa-preview,
    schemas: the commands an agent runs, in English."""
    trader = platform["trader"]
    conf = str(platform["home"] / "client.toml")
    monkeypatch.setattr("sys.stdin", io.StringIO(platform["password"] + "\n"))

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--config", conf, "--lang", "en", *args], stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    code, out, err = run("login", "--username", platform["user"].username, "--password-stdin")
    assert code == 0, err
    code, out, err = run("attestation", "--export", str(tmp_path / "verified.json"))
    assert code == 0 and "Attestation verified" in out, err
    assert json.loads((tmp_path / "verified.json").read_text())["kid"]
    good = tmp_path / "portfolio.json"
    good.write_text(json.dumps(payloads.worked_example(who(trader))))
    code, out, err = run("submit", "portfolio", str(good), "--week", WEEK, "--agent", "CM47")
    assert code == 0 and "accepted" in out, out + err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(payloads.invalid(who(trader))))
    code, out, err = run("submit", "portfolio", str(bad), "--week", WEEK, "--agent", "CM47")
    assert code == 1 and "forecasts[1].generation_mwm" in err and "nothing was sent" in err
    code, out, err = run(
        "submit", "portfolio", str(bad), "--week", WEEK, "--agent", "CM47", "--no-check"
    )
    assert code == 1 and "rejected" in out and "forecasts[1].generation_mwm" in out
    code, out, err = run("status", "--week", WEEK, "--agent", "CM47")
    assert code == 0 and out.count("portfolio") == 2
    code, out, err = run("fa-preview", str(good), "--week", WEEK)
    assert code == 0 and "FA = 0.0430" in out and "nothing was sent" in out
    code, out, err = run("--json", "fa-preview", str(good), "--week", WEEK)
    assert round(json.loads(out)["previews"][0]["fa"], 4) == 0.0430
    code, out, err = run("schemas", "--out", str(tmp_path / "schemas"))
    assert code == 0, err
    schema = json.loads((tmp_path / "schemas" / "portfolio.schema.json").read_text())
    assert schema["examples"]


def test_the_python_example_of_the_api_guide_runs(platform, enclave):
    """docs/api.md § 2 "Python", as written, against this platform: prints "accepted"."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    guide = (root / "docs" / "api.md").read_text()
    section = guide[guide.index("### Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = {
        **os.environ,
        "PRUDENCIAL_API": platform["config"].base_url + "/api/v1",
        "PRUDENCIAL_USER": platform["user"].username,
        "PRUDENCIAL_PASSWORD": platform["password"],
        "PRUDENCIAL_TRUST_ROOT": str(enclave.stack.trust_root_path),
        **{f"PRUDENCIAL_PCR{i}": enclave.pcrs[i].hex() for i in (0, 1, 2)},
        "AGENT": "CM47",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("accepted"), done.stdout


def test_xlsx_submission_and_batch(platform, client, tmp_path, monkeypatch):
    """One agent's filled template, and a workbook covering two agents sent by `batch` (which
    reads the agents from the file): both accepted; the batch's progress is followed."""
    trader, generator = platform["trader"], platform["generator"]
    single = tmp_path / "cm47.xlsx"
    single.write_bytes(payloads.workbook("portfolio", [payloads.with_contracts(who(trader))]))
    sent = client.submit("portfolio", week=WEEK, agent="CM47", path=single)
    final = client.wait(sent, timeout=90)
    assert final["status"] == "accepted", final

    both = tmp_path / "lote.xlsx"
    both.write_bytes(
        payloads.workbook(
            "all",
            [
                payloads.worked_example(who(trader)),
                payloads.with_contracts(who(generator)),
                payloads.counterparties(who(trader), who(generator)),
            ],
        )
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--config", str(platform["home"] / "client.toml"), "--lang", "en", "batch", str(both),
         "--week", WEEK],
        stdout=out,
        stderr=err,
    )  # fmt: skip
    assert code == 0, out.getvalue() + err.getvalue()
    text = out.getvalue()
    assert "Declared agents: CM47, GE12" in text and "status: accepted" in text
    assert "CM47 counterparties: accepted" in text
