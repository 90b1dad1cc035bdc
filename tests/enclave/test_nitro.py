"""The production pieces that this machine cannot run for real, driven as far as it allows:
NitroNsm over a fake /dev/nsm ioctl that behaves as the Linux driver, the in-enclave KMS shim over
unix/loopback sockets (standing in for vsock), boto3 through the shim with TLS verified, and the
`serve` command line. Pure: no database, no Redis, loopback only, every wait bounded."""

from __future__ import annotations

import binascii
import ctypes
import datetime as dt
import errno
import fcntl
import os
import socket
import ssl
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import cbor2
import pytest

from enclave_bridge.attestation import (
    AWS_NITRO_ROOT_SHA256,
    aws_nitro_root,
    verify_attestation,
)
from enclave_bridge.attestation.nitro_nsm import (
    NSM_IOCTL_RAW,
    NSM_RESPONSE_MAX_SIZE,
    NitroNsm,
    NsmIoctlError,
    NsmProtocolError,
    NsmRaw,
    NsmResponseError,
    NsmUnavailable,
)
from enclave_bridge.attestation.nsm import Nsm
from enclave_bridge.enclave import APP_DIR
from enclave_bridge.enclave import __main__ as cli
from enclave_bridge.enclave.kms_proxy import (
    IFF_UP,
    SIOCGIFFLAGS,
    SIOCSIFFLAGS,
    KmsProxy,
    ensure_loopback_up,
    parse_upstream,
)
from enclave_bridge.wire.transport import Address

AWS_DOC_HEX = Path("/work/shared/testdata/nitro/aws-attestation-debug-2024-11-14.hex")
TIMEOUT = 10.0

# --- a fake /dev/nsm that behaves as drivers/misc/nsm.c ------------------------------------------


def _pcr(index: int) -> bytes:
    return bytes([index + 1]) * 48


DESCRIBE_NSM = {
    "DescribeNSM": {
        "version_major": 1,
        "version_minor": 0,
        "version_patch": 0,
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "max_pcrs": 32,
        "locked_pcrs": [0, 1, 2, 3, 4, 8],
        "digest": "SHA384",
    }
}


class FakeNsmDevice:
    """An `ioctl` stand-in: checks what the driver would check, answers real CBOR, writes the
    answer length back into the caller's nsm_raw and truncates as `parse_resp_raw` does."""

    def __init__(self, handler=None) -> None:
        self.requests: list[bytes] = []
        self.handler = handler or self.default
        self.document = b"\x84" + b"document-bytes"

    def default(self, request):
        if request == "DescribeNSM":
            return DESCRIBE_NSM
        if isinstance(request, dict) and "DescribePCR" in request:
            index = request["DescribePCR"]["index"]
            return {"DescribePCR": {"lock": index != 4, "data": _pcr(index)}}
        if isinstance(request, dict) and "Attestation" in request:
            return {"Attestation": {"document": self.document}}
        return {"Error": "InvalidOperation"}

    def __call__(self, fd: int, code: int, raw) -> int:
        assert isinstance(fd, int) and fd >= 0
        assert code == 0xC0200A00
        assert isinstance(raw, NsmRaw)
        assert raw.response.len == NSM_RESPONSE_MAX_SIZE
        if raw.request.len > 0x1000:
            raise OSError(errno.EMSGSIZE, "Message too long")
        request = ctypes.string_at(raw.request.addr, raw.request.len)
        self.requests.append(request)
        answer = self.handler(cbor2.loads(request))
        if isinstance(answer, OSError):
            raise answer
        data = answer if isinstance(answer, bytes) else cbor2.dumps(answer)
        written = min(raw.response.len, len(data))
        ctypes.memmove(raw.response.addr, data, written)
        raw.response.len = written
        return 0


@pytest.fixture
def device_path(tmp_path: Path) -> str:
    path = tmp_path / "nsm"
    path.write_bytes(b"")
    return str(path)


def _nsm(device_path: str, device: FakeNsmDevice | None = None) -> tuple[NitroNsm, FakeNsmDevice]:
    device = device or FakeNsmDevice()
    return NitroNsm(device_path, ioctl=device), device


