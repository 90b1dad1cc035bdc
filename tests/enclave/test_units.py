"""In-process unit tests: protocol binding checks, CNPJ digits, XLSX parser, key ring sealing."""

from __future__ import annotations

import json
import os

import pytest
from jwcrypto import jwk, jws

from enclave_bridge.client.trust import AnswerVerifier
from enclave_bridge.enclave.keys import KeyRing
from enclave_bridge.enclave.validation import fast_validator, validator
from enclave_bridge.enclave.xlsx import build_template, parse_workbook
from enclave_bridge.wire.protocol import (
    AnswerVerificationError,
    ProtocolError,
    answer_body,
    args_sha256,
    b64url_decode,
    decode_message,
    encode_frame,
    parse_request,
    sign_answer,
    verify_answer,
)
from prudencial.domain import formats
from prudencial.domain.identifiers import cnpj_is_valid

from .payloads import WEEK, agent, counterparties, portfolio


@pytest.fixture(scope="module")
def signer():
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    return key, jwk.JWK(**key.export_public(as_dict=True))


def test_answer_signatures_are_standard_jws_es256(signer):
    """Hand-assembled JWS (for speed) that jwcrypto verifies as is, including signatures whose r
    or s has leading zero bytes (about one in 128 here: 800 tokens)."""
    key, public = signer
    for i in range(800):
        token = sign_answer(f'{{"n": {i}}}'.encode(), key.get_op_key("sign"), "kid-1")
        checked = jws.JWS()
        checked.deserialize(token)
        checked.verify(public, alg="ES256")
        assert checked.payload == f'{{"n": {i}}}'.encode()
        assert checked.jose_header == {"alg": "ES256", "kid": "kid-1"}
        assert len(b64url_decode(token.rsplit(".", 1)[1])) == 64
    with pytest.raises(ValueError, match="P-256"):
        sign_answer(b"{}", jwk.JWK.generate(kty="EC", crv="P-384"), "k")


def test_verify_answer_accepts_only_es256(signer):
    """An ES384 answer (the former contract) is refused, even by a P-384 key it verifies with."""
    old = jwk.JWK.generate(kty="EC", crv="P-384")
    body = answer_body(req_id="r", nonce=b"n" * 16, op="health", result={})
    token = jws.JWS(body)
    token.add_signature(old, alg="ES384", protected={"alg": "ES384", "kid": "old"})
    public = jwk.JWK(**old.export_public(as_dict=True))
    with pytest.raises(AnswerVerificationError, match="ES256"):
        verify_answer(
            token.serialize(compact=True), public, req_id="r", nonce=b"n" * 16, op="health"
        )
    with pytest.raises(ValueError, match="P-256"):
        AnswerVerifier(public)


def test_signed_answer_binding(signer):
    key, public = signer
    nonce = os.urandom(32)
    digest = args_sha256({"envelope": "a.b.c.d.e", "kind": "portfolio"})
    token = sign_answer(
        answer_body(req_id="r1", nonce=nonce, op="health", result={"a": 1}, args_digest=digest),
        key,
        "k",
    )
    assert verify_answer(token, public, req_id="r1", nonce=nonce, op="health", args_digest=digest)[
        "result"
    ] == {"a": 1}
    other_args = args_sha256({"envelope": "f.g.h.i.j", "kind": "portfolio"})
    for kwargs in (
        {"req_id": "r2"},
        {"nonce": os.urandom(32)},
        {"op": "describe"},
        {"args_digest": other_args},  # a verdict cannot be passed off as another envelope's
    ):
        args = {"req_id": "r1", "nonce": nonce, "op": "health", "args_digest": digest, **kwargs}
        with pytest.raises(AnswerVerificationError):
            verify_answer(token, public, **args)
    head, body, sig = token.split(".")
    forged = ".".join([head, body, sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")])
    with pytest.raises(AnswerVerificationError):
        verify_answer(forged, public, req_id="r1", nonce=nonce, op="health")


def test_request_shape_checks():
    good = decode_message(encode_frame({"id": 1, "op": "health", "nonce": os.urandom(16)})[4:])
    assert parse_request(good).op == "health"
    with pytest.raises(ProtocolError):
        parse_request({"id": True, "op": "health", "nonce": os.urandom(16)})
    with pytest.raises(ProtocolError):
        parse_request({"id": 1, "op": "health", "nonce": os.urandom(16), "extra": 1})


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("12345678000195", True),
        ("12ABC34501DE35", True),
        ("12345678000196", False),
        ("00000000000000", False),
        ("12abc34501DE35", False),
        ("1234567800019", False),
    ],
)
def test_cnpj_check_digits(value, valid):
    assert cnpj_is_valid(value) is valid


