"""The client's pieces without a platform: client.toml and the pinned policy, the token file's
permissions, the API's error shapes, messages in pt-BR and English, errors by field and row,
XLSX files read locally with the domain's converters, and the import rule."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from prudencial.client import i18n
from prudencial.client.api import Api, api_root, error_from_response
from prudencial.client.cli import format_errors, main
from prudencial.client.config import (
    ClientConfig,
    TrustPolicy,
    load_config,
    load_token,
    save_config,
    save_token,
)
from prudencial.client.errors import ApiError, ConfigError, PayloadError
from tests.client import payloads

PCR = "ab" * 48


@pytest.fixture(autouse=True)
def _portuguese():
    i18n.set_language("pt-br")
    yield
    i18n.set_language("pt-br")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.toml"
    path.write_text(text)
    return path


def test_config_round_trip(tmp_path):
    policy = TrustPolicy(
        trust_root="aws", pcrs={0: bytes.fromhex(PCR), 2: bytes(48)}, root_sha256="0" * 64
    )
    config = ClientConfig(base_url="https://ccee.example", trust=policy, directory=tmp_path)
    path = save_config(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_config(path)
    assert loaded.base_url == "https://ccee.example"
    assert loaded.trust == policy
    assert loaded.trust.root_certificate()  # the packaged AWS root, fingerprint checked


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[attestation]\npcrs = {0 = 'x'}\n", "trust_root_missing"),
        ("[attestation]\ntrust_root = 'aws'\n", "pcrs_missing"),
        (f"[attestation]\ntrust_root = 'aws'\n[attestation.pcrs]\n1 = '{PCR}'\n", "pcr_required"),
        ("[attestation]\ntrust_root = 'aws'\n[attestation.pcrs]\n0 = 'abc'\n", "pcr_value"),
        (f"[attestation]\ntrust_root = 'aws'\n[attestation.pcrs]\n40 = '{PCR}'\n", "pcr_index"),
        (
            f"[attestation]\ntrust_root = 'aws'\nmax_age_seconds = 0\n[attestation.pcrs]\n0 = '{PCR}'\n",
            "max_age",
        ),
        ("base_url = [", "unreadable"),
    ],
)
def test_config_refusals_name_the_setting(tmp_path, text, code):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    assert exc.value.code == code
    assert exc.value.message and "{" not in exc.value.message


def test_relative_trust_root_is_beside_the_config(tmp_path):
    path = write(
        tmp_path,
        f"base_url = 'http://x'\n[attestation]\ntrust_root = 'pki/root.pem'\n[attestation.pcrs]\n0 = '{PCR}'\n",
    )
    assert load_config(path).trust.trust_root == str(tmp_path / "pki" / "root.pem")


def test_no_policy_means_nothing_can_be_encrypted(tmp_path):
    config = load_config(write(tmp_path, "base_url = 'http://x'\n"))
    with pytest.raises(ConfigError) as exc:
        config.require_trust()
    assert exc.value.code == "no_trust_policy"


def test_token_file_is_private_and_bound_to_its_platform(tmp_path, monkeypatch):
    monkeypatch.delenv("PRUDENCIAL_TOKEN", raising=False)
    config = ClientConfig(base_url="https://a.example", directory=tmp_path / "home")
    path = save_token(config, "tok", "joao")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_token(config) == "tok"
    other = ClientConfig(base_url="https://b.example", directory=tmp_path / "home")
    assert load_token(other) is None  # never sent to another platform
    monkeypatch.setenv("PRUDENCIAL_TOKEN", "from-env")
    assert load_token(other) == "from-env"
    monkeypatch.delenv("PRUDENCIAL_TOKEN")
    path.chmod(0o640)
    with pytest.raises(ConfigError):
        load_token(config)


def _response(status: int, body, headers=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    response.headers.update(headers or {})
    return response


def test_api_error_shapes():
    err = error_from_response(
        _response(
            400,
            {"error": {"code": "invalid", "message": "Dados inválidos", "fields": {"jwe": ["x"]}}},
        )
    )
    assert (err.status, err.api_code, err.fields) == (400, "invalid", {"jwe": ["x"]})
    err = error_from_response(
        _response(409, {"error": {"code": "week_closed", "message": "prazo 20:00", "fields": {}}})
    )
    assert err.api_message == "prazo 20:00" and "409" in err.message
    err = error_from_response(
        _response(422, {"detail": "x", "errors": [{"field": "a", "row": 1, "rule": "r"}]})
    )
    assert err.errors == [{"field": "a", "row": 1, "rule": "r"}]
    err = error_from_response(
        _response(429, {"error": {"code": "throttled"}}, {"Retry-After": "7"})
    )
    assert err.retry_after == 7.0
    assert error_from_response(_response(502, b"<html>")).api_code == "http_error"


def test_api_root_and_language():
    assert api_root("https://h/") == "https://h/api/v1"
    assert api_root("https://h/api/v1") == "https://h/api/v1"
    api = Api("https://h", language="en")
    assert api.session.headers["Accept-Language"] == "en"


def test_connection_failure_is_named(tmp_path):
    from prudencial.client.errors import ConnectionFailed

    api = Api("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ConnectionFailed) as exc:
        api.week("202303001")
    assert "127.0.0.1:9" in exc.value.message


def test_language_choice(monkeypatch):
    for name in ("PRUDENCIAL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert i18n.resolve_language() == i18n.PT
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert i18n.resolve_language() == i18n.EN
    assert i18n.resolve_language("pt-BR") == i18n.PT
    i18n.set_language("en")
    assert "Nothing was encrypted" in i18n.tr("attestation.nonce_echo")
    i18n.set_language("pt-BR")
    assert "Nada foi cifrado" in i18n.tr("attestation.nonce_echo")


def test_every_message_has_both_languages_and_the_same_fields():
    import string

    for key, (pt, en) in i18n.CATALOG.items():
        names = lambda t: {f for _, f, _, _ in string.Formatter().parse(t) if f}  # noqa: E731
        assert names(pt) == names(en), key


def test_errors_by_field_and_row():
    lines = format_errors(
        [
            {
                "field": "contracts[3].amount_brl",
                "row": 4,
                "rule": "must be > 0 when volume_mwm > 0",
            },
            {
                "field": "week",
                "row": None,
                "rule": "must be the week this envelope was submitted for",
            },
        ]
    )
    assert lines[0].split() == ["linha", "campo", "regra"]
    assert lines[1].split()[:2] == ["4", "contracts[3].amount_brl"]
    assert lines[2].split()[:2] == ["—", "week"]


def test_cli_help_in_both_languages():
    out = io.StringIO()
    with pytest.raises(SystemExit):
        sys.stdout, saved = out, sys.stdout
        try:
            main(["--help"])
        finally:
            sys.stdout = saved
    assert "uso:" in out.getvalue() and "cifra" in out.getvalue()
    done = subprocess.run(
        [sys.executable, "-m", "prudencial.client", "--lang", "en", "fa-preview", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "usage:" in done.stdout and "nothing is sent" in done.stdout


def test_cli_fa_preview_offline_with_a_parameters_file(tmp_path):
    """fa-preview needs no platform at all given the week's parameters: nothing is sent."""
    (tmp_path / "p.json").write_text(json.dumps(payloads.worked_example(payloads.agent(1))))
    (tmp_path / "w.json").write_text(json.dumps(payloads.parameters()))
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--lang", "en", "fa-preview", str(tmp_path / "p.json"), "--week", payloads.WEEK,
         "--parameters", str(tmp_path / "w.json")],
        stdout=out,
        stderr=err,
    )  # fmt: skip
    assert code == 0, err.getvalue()
    assert "FA = 0.0430" in out.getvalue()