def test_ioctl_number_and_struct_layout_match_the_kernel_uapi():
    assert NSM_IOCTL_RAW == 0xC0200A00
    assert ctypes.sizeof(NsmRaw) == 32
    assert NsmRaw.request.offset == 0 and NsmRaw.response.offset == 16
    raw = NsmRaw()
    assert type(raw.request).len.offset == 8


def test_describe_nsm_at_construction_sends_the_bare_variant_name(device_path):
    nsm, device = _nsm(device_path)
    # CBOR text(11) "DescribeNSM": serde's encoding of a unit variant.
    assert device.requests == [b"\x6bDescribeNSM"]
    assert nsm.module_id == "i-0123456789abcdef0-enc0123456789abcdef"
    assert nsm.description["locked_pcrs"] == [0, 1, 2, 3, 4, 8]
    assert isinstance(nsm, Nsm)


def test_pcrs_reads_0_1_2_3_4_8_with_describe_pcr_and_caches_locked_ones(device_path):
    nsm, device = _nsm(device_path)
    assert nsm.pcrs() == {i: _pcr(i) for i in (0, 1, 2, 3, 4, 8)}
    # {"DescribePCR": {"index": n}}: map(1) text(11) map(1) text(5) "index" uint(n)
    expected = [b"\xa1\x6bDescribePCR\xa1\x65index" + bytes([i]) for i in (0, 1, 2, 3, 4, 8)]
    assert device.requests[1:] == expected
    device.requests.clear()
    assert nsm.pcrs()[4] == _pcr(4)
    assert device.requests == [expected[4]]  # only the unlocked PCR4 is read again


def test_attest_request_encoding_and_document_passthrough(device_path):
    nsm, device = _nsm(device_path)
    doc = nsm.attest(public_key=b"K" * 300, user_data=b"U" * 40, nonce=None)
    assert doc == device.document
    request = cbor2.loads(device.requests[-1])
    assert request == {
        "Attestation": {"user_data": b"U" * 40, "nonce": None, "public_key": b"K" * 300}
    }
    assert list(request["Attestation"]) == ["user_data", "nonce", "public_key"]
    assert b"\x65nonce\xf6" in device.requests[-1]  # absent field: CBOR null, as Option::None


@pytest.mark.skipif(not AWS_DOC_HEX.exists(), reason="real AWS document not available")
def test_real_aws_document_through_the_ioctl_path_still_verifies(device_path):
    real = binascii.unhexlify(AWS_DOC_HEX.read_text().strip())
    device = FakeNsmDevice()
    device.document = real
    nsm, _ = _nsm(device_path, device)
    doc = nsm.attest(public_key=None, user_data=None, nonce=None)
    assert doc == real
    payload = cbor2.loads(cbor2.loads(doc)[2])
    at = dt.datetime.fromtimestamp(payload["timestamp"] / 1000, dt.UTC) + dt.timedelta(seconds=1)
    checked = verify_attestation(
        doc,
        trusted_root=aws_nitro_root(),
        root_sha256=AWS_NITRO_ROOT_SHA256,
        now=at,
        max_age=dt.timedelta(minutes=5),
        expected_nonce=None,
        expected_pcrs=None,
        allow_debug=True,
    )
    assert checked.module_id.startswith("i-")


def test_error_answer_becomes_nsm_response_error(device_path):
    def handler(request):
        if request == "DescribeNSM":
            return DESCRIBE_NSM
        return {"Error": "InvalidArgument"}

    nsm, _ = _nsm(device_path, FakeNsmDevice(handler))
    with pytest.raises(NsmResponseError, match="InvalidArgument") as caught:
        nsm.attest(public_key=None, user_data=b"x", nonce=None)
    assert caught.value.code == "InvalidArgument" and caught.value.operation == "Attestation"
    with pytest.raises(NsmResponseError, match="InvalidArgument"):
        nsm.pcrs()


def test_too_long_answer_is_truncated_by_the_driver_and_refused(device_path):
    device = FakeNsmDevice()
    device.document = os.urandom(NSM_RESPONSE_MAX_SIZE + 100)
    nsm, _ = _nsm(device_path, device)
    with pytest.raises(NsmProtocolError, match="truncated"):
        nsm.attest(public_key=None, user_data=None, nonce=None)