def test_xlsx_parser_maps_pt_br_cells_and_rows():
    who = agent(70)
    doc = portfolio(who)
    book = build_template([doc], week=WEEK)
    sheet = parse_workbook(book, "portfolio", agent=who, week=WEEK)
    assert sheet.errors == []
    assert sheet.rows["contracts"] == {i: i + 2 for i in range(6)}
    assert sheet.payload == formats.normalize("portfolio", doc)
    assert sheet.payload["agent"] == who and sheet.payload["week"] == WEEK


def test_keyring_serialises_and_checks_kids():
    ring = KeyRing.generate().rotated(rotate_signing=True)
    again = KeyRing.from_cbor(ring.to_cbor())
    assert [e.kid for e in again.envelope] == [e.kid for e in ring.envelope]
    assert again.public_jwks() == ring.public_jwks()
    assert {k["use"] for k in ring.public_jwks()["keys"]} == {"enc", "sig"}

    signing = next(k for k in ring.public_jwks()["keys"] if k["use"] == "sig")
    assert (signing["crv"], signing["alg"]) == ("P-256", "ES256")
    assert not again.signing.replaced_legacy


def test_keyring_sealed_before_es256_gets_a_p256_signing_key():
    """A key set sealed with a P-384 signing key (before ES256) keeps its envelope keys and
    digest key; its signing key is replaced, and the ring says it must be resealed."""
    import cbor2
    from cryptography.hazmat.primitives.asymmetric import ec

    from enclave_bridge.enclave.keys import _pkcs8

    ring = KeyRing.generate()
    legacy = jwk.JWK.from_pyca(ec.generate_private_key(ec.SECP384R1()))
    doc = cbor2.loads(ring.to_cbor())
    doc["signing"] = {
        "kid": legacy.thumbprint(),
        "created": "2026-01-01T00:00:00Z",
        "pkcs8": _pkcs8(legacy.get_op_key("sign")),
    }
    again = KeyRing.from_cbor(cbor2.dumps(doc))
    assert again.signing.replaced_legacy
    assert again.signing.private_key.curve.name == "secp256r1"
    assert again.signing.kid != legacy.thumbprint()
    assert [e.kid for e in again.envelope] == [e.kid for e in ring.envelope]
    assert again.digest_key == ring.digest_key
    assert not KeyRing.from_cbor(again.to_cbor()).signing.replaced_legacy


def _mutations(doc):
    """Every leaf replaced by odd values, every key dropped, an extra key in every object."""
    odd = [
        None,
        True,
        -1,
        0,
        1.5,
        7,
        7.0,
        "x",
        "SE",
        "",
        "a" * 600,
        [],
        {},
        "12345678000195",
        "202313001",
        "202303001",
        [1.0, 2.0],
        [1.0, 2.0, 3.0],
    ]

    def walk(node, path):
        if isinstance(node, dict):
            yield path, None
            for key, value in node.items():
                yield from walk(value, (*path, key))
        elif isinstance(node, list):
            yield path, None
            for i, value in enumerate(node):
                yield from walk(value, (*path, i))
        else:
            yield path, node

    def edit(path, fn):
        copy = json.loads(json.dumps(doc))
        target = copy
        for part in path[:-1]:
            target = target[part]
        fn(target, path[-1])
        return copy

    for path, _ in walk(doc, ()):
        if not path:
            continue
        for value in odd:
            yield edit(path, lambda t, k, v=value: t.__setitem__(k, v))
        if isinstance(path[-1], str):
            yield edit(path, lambda t, k: t.pop(k))
            yield edit(
                path, lambda t, k: t.__setitem__("unexpected", 1) if isinstance(t, dict) else None
            )