def test_cli_init_writes_a_private_config(tmp_path):
    target = tmp_path / "c" / "client.toml"
    out = io.StringIO()
    code = main(
        [
            "--config",
            str(target),
            "--base-url",
            "https://ccee.example",
            "init",
            "--pcr",
            f"0={PCR}",
        ],
        stdout=out,
    )
    assert code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert load_config(target).trust.pcrs == {0: bytes.fromhex(PCR)}
    assert (
        main(["--config", str(target), "--base-url", "x", "init", "--pcr", f"0={PCR}"], stdout=out)
        == 2
    )


def _template_rows(who, doc):
    """The v2 portfolio as the XLSX template's rows (the domain's own writer)."""
    from prudencial.domain import sheets

    labels = sheets.labels_of(payloads.parameters())
    return sheets.payloads_to_rows("portfolio", [doc], bucket_labels=labels)


def test_xlsx_preview_reads_the_template_locally(tmp_path):
    """A filled template (written here with openpyxl from the domain's rows) previews to the
    same FA as its JSON."""
    from openpyxl import Workbook

    from prudencial.client import preview
    from prudencial.client.envelope import read_file

    who = payloads.agent(3)
    doc = payloads.worked_example(who)
    grid = _template_rows(who, doc)
    book = Workbook()
    book.remove(book.active)
    for name, rows in grid.items():
        ws = book.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    path = tmp_path / "modelo.xlsx"
    book.save(path)
    previews, errors = preview.preview_file(read_file(path), payloads.parameters())
    assert not errors, errors
    (p,) = previews
    assert p.ok, p.errors
    assert p.fa == preview.fa_preview(doc, payloads.parameters()).fa