def test_driver_reporting_more_than_the_buffer_is_refused(device_path):
    device = FakeNsmDevice()
    nsm, _ = _nsm(device_path, device)

    def lying(fd, code, raw):
        device(fd, code, raw)
        raw.response.len = NSM_RESPONSE_MAX_SIZE + 1
        return 0

    nsm._ioctl = lying
    with pytest.raises(NsmProtocolError, match="12289 bytes into a 12288-byte buffer"):
        nsm.pcrs()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"\xff\x00garbage", "not valid CBOR"),
        (cbor2.dumps({"DescribePCR": {"lock": True, "data": b"\0" * 48}}) + b"\0", "not valid"),
        ({"DescribePCR": {"lock": True, "data": b"\0" * 48}}, "answered 'DescribePCR'"),
        ({"Attestation": {"document": "text"}}, "no document"),
        (["Attestation"], "one-entry map"),
        (b"", "empty answer"),
    ],
)
def test_malformed_answers_are_protocol_errors(device_path, answer, message):
    def handler(request):
        return DESCRIBE_NSM if request == "DescribeNSM" else answer

    nsm, _ = _nsm(device_path, FakeNsmDevice(handler))
    with pytest.raises(NsmProtocolError, match=message):
        nsm.attest(public_key=None, user_data=None, nonce=b"n" * 16)


def test_describe_checks_digest_and_pcr_sizes(device_path):
    def sha256(request):
        body = dict(DESCRIBE_NSM["DescribeNSM"], digest="SHA256")
        return {"DescribeNSM": body}

    with pytest.raises(NsmProtocolError, match="SHA256"):
        _nsm(device_path, FakeNsmDevice(sha256))

    def short_pcr(request):
        if request == "DescribeNSM":
            return DESCRIBE_NSM
        return {"DescribePCR": {"lock": True, "data": b"\1" * 32}}

    nsm, _ = _nsm(device_path, FakeNsmDevice(short_pcr))
    with pytest.raises(NsmProtocolError, match="PCR0 is 32 bytes, expected 48"):
        nsm.pcrs()


def test_errno_mapping(device_path):
    nsm, device = _nsm(device_path)

    def failing(code):
        def call(fd, request, raw):
            raise OSError(code, os.strerror(code))

        return call

    nsm._ioctl = failing(errno.EMSGSIZE)
    with pytest.raises(NsmResponseError, match="InputTooLarge"):
        nsm.pcrs()
    nsm._ioctl = failing(errno.EIO)
    with pytest.raises(NsmIoctlError, match="EIO") as caught:
        nsm.pcrs()
    assert caught.value.errno == errno.EIO


def test_oversized_fields_are_refused_before_any_ioctl(device_path):
    nsm, device = _nsm(device_path)
    before = len(device.requests)
    with pytest.raises(ValueError, match="user_data is 1025 bytes"):
        nsm.attest(public_key=None, user_data=b"u" * 1025, nonce=None)
    with pytest.raises(TypeError):
        nsm.attest(public_key="text", user_data=None, nonce=None)  # type: ignore[arg-type]
    assert len(device.requests) == before


def test_missing_device_is_nsm_unavailable(tmp_path):
    with pytest.raises(NsmUnavailable, match="ENOENT"):
        NitroNsm(str(tmp_path / "no-nsm-here"), ioctl=FakeNsmDevice())


def test_real_ioctl_on_a_device_that_is_not_the_nsm():
    """The real fcntl.ioctl with our struct on /dev/null: the kernel answers ENOTTY."""
    with pytest.raises(NsmIoctlError, match="does not accept NSM_IOCTL_RAW.*ENOTTY"):
        NitroNsm("/dev/null")


def test_fcntl_ioctl_writes_back_into_a_ctypes_object():
    """The mechanism NitroNsm relies on to read response.len: a real ioctl (FIONREAD on a pipe)
    mutates the ctypes object passed to fcntl.ioctl in place."""
    r, w = os.pipe()
    try:
        os.write(w, b"x" * 123)
        count = ctypes.c_int(0)
        fcntl.ioctl(r, termios.FIONREAD, count)
        assert count.value == 123
    finally:
        os.close(r)
        os.close(w)