@pytest.mark.parametrize("kind", ["portfolio", "counterparties"])
def test_fast_schema_check_agrees_with_jsonschema(kind):
    who = agent(80)
    base = (
        portfolio(who)
        if kind == "portfolio"
        else counterparties(who, [agent(81), agent(82)], volumes=[[1.0, 2.0, 3.0], [0, 0, 0]])
    )
    fast, reference = fast_validator(kind), validator(kind)
    count = 0
    for doc in _mutations(base):
        assert fast(doc) == reference.is_valid(doc), doc
        count += 1
    assert count > 300


def test_the_verdict_summary_says_the_kind_only():
    """No value of a rejected payload (here a bucket) and no count or month of an accepted one
    leaves the enclave in the summary: an agent's row counts and the months it holds positions
    in describe its business."""
    from enclave_bridge.enclave.validation import validate_payload

    who = agent(70)
    bad = portfolio(who)
    bad["contracts"][0]["bucket"] = 123456789
    expected = {"agent": who, "week": WEEK}
    outcome = validate_payload("portfolio", bad, expected, digest="d")
    assert outcome.status == "rejected"
    assert "123456789" not in json.dumps(outcome.summary)
    assert outcome.summary == {"kind": "portfolio"}
    good = validate_payload("portfolio", portfolio(who), expected, digest="d")
    assert good.status == "accepted"
    assert good.summary == {"kind": "portfolio"}
    cps = validate_payload("counterparties", counterparties(who, [agent(71)]), expected, digest="d")
    assert cps.status == "accepted" and cps.summary == {"kind": "counterparties"}
    many = portfolio(who)
    many["contracts"] = [
        dict(many["contracts"][0], volume_mwm=-1.0, bucket=n % 7)  # schema errors, one a row
        for n in range(formats.MAX_ERRORS + 5)
    ]
    truncated = validate_payload("portfolio", many, expected, digest="d")
    assert truncated.summary == {"kind": "portfolio", "errors_truncated": True}


def test_replay_cache_refuses_when_full_instead_of_forgetting_live_nonces():
    from enclave_bridge.enclave.replay import NonceCache
    from enclave_bridge.wire.protocol import Request

    cache = NonceCache(window=900, max_entries=2)
    first = Request(id="a", op="health", nonce=os.urandom(16), args={})
    assert cache.begin(first, b"d") is None
    assert cache.begin(Request(id="b", op="health", nonce=os.urandom(16), args={}), b"d") is None
    with pytest.raises(ProtocolError) as info:
        cache.begin(Request(id="c", op="health", nonce=os.urandom(16), args={}), b"d")
    assert info.value.code == "busy"
    # The first nonce is still remembered: replaying it under another id is refused.
    with pytest.raises(ProtocolError) as replay:
        cache.begin(Request(id="z", op="health", nonce=first.nonce, args={}), b"d")
    assert replay.value.code == "replayed_nonce"


def test_a_trickled_frame_is_cut_at_the_read_deadline():
    """One byte at a time keeps each recv short; the deadline bounds the whole frame."""
    import socket
    import threading
    import time

    from enclave_bridge.wire.protocol import HEADER, read_frame_bytes

    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:
        theirs.sendall(HEADER.pack(1000))
        while not stop.is_set():
            try:
                theirs.send(b"x")
            except OSError:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        read_frame_bytes(ours, max_frame=1 << 20, body_timeout=0.5)
    assert time.monotonic() - started < 2.0
    stop.set()
    ours.close()
    theirs.close()


