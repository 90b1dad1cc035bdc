"""Hostile input against a real enclave process of this module's own (issue 7).

One test per class of attack a process on the parent instance can send: CBOR tags that amplify
memory or CPU, integers out of range, malformed structure, idle and trickling connections that
would take every slot, oversize frames, and deep or duplicate-keyed JSON inside envelopes. After
every case the enclave must answer a legitimate ``validate`` within 1 s, and its server process's
peak RSS stays under 1 GiB for the whole module.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time

import cbor2
import pytest

from enclave_bridge.client import EnclaveClient, EnclaveError
from enclave_bridge.wire.protocol import (
    DEFAULT_MAX_FRAME,
    b64url,
    decode_message,
    read_frame_bytes,
)

from .conftest import RunningEnclave, running_enclave
from .payloads import WEEK, agent, encrypt, parameters, portfolio

pytestmark = pytest.mark.enclave

MAX_RSS = 1 << 30
LEGIT_WITHIN_S = 1.0


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    """An enclave of this module only, with a short first-frame deadline."""
    with running_enclave(
        tmp_path_factory.mktemp("hostile"), "--first-frame-timeout", "1"
    ) as running:
        yield running
        peak = running.peak_rss_bytes()
        print(f"\nhostile-input module: enclave server peak RSS {peak / 2**20:.0f} MiB")
        assert peak < MAX_RSS, f"enclave peak RSS {peak} bytes is over 1 GiB"


@pytest.fixture(scope="module")
def legit(hostile: RunningEnclave):
    with EnclaveClient(
        hostile.address, retries=3, backoff=0.05, signing_jwk=hostile.signing_jwk
    ) as c:
        yield c


@pytest.fixture(scope="module")
def envelope_key(legit: EnclaveClient) -> dict:
    return legit.attest().envelope_jwk()


def _legit_validate(client: EnclaveClient, key: dict, n: int = 70) -> float:
    """A genuine validate after an attack: accepted, and within LEGIT_WITHIN_S."""
    who = agent(n)
    envelope = encrypt(portfolio(who), key)
    started = time.monotonic()
    verdict = client.validate(envelope, kind="portfolio", agent=who, week=WEEK)
    elapsed = time.monotonic() - started
    assert verdict["status"] == "accepted"
    assert elapsed < LEGIT_WITHIN_S, f"legitimate validate took {elapsed:.2f} s after the attack"
    return elapsed


def _raw(enclave: RunningEnclave) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(enclave.socket_path))
    return sock


def _idle_socket(enclave: RunningEnclave) -> socket.socket:
    """An attacker's connection that sends nothing (retrying while the backlog is full)."""
    for _ in range(500):
        try:
            return _raw(enclave)
        except BlockingIOError:
            time.sleep(0.01)
    raise AssertionError("could not connect at all")


def _exchange(enclave: RunningEnclave, body: bytes) -> dict:
    with _raw(enclave) as sock:
        sock.sendall(struct.pack(">I", len(body)) + body)
        answer = read_frame_bytes(sock, max_frame=1 << 24)
        assert answer is not None, "the enclave closed without answering"
        return decode_message(answer)


# --- raw CBOR builders (cbor2 would refuse to write some of these) --------------------------------


def head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | info]) + n.to_bytes(width, "big")
    raise ValueError(n)


def tag(number: int, item: bytes) -> bytes:
    return head(6, number) + item


def request(args: bytes, *, req_id: bytes | None = None, op: str = "validate") -> bytes:
    """A request frame body whose args (or id) are raw CBOR bytes."""
    return b"".join(
        (
            b"\xa4",
            cbor2.dumps("id"),
            req_id if req_id is not None else cbor2.dumps("hostile"),
            cbor2.dumps("op"),
            cbor2.dumps(op),
            cbor2.dumps("nonce"),
            cbor2.dumps(os.urandom(16)),
            cbor2.dumps("args"),
            args,
        )
    )


def shareable_bomb(refs: int) -> bytes:
    """One 2 MiB byte string marked shareable (tag 28) and ``refs`` references to it (tag 29)."""
    items = [tag(28, head(2, 2 << 20) + b"\x00" * (2 << 20))] + [tag(29, b"\x00")] * refs
    return head(5, 1) + cbor2.dumps("v") + head(4, len(items)) + b"".join(items)