# --- the KMS shim --------------------------------------------------------------------------------


class UpstreamServer:
    """A unix-socket server standing in for the parent's vsock-proxy; one thread per client."""

    def __init__(self, path: Path, handler) -> None:
        self.path = str(path)
        self.handler = handler
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.stop_event = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def address(self) -> Address:
        return Address("unix", path=self.path)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.settimeout(TIMEOUT)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(TIMEOUT)
        self.sock.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def count_then_answer(conn: socket.socket) -> None:
    """Reads to EOF (needs the client's half-close passed on), then answers and closes."""
    total = 0
    while data := conn.recv(65536):
        total += len(data)
    conn.sendall(f"got {total}".encode())


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(65536, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _recv_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def _client(proxy: KmsProxy) -> socket.socket:
    assert proxy.address is not None
    sock = socket.create_connection((proxy.address.host, proxy.address.port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


@pytest.fixture
def upstream_dir(tmp_path_factory):
    # AF_UNIX paths are limited to ~107 bytes: keep them short.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kp") as d:
        yield Path(d)


def test_forwards_bytes_both_ways(upstream_dir):
    server = UpstreamServer(upstream_dir / "u.sock", echo)
    try:
        with KmsProxy(server.address) as proxy:
            assert proxy.address.host == "127.0.0.1" and proxy.address.port > 0
            payload = os.urandom(1 << 20)
            with _client(proxy) as sock:
                sender = threading.Thread(target=sock.sendall, args=(payload,))
                sender.start()
                assert _recv_exactly(sock, len(payload)) == payload
                sender.join(TIMEOUT)
    finally:
        server.close()


def test_a_failed_accept_does_not_stop_the_shim(upstream_dir):
    """A transient accept error (ECONNABORTED, EMFILE) must not kill the accept thread: every
    later KMS call would hang until the enclave restarts."""

    class FlakyListener:
        def __init__(self, real):
            self.real, self.failed = real, False

        def accept(self):
            if not self.failed:
                self.failed = True
                raise OSError(errno.ECONNABORTED, "connection aborted")
            return self.real.accept()

        def __getattr__(self, name):
            return getattr(self.real, name)

    server = UpstreamServer(upstream_dir / "u.sock", echo)
    try:
        with KmsProxy(server.address) as proxy:
            proxy._listener = FlakyListener(proxy._listener)
            deadline = time.monotonic() + TIMEOUT
            while not proxy._listener.failed and time.monotonic() < deadline:
                time.sleep(0.05)  # the loop picks up the flaky listener after its 0.2 s tick
            assert proxy._listener.failed
            with _client(proxy) as sock:
                sock.sendall(b"still here")
                assert _recv_exactly(sock, 10) == b"still here"
            assert proxy.stats["accept_errors"] == 1
    finally:
        server.close()


def test_many_concurrent_connections(upstream_dir):
    server = UpstreamServer(upstream_dir / "u.sock", echo)
    results: dict[int, bool] = {}

    def one(i: int, proxy: KmsProxy) -> None:
        payload = f"connection {i} ".encode() * (50 + i)
        with _client(proxy) as sock:
            sock.sendall(payload)
            results[i] = _recv_exactly(sock, len(payload)) == payload

    try:
        with KmsProxy(server.address, max_connections=64) as proxy:
            threads = [threading.Thread(target=one, args=(i, proxy)) for i in range(48)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(TIMEOUT)
            assert results == {i: True for i in range(48)}
            assert server.connections == 48
    finally:
        server.close()


def test_half_close_reaches_upstream_and_its_eof_comes_back(upstream_dir):
    server = UpstreamServer(upstream_dir / "u.sock", count_then_answer)
    try:
        with KmsProxy(server.address) as proxy:
            with _client(proxy) as sock:
                sock.sendall(b"a" * 70000)
                sock.shutdown(socket.SHUT_WR)
                assert _recv_all(sock) == b"got 70000"  # upstream's close ends our read
            deadline = time.monotonic() + TIMEOUT
            while proxy.stats["completed"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proxy.stats["completed"] == 1
    finally:
        server.close()


def test_unreachable_upstream_closes_or_answers_502(upstream_dir):
    missing = Address("unix", path=str(upstream_dir / "nobody.sock"))
    with KmsProxy(missing, connect_timeout=1.0) as proxy:
        with _client(proxy) as sock:
            assert _recv_all(sock) == b""
        assert proxy.stats["upstream_failed"] == 1
    allowed = {"kms.sa-east-1.amazonaws.com:443"}
    with KmsProxy(missing, allowed_targets=allowed) as proxy, _client(proxy) as sock:
        sock.sendall(b"CONNECT kms.sa-east-1.amazonaws.com:443 HTTP/1.1\r\n\r\n")
        assert _recv_all(sock).startswith(b"HTTP/1.1 502 ")


def test_connect_front_allows_only_the_kms_target(upstream_dir):
    server = UpstreamServer(upstream_dir / "u.sock", echo)
    allowed = {"kms.sa-east-1.amazonaws.com:443"}
    try:
        with KmsProxy(server.address, allowed_targets=allowed) as proxy:
            with _client(proxy) as sock:
                sock.sendall(
                    b"CONNECT KMS.sa-east-1.amazonaws.com:443 HTTP/1.1\r\n"
                    b"Host: kms.sa-east-1.amazonaws.com:443\r\n\r\nearly"
                )
                head = b"HTTP/1.1 200 Connection established\r\n\r\n"
                assert _recv_exactly(sock, len(head)) == head
                assert _recv_exactly(sock, 5) == b"early"  # bytes sent past the header go on
                sock.sendall(b"tunnelled")
                assert _recv_exactly(sock, 9) == b"tunnelled"
            for request, status in [
                (b"CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n", b"403"),
                (b"CONNECT kms.sa-east-1.amazonaws.com:80 HTTP/1.1\r\n\r\n", b"403"),
                (b"GET http://kms.sa-east-1.amazonaws.com/ HTTP/1.1\r\n\r\n", b"405"),
                (b"CONNECT " + b"x" * 9000, b"431"),
            ]:
                with _client(proxy) as sock:
                    sock.sendall(request)
                    assert _recv_all(sock).split(b" ")[1] == status
            assert server.connections == 1  # refused CONNECTs never reached upstream
    finally:
        server.close()


def test_connection_limit(upstream_dir):
    server = UpstreamServer(upstream_dir / "u.sock", echo)
    try:
        with KmsProxy(server.address, max_connections=2) as proxy:
            held = [_client(proxy) for _ in range(2)]
            for sock in held:
                sock.sendall(b"ping")
                assert _recv_exactly(sock, 4) == b"ping"
            with _client(proxy) as third:
                assert _recv_all(third) == b""
            assert proxy.stats["refused"] == 1
            for sock in held:
                sock.close()
    finally:
        server.close()


def test_idle_connection_is_closed(upstream_dir):
    server = UpstreamServer(upstream_dir / "u.sock", echo)
    try:
        with KmsProxy(server.address, idle_timeout=0.5) as proxy, _client(proxy) as sock:
            started = time.monotonic()
            assert _recv_all(sock) == b""
            assert 0.4 < time.monotonic() - started < 5
    finally:
        server.close()


def test_parse_upstream():
    assert parse_upstream("3:8000") == Address("vsock", cid=3, port=8000)
    assert parse_upstream("unix:/tmp/x.sock") == Address("unix", path="/tmp/x.sock")
    assert parse_upstream("tcp:127.0.0.1:9") == Address("tcp", host="127.0.0.1", port=9)
    with pytest.raises(ValueError):
        parse_upstream("kms.amazonaws.com")
    with pytest.raises(ValueError, match="tcp:127.0.0.1"):
        KmsProxy(Address("vsock", cid=3, port=8000), listen_address=Address("unix", path="/x"))


def test_ensure_loopback_up_real_and_when_down():
    assert ensure_loopback_up() is False  # lo is up on this machine: read-only, no privilege
    calls = []

    def fake(fd, code, arg):
        calls.append((code, arg))
        if code == SIOCGIFFLAGS:
            return arg[:16] + (0x8).to_bytes(2, sys.byteorder) + arg[18:]  # LOOPBACK, not UP
        return arg

    assert ensure_loopback_up(fake) is True
    assert calls[1][0] == SIOCSIFFLAGS
    assert calls[1][1][:3] == b"lo\0" and len(calls[1][1]) == 40
    assert int.from_bytes(calls[1][1][16:18], sys.byteorder) == 0x8 | IFF_UP

    def denied(fd, code, arg):
        if code == SIOCSIFFLAGS:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return fake(fd, code, arg)

    with pytest.raises(PermissionError, match="needs root"):
        ensure_loopback_up(denied)


# --- boto3 through the shim, TLS verified end to end ---------------------------------------------


def _tls_material(tmp_path: Path, hostname: str) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test KMS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class FakeKmsTls:
    """The far end of vsock-proxy: a TLS server (on a unix socket) that answers GenerateRandom."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sni: list[str | None] = []
        self.requests: list[bytes] = []
        self.context.sni_callback = lambda s, name, ctx: self.sni.append(name)
        self.random = os.urandom(32)

    def __call__(self, conn: socket.socket) -> None:
        import base64
        import json

        tls = self.context.wrap_socket(conn, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += tls.recv(4096)
        self.requests.append(head)
        answer = json.dumps({"Plaintext": base64.b64encode(self.random).decode()}).encode()
        tls.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
            b"x-amzn-RequestId: test\r\nConnection: close\r\n"
            + f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
        )
        tls.close()


KMS_HOST = "kms.sa-east-1.amazonaws.com"
CREDENTIALS = {"access_key_id": "AKIDTEST", "secret_access_key": "secret", "session_token": "t"}


@pytest.fixture
def no_env_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def _kms_client_through(proxy: KmsProxy):
    """The enclave's own boto3 KMS client, routed through the shim, failing fast."""
    return cli._kms_client(
        f"https://{KMS_HOST}",
        "sa-east-1",
        CREDENTIALS,
        proxy_url=proxy.proxy_url,
        retries={"total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=5,
    )


def test_boto3_reaches_kms_through_the_shim_with_the_certificate_checked(
    upstream_dir, tmp_path, monkeypatch, no_env_proxy
):
    ca, cert, key = _tls_material(tmp_path, KMS_HOST)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
    kms = FakeKmsTls(cert, key)
    server = UpstreamServer(upstream_dir / "u.sock", kms)
    try:
        with KmsProxy(server.address, allowed_targets={f"{KMS_HOST}:443"}) as proxy:
            client = _kms_client_through(proxy)
            answer = client.generate_random(NumberOfBytes=32)
        assert answer["Plaintext"] == kms.random
        assert kms.sni == [KMS_HOST]  # TLS ran inside the tunnel, with the real name
        assert f"host: {KMS_HOST}".encode() in kms.requests[0].lower()
        assert b"TrentService.GenerateRandom" in kms.requests[0]
    finally:
        server.close()


def test_boto3_through_the_shim_refuses_a_certificate_for_another_name(
    upstream_dir, tmp_path, monkeypatch, no_env_proxy
):
    import botocore.exceptions

    ca, cert, key = _tls_material(tmp_path, "not-kms.example.com")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
    server = UpstreamServer(upstream_dir / "u.sock", FakeKmsTls(cert, key))
    try:
        with KmsProxy(server.address, allowed_targets={f"{KMS_HOST}:443"}) as proxy:
            client = _kms_client_through(proxy)
            with pytest.raises(botocore.exceptions.SSLError):
                client.generate_random(NumberOfBytes=32)
    finally:
        server.close()


def test_sealer_factory_routes_kms_clients_through_the_proxy():
    make = cli._sealer_factory(
        "https://kms.sa-east-1.amazonaws.com", "alias/k", "sa-east-1", None, "http://127.0.0.1:9"
    )
    for sealer in (make(None), make(CREDENTIALS)):
        client = sealer._kms
        assert client.meta.config.proxies == {"https": "http://127.0.0.1:9"}
        assert client.meta.endpoint_url == "https://kms.sa-east-1.amazonaws.com"
    plain = cli._sealer_factory("http://127.0.0.1:4599", "k", "us-east-1", None)(None)._kms
    assert not plain.meta.config.proxies


def test_kms_target_needs_https():
    assert cli._kms_target("https://kms.sa-east-1.amazonaws.com") == f"{KMS_HOST}:443"
    assert cli._kms_target("https://kms-fips.example:8443/") == "kms-fips.example:8443"
    with pytest.raises(ValueError, match="https"):
        cli._kms_target("http://127.0.0.1:4599")


# --- the command line ----------------------------------------------------------------------------


def _serve(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(APP_DIR)
    return subprocess.run(
        [sys.executable, "-m", "enclave_bridge.enclave", "serve", "--kms-key-id", "k", *args],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_nsm_choice_and_pki_rules(tmp_path):
    listen = ["--listen", f"unix:{tmp_path / 'e.sock'}"]
    absent = ["--nsm-device", str(tmp_path / "absent-nsm")]
    done = _serve(*listen, *absent)  # default → simulated (no device) → needs --pki
    assert done.returncode == 2 and "--nsm simulated needs --pki" in done.stderr
    assert "is absent, so simulated was chosen" in done.stderr
    done = _serve(*listen, "--nsm", "simulated")
    assert done.returncode == 2 and "needs --pki" in done.stderr
    done = _serve(*listen, "--nsm", "nitro", "--pki", str(tmp_path))
    assert done.returncode == 2 and "--pki is for the simulated NSM only" in done.stderr
    done = _serve(*listen, "--nsm", "nitro", *absent)
    assert done.returncode == 2 and "cannot open" in done.stderr and "ENOENT" in done.stderr
    done = _serve(*listen, "--nsm", "nitro", "--nsm-device", "/dev/null")
    assert done.returncode == 2 and "does not accept NSM_IOCTL_RAW" in done.stderr


def test_cli_default_is_nitro_when_the_device_exists(tmp_path):
    parser = cli._parser()
    device = tmp_path / "nsm"
    device.write_bytes(b"")
    args = parser.parse_args(
        ["serve", "--listen", "unix:x", "--kms-key-id", "k", "--nsm-device", str(device)]
    )
    assert cli._choose_nsm(args, parser) == "nitro"
    args = parser.parse_args(
        ["serve", "--listen", "unix:x", "--kms-key-id", "k", "--pki", "d", "--nsm-device", "/no"]
    )
    assert cli._choose_nsm(args, parser) == "simulated"


def test_dockerfile_runs_nitro_with_the_shim_and_pins_what_the_enclave_imports():
    dockerfile = (APP_DIR / "Dockerfile.enclave").read_text()
    cmd = dockerfile[dockerfile.rindex("CMD [") :]
    assert '"--nsm", "nitro"' in cmd and '"--kms-vsock-proxy", "3:8000"' in cmd
    assert "--pki" not in cmd and cmd.startswith('CMD ["/usr/local/bin/python"')
    assert "PYTHONPATH=/app" in dockerfile  # the enclave init ignores WORKDIR
    assert "--require-hashes" in dockerfile
    # The sources come only from the staged manifest (enclave_bridge/enclave-image.txt).
    copies = [line.split() for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copies == [
        ["COPY", "requirements-enclave.txt", "."],
        ["COPY", "build/enclave-app/", "/app/"],
    ]
    for plotting in ("matplotlib", "pillow"):
        assert f"\n{plotting}==" not in (APP_DIR / "requirements-enclave.txt").read_text()
    pins = {}
    for line in (APP_DIR / "requirements-enclave.txt").read_text().splitlines():
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower().split("[")[0]] = version.split()[0]
    main = {}
    for line in (APP_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            main[name.lower().split("[")[0]] = version.strip()
    direct = ["cryptography", "jwcrypto", "cbor2", "asn1crypto", "boto3", "jsonschema"]
    direct += ["openpyxl", "numpy", "scipy", "igraph"]
    for name in direct:
        assert pins[name] == main[name], name
    for host_only in ("django", "moto", "psycopg", "celery", "redis", "pytest"):
        assert host_only not in pins