@pytest.mark.parametrize(
    ("op", "code", "refused"),
    [
        ("validate", "decryption_failed", True),
        ("validate", "replayed_nonce", True),
        ("rotate", "sealing_failed", True),  # only an unlocked enclave rotates: it signs
        ("validate", "locked", False),
        ("unseal", "sealing_failed", False),  # a locked enclave's boot op has no key to sign
        ("init", "sealing_failed", False),
    ],
)
def test_client_refuses_an_unsigned_error_once_it_trusts_a_key(tmp_path, signer, op, code, refused):
    """Something between host and enclave inventing an error is caught; only a locked enclave
    (which holds no key yet) may answer unsigned: "locked", or the failure of a boot op."""
    import socket
    import threading

    from enclave_bridge.client import EnclaveClient, EnclaveError
    from enclave_bridge.wire.protocol import read_frame_bytes

    path = str(tmp_path / "fake.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def fake_enclave() -> None:
        conn, _ = server.accept()
        with conn:
            request = decode_message(read_frame_bytes(conn, max_frame=1 << 20))
            error = {"code": code, "message": "invented"}
            conn.sendall(
                encode_frame(
                    {
                        "id": request["id"],
                        "nonce": request["nonce"],
                        "op": request["op"],
                        "error": error,
                    }
                )
            )

    threading.Thread(target=fake_enclave, daemon=True).start()
    _, public = signer
    client = EnclaveClient(
        f"unix:{path}", retries=0, signing_jwk=public.export_public(as_dict=True)
    )
    expected = AnswerVerificationError if refused else EnclaveError
    with pytest.raises(expected) as info:
        client.call(op, {"sealed_keys": b"x"} if op == "unseal" else {})
    if not refused:
        assert info.value.code == code and not info.value.signed
    client.close()
    server.close()


def test_server_idle_timeout_connection_limit_and_shedding(tmp_path):
    """An idle connection is closed after the idle timeout; when every slot is taken, the
    connection waiting longest for a frame is shed for the newcomer; a connection running a
    request is never shed, so a newcomer then gets a ``busy`` error frame instead of a thread."""
    import socket
    import threading
    import time

    from enclave_bridge.client import EnclaveClient, EnclaveConnectionError, EnclaveError
    from enclave_bridge.enclave.server import EnclaveServer
    from enclave_bridge.enclave.service import Service
    from enclave_bridge.wire.protocol import read_frame_bytes
    from enclave_bridge.wire.transport import parse_address

    service = Service(nsm=None, sealer_factory=lambda credentials: None, workers=1)
    release = threading.Event()
    service._ops["describe"] = lambda req: release.wait(10) and {"slow": True}  # a long request
    address = parse_address(f"unix:{tmp_path / 'enclave.sock'}")
    server = EnclaveServer(service, address, idle_timeout=0.5, read_timeout=0.5, max_connections=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(address.path)
        return sock

    def health(sock: socket.socket) -> dict:
        sock.sendall(encode_frame({"id": 1, "op": "health", "nonce": os.urandom(16)}))
        return decode_message(read_frame_bytes(sock, max_frame=1 << 20))

    try:
        first = connect()
        assert health(first)["result"]["state"] == "locked"
        started = time.monotonic()
        assert first.recv(1) == b""  # closed by the enclave once idle
        assert time.monotonic() - started < 3
        first.close()
        # Shedding: an idle holder of the only slot gives way to a newcomer.
        holder = connect()
        assert health(holder)["result"]["status"] == "ok"
        time.sleep(0.05)
        with connect() as newcomer:
            assert health(newcomer)["result"]["status"] == "ok"
            assert holder.recv(1) == b""  # shed between frames: nothing it asked is lost
        holder.close()
        assert server.shed_count >= 1
        # A connection running a request is never shed: the newcomer is refused as busy.
        time.sleep(0.1)
        worker = connect()
        worker.sendall(encode_frame({"id": 2, "op": "describe", "nonce": os.urandom(16)}))
        time.sleep(0.2)
        with connect() as refused:
            assert decode_message(read_frame_bytes(refused, max_frame=1 << 20))["error"] == {
                "code": "busy",
                "message": "too many connections",
            }
        impatient = EnclaveClient(str(address), retries=0)
        with pytest.raises((EnclaveError, EnclaveConnectionError)):
            impatient.health()
        assert (
            not impatient.pool.idle
        )  # the refused connection, closed by the enclave, is not pooled
        impatient.close()
        # The client retries a busy refusal with backoff until the slot frees.
        with EnclaveClient(str(address), retries=6, backoff=0.2) as patient:
            threading.Timer(0.3, release.set).start()
            assert patient.health()["status"] == "ok"
        assert decode_message(read_frame_bytes(worker, max_frame=1 << 20))["result"] == {
            "slow": True
        }
        worker.close()
    finally:
        release.set()
        server.stop()


def test_client_drops_pooled_connections_idle_past_max_idle(tmp_path):
    """A pooled connection is reused while fresh, and closed (freeing the enclave's slot) once it
    has sat idle longer than max_idle, even if the client makes no further call."""
    import threading
    import time

    from enclave_bridge.client import EnclaveClient
    from enclave_bridge.enclave.server import EnclaveServer
    from enclave_bridge.enclave.service import Service
    from enclave_bridge.wire.transport import parse_address

    service = Service(nsm=None, sealer_factory=lambda credentials: None, workers=1)
    address = parse_address(f"unix:{tmp_path / 'enclave.sock'}")
    server = EnclaveServer(service, address, idle_timeout=30, max_connections=4)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with EnclaveClient(str(address), max_idle=0.3) as client:
            client.health()
            ((first, _),) = client.pool.idle
            client.health()
            assert client.pool.idle[0][0] is first  # fresh: reused
            # The sweep (every max_idle / 2) closes it while the client is quiet; a loaded
            # machine may run the sweeper late, so wait for it (bounded) instead of a fixed 0.6 s.
            deadline = time.monotonic() + 10
            while first.fileno() != -1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert first.fileno() == -1 and not client.pool.idle
            client.health()
            ((second, _),) = client.pool.idle
            assert second is not first
    finally:
        server.stop()


def test_enclave_image_imports_only_what_it_holds(tmp_path):
    """The image's files (enclave_bridge/enclave-image.txt), staged alone as the image build
    stages them, import in a fresh interpreter: every module of the image, with no Django, no
    host-side module (client, kms_sim, the Django app, risk_tools) and no plotting library."""
    import subprocess
    import sys

    from enclave_bridge.attestation.image import stage
    from enclave_bridge.enclave import APP_DIR

    staged = tmp_path / "app"
    files = stage(APP_DIR, staged)
    assert (
        "enclave_bridge/enclave/server.py" in files and "enclave_bridge/wire/protocol.py" in files
    )
    assert not [
        f for f in files if f.startswith(("prudencial/risk_tools", "enclave_bridge/kms_sim"))
    ]
    # Host-only packages are made unimportable, as they are in the image (requirements-enclave.txt
    # has none of them): optional imports (openpyxl tries PIL) must then fall back, not fail.
    code = """
import importlib, importlib.abc, sys
from pathlib import Path
HOST_ONLY = {"django", "rest_framework", "guardian", "celery", "redis", "psycopg", "moto",
             "matplotlib", "PIL", "tqdm", "flask", "werkzeug"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HOST_ONLY:
            raise ModuleNotFoundError(f"{name} is not in the enclave image", name=name)
        return None
sys.meta_path.insert(0, Blocker())
root = Path.cwd()
for path in sorted(root.rglob("*.py")):
    rel = path.relative_to(root).with_suffix("")
    if rel.name != "__main__":
        importlib.import_module(".".join(p for p in rel.parts if p != "__init__"))
print("\\n".join(sorted(sys.modules)))
"""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(staged)
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(staged)!r}); " + code],
        cwd=staged,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    modules = done.stdout.split()
    assert "enclave_bridge.enclave.service" in modules and "prudencial.risk.leverage" in modules
    assert not [m for m in modules if m == "django" or m.startswith(("django.", "rest_framework"))]
    project = [m for m in modules if m.split(".")[0] in ("enclave_bridge", "prudencial", "config")]
    for module in project:
        if module in ("enclave_bridge", "prudencial"):
            continue
        assert (staged / module.replace(".", "/")).with_suffix(".py").exists() or (
            staged / module.replace(".", "/") / "__init__.py"
        ).exists(), f"{module} was imported from outside the staged image"


