"""Regression tests for what the atheris fuzzer found (tests/fuzz/crashes/repro-*): each input
used to end in ``internal_error`` (or echo a malformed op) and must now get a refusal that names
the rule, or be accepted."""

from __future__ import annotations

import os
import socket
import threading
import time

import cbor2
import pytest

from enclave_bridge.enclave.server import EnclaveServer
from enclave_bridge.enclave.service import Service
from enclave_bridge.enclave.xlsx import check_archive
from enclave_bridge.wire.protocol import (
    E_XLSX,
    ProtocolError,
    decode_message,
    encode_frame,
    read_frame_bytes,
)
from enclave_bridge.wire.transport import parse_address

from .payloads import parameters

# repro-zip-version: a zip whose "version needed to extract" is above 6.3 (zipfile raises
# NotImplementedError, which check_archive let through).
ZIP_VERSION = bytes.fromhex(
    "504b0304140000000000430a825d0000000000000000000000000100000061504b010214034000000000"
    "00430a825d00000000000000000000000001000000000000000000000080010000000061504b050600000000"
    "010001002f0000001f0000000000"
)


def test_a_zip_of_an_unknown_version_is_xlsx_invalid():
    with pytest.raises(ProtocolError) as info:
        check_archive(ZIP_VERSION)
    assert info.value.code == E_XLSX


def test_byte_strings_inside_week_parameters_do_not_break_the_pinning_digest():
    service = Service(nsm=None, sealer_factory=lambda credentials: None, workers=1)
    raw = parameters()
    raw["buckets"][0]["label"] = b"\x00\x01"
    raw["unknown"] = b"ignored by the parser"
    try:
        pinned = service._pinned_parameters(raw)
    except ProtocolError as exc:  # refused is fine too, as long as it says why
        assert exc.code == "bad_request"
    else:
        assert pinned.week == raw["week"]
        again = service._pinned_parameters(raw)  # the same raw pins the same digest
        assert again.week == raw["week"]


def test_a_refusal_never_echoes_a_malformed_op(tmp_path):
    service = Service(nsm=None, sealer_factory=lambda credentials: None, workers=1)
    address = parse_address(f"unix:{tmp_path / 'enclave.sock'}")
    server = EnclaveServer(service, address)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(address.path)
            for op in (5, "Health\n", "x" * 40):
                body = cbor2.dumps({"id": 1, "op": op, "nonce": os.urandom(16)})
                sock.sendall(len(body).to_bytes(4, "big") + body)
                answer = decode_message(read_frame_bytes(sock, max_frame=1 << 20))
                assert answer["error"]["code"] == "bad_request" and answer["op"] is None
            sock.sendall(encode_frame({"id": 2, "op": "health", "nonce": os.urandom(16)}))
            assert decode_message(read_frame_bytes(sock, max_frame=1 << 20))["op"] == "health"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("pld_floor"), "pld_floor"),
        (lambda p: p.pop("pld_cap"), "pld_cap"),
        (lambda p: p.update(forward_prices={}), "forward_prices.SE"),
        (lambda p: p["forward_prices"].pop("NE"), "forward_prices.NE"),
    ],
    ids=["no-floor", "no-cap", "no-curves", "no-NE-curve"],
)
def test_week_parameters_missing_an_input_are_refused_naming_it(mutate, field):
    """repro-pld-floor-missing and repro-empty-forward-prices: a TypeError and a StopIteration
    inside the enclave (internal_error); now a refusal that names the missing input."""
    from enclave_bridge.enclave.compute import parse_parameters

    raw = parameters()
    mutate(raw)
    with pytest.raises(ProtocolError) as info:
        parse_parameters(raw)
    assert info.value.code == "bad_request" and field in info.value.message


def test_a_locked_refusal_does_not_use_up_the_nonce():
    """The host resends a request refused as ``locked`` with the same nonce once it has unlocked
    the enclave: that must not be taken for a replay."""
    from enclave_bridge.wire.protocol import Request

    service = Service(nsm=None, sealer_factory=lambda credentials: None, workers=1)
    req = Request(id="a-1", op="attest", nonce=os.urandom(16), args={})
    assert service.handle(req)["error"]["code"] == "locked"
    assert len(service.nonces) == 0
    assert service.handle(req)["error"]["code"] == "locked"  # not replayed_nonce


def test_the_replay_cache_cannot_be_filled_by_pure_or_refused_requests():
    """Only stateful ops that succeed keep a nonce for the window: a flood of health, describe
    (pure) or failing init requests (refused: nothing changed) leaves the cache empty, so the
    host's own requests are never told ``busy`` because of it."""
    from enclave_bridge.enclave.replay import NonceCache
    from enclave_bridge.wire.protocol import Request

    def no_kms(credentials):
        raise OSError("KMS unreachable")

    service = Service(nsm=None, sealer_factory=no_kms, workers=1)
    service.nonces = NonceCache(900.0, max_entries=10)
    for i in range(100):
        for op in ("health", "describe", "init"):
            answer = service.handle(Request(id=i, op=op, nonce=os.urandom(16), args={}))
            assert answer.get("error", {}).get("code") != "busy"
    assert len(service.nonces) == 0


def test_only_one_retry_waits_for_a_running_first_attempt():
    """Copies of one slow request must not each hold a connection slot for 120 s."""
    import threading as _threading

    from enclave_bridge.enclave.replay import NonceCache
    from enclave_bridge.wire.protocol import Request

    cache = NonceCache(900.0)
    req = Request(id="slow", op="compute", nonce=os.urandom(16), args={})
    assert cache.begin(req, b"d") is None  # the first attempt is running
    waiter = _threading.Thread(target=lambda: cache.begin(req, b"d"), daemon=True)
    waiter.start()
    time.sleep(0.2)
    with pytest.raises(ProtocolError) as info:
        cache.begin(req, b"d")
    assert info.value.code == "in_progress"
    cache.finish(req.nonce, {"id": "slow", "answer": "x"}, 10)
    waiter.join(5)
    assert not waiter.is_alive()