def test_payload_error_keeps_the_rows():
    err = PayloadError("invalid", errors=[{"field": "a", "row": 2, "rule": "r"}], count=1)
    assert err.errors[0]["row"] == 2 and "1" in err.message


def test_api_error_is_a_client_error():
    assert issubclass(ApiError, Exception)


class _Recorder(requests.adapters.BaseAdapter):
    """A transport that records every request and answers GET /weeks/{code}/ only."""

    def __init__(self, week: dict) -> None:
        super().__init__()
        self.week = week
        self.seen: list[tuple[str, str, bytes | None]] = []

    def send(self, request, **kwargs):
        body = request.body if isinstance(request.body, bytes | type(None)) else request.body.read()
        self.seen.append((request.method, request.url, body))
        response = requests.Response()
        response.request = request
        if request.method == "GET" and request.url.endswith(f"/weeks/{self.week['code']}/"):
            response.status_code = 200
            response._content = json.dumps(self.week).encode()
        else:
            response.status_code = 404
            response._content = b'{"error": {"code": "not_found", "message": "", "fields": {}}}'
        return response

    def close(self):
        pass


def test_fa_preview_sends_nothing_but_the_week_request(tmp_path):
    """The plaintext stays here: fa-preview's only request is GET /weeks/{code}/, with no body."""
    from prudencial.client import Client
    from tests.client.test_envelope_and_preview import api_week

    params = payloads.parameters()
    recorder = _Recorder(api_week(params))
    session = requests.Session()
    session.mount("https://", recorder)
    client = Client(
        ClientConfig(base_url="https://ccee.example", directory=tmp_path),
        token="t",
        session=session,
    )
    path = tmp_path / "p.json"
    path.write_text(json.dumps(payloads.worked_example(payloads.agent(5))))
    (result,), errors = client.fa_preview(payloads.WEEK, path)
    assert not errors and round(result.fa, 4) == 0.0430
    assert recorder.seen == [("GET", f"https://ccee.example/api/v1/weeks/{payloads.WEEK}/", None)]


def test_the_token_is_never_sent_to_another_origin():
    """A status URL on another host (or another scheme) is refused before any request."""
    api = Api("https://plataforma.example", token="secret")
    for url in ("https://attacker.example/api/v1/batches/1/", "http://plataforma.example/x"):
        with pytest.raises(ValueError, match="another origin"):
            api.follow(url)


def test_a_bom_is_not_encrypted():
    """A JSON file saved with a byte-order mark is sent as the plain UTF-8 the enclave reads."""
    from prudencial.client import envelope

    file = envelope.from_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())
    assert not file.data.startswith(b"\xef\xbb\xbf") and file.payload == {"a": 1}


def test_a_batch_workbook_has_the_batch_bound():
    from prudencial.client import envelope

    big = envelope.XLSX_MAGIC + b"\0" * (envelope.MAX_XLSX_BYTES + 1)
    with pytest.raises(PayloadError):
        envelope.from_bytes(big)
    assert envelope.from_bytes(big, batch=True).format == "xlsx"