def test_no_exception_class_ends_a_request_thread_or_leaves_a_nonce_open(tmp_path):
    """A handler that raises a BaseException (as a pyo3 PanicException is) gets an
    ``internal_error`` answer; the nonce entry is finished, so the same frame retried is
    answered at once (not after a 120 s wait); the server keeps serving."""
    import socket
    import threading
    import time

    from enclave_bridge.enclave.server import EnclaveServer
    from enclave_bridge.enclave.service import Service
    from enclave_bridge.wire.protocol import read_frame_bytes
    from enclave_bridge.wire.transport import parse_address

    class Panic(BaseException):  # pyo3_runtime.PanicException derives from BaseException
        pass

    def panics(req):
        raise Panic("rust panicked")

    service = Service(nsm=None, sealer_factory=lambda credentials: None, workers=1)
    service._ops["describe"] = panics
    address = parse_address(f"unix:{tmp_path / 'enclave.sock'}")
    server = EnclaveServer(service, address)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    frame = encode_frame({"id": "p-1", "op": "describe", "nonce": os.urandom(16)})
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(address.path)
            for _attempt in range(2):
                started = time.monotonic()
                sock.sendall(frame)
                answer = decode_message(read_frame_bytes(sock, max_frame=1 << 20))
                assert answer["error"]["code"] == "internal_error"
                assert time.monotonic() - started < 1.0
            sock.sendall(encode_frame({"id": "p-2", "op": "health", "nonce": os.urandom(16)}))
            assert decode_message(read_frame_bytes(sock, max_frame=1 << 20))["result"]["status"]
    finally:
        server.stop()