def doubling_bomb(levels: int) -> bytes:
    """Each level a shareable array of two references to the level before: 2^levels logically."""
    items = [tag(28, cbor2.dumps(b"x" * 16))]
    for level in range(levels):
        items.append(tag(28, head(4, 2) + tag(29, head(0, level)) * 2))
    return head(5, 1) + cbor2.dumps("v") + head(4, len(items)) + b"".join(items)


def stringref_bomb(refs: int) -> bytes:
    """Tag 256 (stringref namespace) over a 1 MiB string and ``refs`` tag-25 references."""
    inner = [head(3, 1 << 20) + b"a" * (1 << 20)] + [tag(25, b"\x00")] * refs
    return head(5, 1) + cbor2.dumps("v") + tag(256, head(4, len(inner)) + b"".join(inner))


TAG_CASES = {
    "shareable-1000-refs": lambda: request(shareable_bomb(1000)),
    "shareable-2M-refs": lambda: request(shareable_bomb(2_000_000)),
    "sharedref-doubling": lambda: request(doubling_bomb(40)),
    "stringref": lambda: request(stringref_bomb(1000)),
    "bignum-id": lambda: request(b"\xa0", req_id=tag(2, head(2, 2000) + b"\xff" * 2000)),
    "bignum-arg": lambda: request(
        head(5, 1) + cbor2.dumps("seq") + tag(2, head(2, 64) + b"\x01" * 64)
    ),
    "epoch-date": lambda: request(head(5, 1) + cbor2.dumps("v") + tag(1, head(0, 10**9))),
    "self-describe-root": lambda: tag(55799, request(b"\xa0")),
    "decimal-fraction": lambda: request(
        head(5, 1) + cbor2.dumps("v") + tag(4, head(4, 2) + head(1, 10**6) + head(0, 1))
    ),
}


@pytest.mark.parametrize("case", sorted(TAG_CASES))
def test_every_cbor_tag_is_refused_before_anything_is_built(hostile, legit, envelope_key, case):
    body = TAG_CASES[case]()
    started = time.monotonic()
    answer = _exchange(hostile, body)
    elapsed = time.monotonic() - started
    assert answer["error"]["code"] == "malformed_frame"
    assert "answer" in answer  # an unlocked enclave signs even frame-level refusals
    assert elapsed < 2.0, f"refusing {case} took {elapsed:.2f} s"
    _legit_validate(legit, envelope_key)


STRUCTURE_CASES = {
    "indefinite-array": request(head(5, 1) + cbor2.dumps("v") + b"\x9f\x01\x02\xff"),
    "indefinite-string": request(head(5, 1) + cbor2.dumps("v") + b"\x7f\x61a\xff"),
    "array-declares-2^32-items": request(head(5, 1) + cbor2.dumps("v") + head(4, 1 << 32)),
    "string-declares-past-frame": request(head(5, 1) + cbor2.dumps("v") + head(2, 1 << 40)),
    "nested-100k": request(head(5, 1) + cbor2.dumps("v") + b"\x81" * 100_000 + b"\x00"),
    "three-million-items": request(
        head(5, 1) + cbor2.dumps("v") + head(4, 3_000_000) + b"\x00" * 3_000_000
    ),
    "undefined": request(head(5, 1) + cbor2.dumps("v") + b"\xf7"),
    "simple-value": request(head(5, 1) + cbor2.dumps("v") + b"\xf8\xff"),
    "reserved-info": request(head(5, 1) + cbor2.dumps("v") + b"\x1c"),
    "trailing-bytes": request(b"\xa0") + b"\x00",
    "truncated": request(head(5, 1) + cbor2.dumps("v") + head(2, 10) + b"abc"),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE_CASES))
def test_malformed_structure_is_refused_cheaply(hostile, legit, envelope_key, case):
    started = time.monotonic()
    answer = _exchange(hostile, STRUCTURE_CASES[case])
    assert answer["error"]["code"] == "malformed_frame"
    assert time.monotonic() - started < 2.0
    _legit_validate(legit, envelope_key)


INTEGER_CASES = {
    "id-2^53": (cbor2.dumps(1 << 53), "bad_request"),
    "id-2^64-1": (head(0, (1 << 64) - 1), "bad_request"),
    "id-negative": (cbor2.dumps(-1), "bad_request"),
    "id-newline": (cbor2.dumps("a\nINFO forged log line"), "bad_request"),
    "id-too-long": (cbor2.dumps("a" * 129), "bad_request"),
}


