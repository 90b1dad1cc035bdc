"""The Node.js example (examples/node, `jose` pinned): it fetches the attestation, verifies it
with the policy given on its command line (examples/node/attestation.mjs), encrypts a v2
portfolio to the current kid, and the REAL enclave accepts the envelope. Also with the key the
Python client verified and exported, and refused (nothing printed) on a wrong PCR or a key the
document does not bind."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from jwcrypto import jwk

from enclave_bridge.wire.protocol import b64url_decode
from prudencial.client.attestation import fetch_verified
from prudencial.client.envelope import protected_header
from tests.client import payloads

pytestmark = pytest.mark.enclave

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node"
TOKEN = "node-example-token"
WHO = payloads.agent(7)
NODE, NPM = shutil.which("node"), shutil.which("npm")


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """A copy of examples/node with its pinned dependencies installed by `npm ci` (cache in a
    temporary directory; offline when the cache already holds them)."""
    if not (NODE and NPM):
        pytest.skip("node and npm are not installed: the Node.js example cannot run here")
    work = tmp_path_factory.mktemp("node-example")
    for name in ("package.json", "package-lock.json", "attestation.mjs", "submit-envelope.mjs"):
        shutil.copy(EXAMPLE / name, work / name)
    cache = Path(tmp_path_factory.getbasetemp()) / "npm-cache"
    done = subprocess.run(
        [
            NPM,
            "ci",
            "--cache",
            str(cache),
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lock = json.loads((work / "package-lock.json").read_text())
    installed = json.loads((work / "node_modules" / "jose" / "package.json").read_text())
    assert installed["version"] == lock["packages"]["node_modules/jose"]["version"]
    return work


class _Relay(BaseHTTPRequestHandler):
    """The platform's GET /api/v1/enclave/attestation/?nonce=, relaying the real enclave."""

    relay = None
    tamper = False

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/api/v1/enclave/attestation/":
            return self._send(404, {"error": {"code": "not_found", "message": "", "fields": {}}})
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            return self._send(
                401, {"error": {"code": "not_authenticated", "message": "", "fields": {}}}
            )
        nonce = parse_qs(url.query)["nonce"][0]
        answer = self.relay.answer(b64url_decode(nonce))
        if type(self).tamper:
            mine = jwk.JWK.generate(kty="RSA", size=2048).export_public(as_dict=True)
            for key in answer["jwks"]["keys"]:
                if key["kid"] == answer["kid"] and key["use"] == "enc":
                    key["n"], key["e"] = mine["n"], mine["e"]
        return self._send(200, answer)

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def platform(relay):
    handler = type("Relay", (_Relay,), {"relay": relay, "tamper": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _run(example: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NODE, "submit-envelope.mjs", *args],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _policy_args(enclave, pcrs=None) -> list[str]:
    pcrs = pcrs or {i: enclave.pcrs[i].hex() for i in (0, 1, 2)}
    out = ["--trust-root", str(enclave.stack.trust_root_path)]
    for index, value in pcrs.items():
        out += ["--pcr", f"{index}={value}"]
    return out


@pytest.fixture
def payload_file(tmp_path) -> Path:
    path = tmp_path / "portfolio.json"
    path.write_text(json.dumps(payloads.with_contracts(WHO)))
    return path


def test_node_fetches_verifies_and_the_enclave_accepts(
    example, platform, enclave, enclave_client, payload_file
):
    server, _ = platform
    done = _run(
        example,
        "--base-url",
        f"http://127.0.0.1:{server.server_port}",
        "--token",
        TOKEN,
        *_policy_args(enclave),
        "--payload",
        str(payload_file),
    )
    assert done.returncode == 0, done.stderr
    envelope = done.stdout.strip()
    header = protected_header(envelope)
    assert header["alg"] == "RSA-OAEP-256" and header["enc"] == "A256GCM"
    assert header["kid"] == enclave_client.attest().kid
    verdict = enclave_client.validate(envelope, kind="portfolio", agent=WHO, week=payloads.WEEK)
    assert verdict["status"] == "accepted", verdict


def test_node_with_the_key_the_python_client_verified(
    example, relay, policy, enclave_client, payload_file, tmp_path
):
    exported = tmp_path / "verified.json"
    exported.write_text(json.dumps(fetch_verified(relay, policy).export()))
    done = _run(example, "--attestation", str(exported), "--payload", str(payload_file))
    assert done.returncode == 0, done.stderr
    verdict = enclave_client.validate(
        done.stdout.strip(), kind="portfolio", agent=WHO, week=payloads.WEEK
    )
    assert verdict["status"] == "accepted", verdict


def test_node_refuses_a_wrong_pcr(example, platform, enclave, payload_file):
    server, _ = platform
    pcrs = {i: enclave.pcrs[i].hex() for i in (0, 1, 2)}
    pcrs[1] = "00" * 48
    done = _run(
        example,
        "--base-url",
        f"http://127.0.0.1:{server.server_port}",
        "--token",
        TOKEN,
        *_policy_args(enclave, pcrs),
        "--payload",
        str(payload_file),
    )
    assert done.returncode == 3 and done.stdout == ""
    assert "PCR1" in done.stderr


def test_node_refuses_a_key_the_document_does_not_bind(example, platform, enclave, payload_file):
    server, handler = platform
    handler.tamper = True
    done = _run(
        example,
        "--base-url",
        f"http://127.0.0.1:{server.server_port}",
        "--token",
        TOKEN,
        *_policy_args(enclave),
        "--payload",
        str(payload_file),
    )
    assert done.returncode == 3 and done.stdout == ""
    assert "public_key" in done.stderr


def test_node_refuses_another_trust_root(example, platform, enclave, payload_file, tmp_path):
    from enclave_bridge.attestation.devpki import create_dev_pki

    create_dev_pki(tmp_path / "other")
    server, _ = platform
    args = _policy_args(enclave)
    args[1] = str(tmp_path / "other" / "root.pem")
    done = _run(
        example,
        "--base-url",
        f"http://127.0.0.1:{server.server_port}",
        "--token",
        TOKEN,
        *args,
        "--payload",
        str(payload_file),
    )
    assert done.returncode == 3 and done.stdout == ""
    assert "trust root" in done.stderr


def test_node_refuses_a_stale_document(example, platform, enclave, payload_file):
    server, _ = platform
    done = _run(
        example,
        "--base-url", f"http://127.0.0.1:{server.server_port}",
        "--token", TOKEN,
        *_policy_args(enclave),
        "--max-age", "0",
        "--payload", str(payload_file),
    )  # fmt: skip
    assert done.returncode == 3 and done.stdout == ""
    assert "older than 0 s" in done.stderr