def test_one_check_for_energy_types_bucket_labels_and_the_registry():
    """validate's binding and split's args go through the same checks: energy types by the
    domain's rule (formats.check_energy_types), the same bucket-label rule, and an inline
    registry by the staged registry's parser (registry.parse_entries, CNPJ_PATTERN of
    prudencial.domain.identifiers)."""
    from enclave_bridge.enclave import registry, service, split, validation
    from enclave_bridge.wire.protocol import ProtocolError
    from prudencial.domain.identifiers import CNPJ_PATTERN

    assert service.check_energy_types is validation.check_energy_types
    assert service.check_bucket_labels is validation.check_bucket_labels
    assert split.parse_json is validation.parse_json
    for name in ("_finite_float", "_bounded_int", "_reject_constant", "check_energy_types"):
        assert not hasattr(split, name), name
    assert registry._CNPJ.pattern == CNPJ_PATTERN
    assert validation.check_energy_types(None) == formats.DEFAULT_ENERGY_TYPES
    assert validation.check_energy_types(["a_1", "b"]) == ("a_1", "b")
    for bad in ([], ["A"], ["a", "a"], [{"x": 1}], "abc", ["a"] * 65, [f"t{n}" for n in range(65)]):
        with pytest.raises(ProtocolError, match="energy_types must list 1 to 64"):
            validation.check_energy_types(bad)
        with pytest.raises(ProtocolError, match="expected.energy_types"):
            validation.check_expected({"agent": agent(1), "week": WEEK, "energy_types": bad})
    with pytest.raises(ProtocolError, match="expected.bucket_labels must list 7"):
        validation.check_expected({"agent": agent(1), "week": WEEK, "bucket_labels": ["M"] * 3})
    who = agent(2)
    assert validation.check_expected(
        {"agent": who, "week": WEEK, "registry": {who["cnpj"]: who["acronym"]}}
    )["registry"] == {who["cnpj"]: who["acronym"]}
    for bad, rule in (
        ({"1122233300018": "CM1"}, r"expected.registry\[0\].cnpj"),
        ({"11222333000181\n": "CM1"}, r"expected.registry\[0\].cnpj"),
        ({"11222333000181": "CM\n1"}, r"expected.registry\[0\].acronym"),
        ({"11222333000181": None}, r"expected.registry\[0\].acronym"),
        (["11222333000181"], "expected.registry must map"),
    ):
        with pytest.raises(ProtocolError, match=rule):
            validation.check_expected({"agent": who, "week": WEEK, "registry": bad})