@pytest.mark.parametrize("case", sorted(INTEGER_CASES))
def test_ids_out_of_range_are_refused_and_the_same_frame_retried_is_answered(
    hostile, legit, envelope_key, case
):
    raw_id, code = INTEGER_CASES[case]
    body = request(b"\xa0", req_id=raw_id, op="health")
    for _attempt in range(2):  # the retry must not wait on an unfinished nonce entry
        started = time.monotonic()
        answer = _exchange(hostile, body)
        assert answer["error"]["code"] == code
        assert "answer" in answer
        assert time.monotonic() - started < 1.0
    assert "forged log line" not in hostile.log_text()
    _legit_validate(legit, envelope_key)


def test_numbers_out_of_range_in_args_are_refused(hostile, legit, envelope_key):
    opened = legit.call("batch_open", {"parameters": parameters()})
    for seq in ((1 << 64) - 1, 1 << 40, -1):
        with pytest.raises(EnclaveError) as info:
            legit.call("batch_add", {"batch": opened["batch"], "seq": seq, "items": []})
        assert info.value.code == "bad_request" and info.value.signed
        assert "seq must be" in info.value.message
    with pytest.raises(EnclaveError) as info:
        legit.call("batch_open", {"parameters": dict(parameters(), pld_history=[1e300])})
    assert info.value.code == "bad_request" and "pld_history" in info.value.message
    for raw in (b"\xf9\x7c\x00", b"\xfa\x7f\xc0\x00\x00", b"\xfb\xff\xf0" + b"\x00" * 6):
        answer = _exchange(hostile, request(head(5, 1) + cbor2.dumps("v") + raw))
        assert answer["error"]["code"] == "malformed_frame"
        assert "finite" in answer["error"]["message"]
    _legit_validate(legit, envelope_key)


def test_idle_connections_do_not_starve_a_real_client(hostile, legit, envelope_key):
    """100 sockets that send nothing, and 5 that trickle a header byte by byte, while a real
    client validates envelopes: every validate succeeds within 1 s."""
    idle = []
    try:
        for _ in range(100):
            idle.append(_idle_socket(hostile))
        stop = threading.Event()

        def trickle() -> None:
            with _raw(hostile) as sock:
                for byte in struct.pack(">I", 100):
                    if stop.wait(0.4):
                        return
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        return

        tricklers = [threading.Thread(target=trickle, daemon=True) for _ in range(5)]
        for t in tricklers:
            t.start()
        times = [_legit_validate(legit, envelope_key, 71 + i) for i in range(10)]
        # More idle sockets arriving in the middle of the sequence.
        for _ in range(40):
            idle.append(_idle_socket(hostile))
        times += [_legit_validate(legit, envelope_key, 81 + i) for i in range(10)]
        stop.set()
        assert max(times) < LEGIT_WITHIN_S
    finally:
        for sock in idle:
            sock.close()


def test_a_silent_connection_is_closed_at_the_first_frame_deadline(hostile):
    with _raw(hostile) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 3.0  # --first-frame-timeout 1


def test_oversize_request_is_refused_by_the_client_before_sending(hostile, legit, envelope_key):
    who = agent(90)
    huge = "A" * (DEFAULT_MAX_FRAME + 1024)
    with pytest.raises(EnclaveError) as info:
        legit.validate(huge, kind="portfolio", agent=who, week=WEEK)
    assert info.value.code == "frame_too_large"
    assert str(DEFAULT_MAX_FRAME) in info.value.message
    _legit_validate(legit, envelope_key)


def test_oversize_frame_sent_anyway_gets_frame_too_large_not_a_reset(hostile, legit, envelope_key):
    body = b"\x00" * (DEFAULT_MAX_FRAME + 1)
    with _raw(hostile) as sock:
        sock.sendall(struct.pack(">I", len(body)) + body)  # no BrokenPipeError: the enclave drains
        answer = decode_message(read_frame_bytes(sock, max_frame=1 << 20))
    assert answer["error"]["code"] == "frame_too_large"
    assert str(DEFAULT_MAX_FRAME) in answer["error"]["message"]
    _legit_validate(legit, envelope_key)


def _with_header(key: dict, header_json: str) -> str:
    """A real envelope whose protected header is replaced (the tag no longer matches)."""
    parts = encrypt(portfolio(agent(91)), key).split(".")
    parts[0] = b64url(header_json.encode())
    return ".".join(parts)


def test_deep_or_duplicate_jwe_headers_are_envelope_invalid(hostile, legit, envelope_key):
    kid = envelope_key["kid"]
    cases = {
        "deep": f'{{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"{kid}","x":'
        + "[" * 50_000
        + "1"
        + "]" * 50_000
        + "}",
        "duplicate": f'{{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"{kid}","alg":"RSA-OAEP-256"}}',
        "nested-small": f'{{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"{kid}","typ":'
        + "[" * 500
        + "1"
        + "]" * 500
        + "}",
    }
    for name, header in cases.items():
        with pytest.raises(EnclaveError) as info:
            legit.validate(
                _with_header(envelope_key, header), kind="portfolio", agent=agent(91), week=WEEK
            )
        assert info.value.code == "envelope_invalid", name
    _legit_validate(legit, envelope_key)


def test_deep_or_duplicate_json_payloads_are_rejected_naming_the_rule(hostile, legit, envelope_key):
    who = agent(92)
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    verdict = legit.validate(encrypt(deep, envelope_key), kind="portfolio", agent=who, week=WEEK)
    assert verdict["status"] == "rejected"
    assert "nests deeper than" in verdict["errors"][0]["rule"]
    doc = json.dumps(portfolio(who))
    duplicated = doc[:-1] + ', "regulated_market_revenue_brl": 1}'
    verdict = legit.validate(
        encrypt(duplicated.encode(), envelope_key), kind="portfolio", agent=who, week=WEEK
    )
    assert verdict["status"] == "rejected"
    assert "'regulated_market_revenue_brl' appears twice" in verdict["errors"][0]["rule"]
    _legit_validate(legit, envelope_key)


def test_a_huge_but_small_plaintext_is_refused_before_the_schema_walks_it(
    hostile, legit, envelope_key
):
    """150,000 empty contract rows are 450 KB of plaintext (under every size limit) but used to make
    the schema build an error per value: 29 s and 3.8 GiB. The value budget refuses them first."""
    who = agent(93)
    doc = portfolio(who)
    doc["contracts"] = [{}] * 150_000
    started = time.monotonic()
    verdict = legit.validate(encrypt(doc, envelope_key), kind="portfolio", agent=who, week=WEEK)
    assert time.monotonic() - started < 3.0
    assert verdict["status"] == "rejected"
    assert verdict["errors"][0]["rule"] == "holds more than 20000 values"
    many_errors = portfolio(who)
    many_errors["contracts"] = [{"bucket": "x"}] * 3_000  # 6,000 values, each one wrong
    verdict = legit.validate(
        encrypt(many_errors, envelope_key), kind="portfolio", agent=who, week=WEEK
    )
    assert verdict["status"] == "rejected" and len(verdict["errors"]) <= 200
    _legit_validate(legit, envelope_key)


def test_peers_that_never_read_their_answers_do_not_starve_a_real_client(
    hostile, legit, envelope_key
):
    """40 connections pipeline 2,000 health frames each and never read: their answers fill the
    socket buffers and the enclave's sends stall. Stalled senders are shed like idle ones and
    closed after the send-stall timeout, so a real client's validates still answer in time."""
    frame = b"".join(
        struct.pack(">I", len(body)) + body
        for body in (
            cbor2.dumps({"id": i, "op": "health", "nonce": os.urandom(16)}) for i in range(2_000)
        )
    )
    attackers = []
    try:
        for _ in range(40):
            sock = _idle_socket(hostile)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(frame)
            attackers.append(sock)
        time.sleep(1.0)  # let their answers pile up
        times = [_legit_validate(legit, envelope_key, 94 + i) for i in range(5)]
        assert max(times) < LEGIT_WITHIN_S
    finally:
        for sock in attackers:
            sock.close()


def test_unexpected_field_names_are_not_echoed_when_they_are_not_names(hostile):
    body = cbor2.dumps(
        {"id": 1, "op": "health", "nonce": os.urandom(16), "x\nINJECTED": 1, "extra_ok": 2}
    )
    answer = _exchange(hostile, body)
    assert answer["error"]["code"] == "bad_request"
    assert "INJECTED" not in answer["error"]["message"] and "\n" not in answer["error"]["message"]
    assert "extra_ok" in answer["error"]["message"] and "1 other(s)" in answer["error"]["message"]
