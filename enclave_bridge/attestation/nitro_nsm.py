"""The REAL Nitro Security Module binding: `/dev/nsm` through `fcntl.ioctl`. Imports no Django.

`NitroNsm` implements the `Nsm` protocol (nsm.py) inside an AWS Nitro enclave, speaking to the
Linux NSM driver the way AWS's own library does. Facts relied on, and where they were checked:

- Linux `include/uapi/linux/nsm.h` (SPDX GPL-2.0 WITH Linux-syscall-note, Amazon): `NSM_MAGIC
  0x0A`, `NSM_REQUEST_MAX_SIZE 0x1000`, `NSM_RESPONSE_MAX_SIZE 0x3000`, `struct nsm_iovec {__u64
  addr; __u64 len;}`, `struct nsm_raw {struct nsm_iovec request; struct nsm_iovec response;}`,
  `NSM_IOCTL_RAW _IOWR(NSM_MAGIC, 0x0, struct nsm_raw)` (32-byte argument: 0xC0200A00).
- Linux `drivers/misc/nsm.c`: `fill_req_raw` refuses a request longer than the request buffer
  with -EMSGSIZE; `parse_resp_raw` sets `raw->response.len = min(raw->response.len, resp->len)`,
  copies that much and `copy_to_user`s the whole `nsm_raw` back. So the driver writes the answer
  length into our struct, and an answer longer than our buffer is TRUNCATED silently (we detect
  it: the CBOR no longer decodes and the length equals the buffer size).
- aws/aws-nitro-enclaves-nsm-api `src/driver/mod.rs` (`nsm_process_request`: request ≤ 0x1000
  bytes, a 0x3000-byte response buffer, `request_code_readwrite!(0x0A, 0, size_of NsmMessage)`,
  EMSGSIZE → `InputTooLarge`) and `src/api/mod.rs` (serde externally tagged enums in CBOR):
  requests `{"Attestation": {"user_data", "nonce", "public_key"}}` (each bytes or null),
  `{"DescribePCR": {"index": u16}}`, the unit variant `"DescribeNSM"` (a bare text string);
  answers `{"Attestation": {"document": bytes}}`, `{"DescribePCR": {"lock": bool, "data":
  bytes}}`, `{"DescribeNSM": {"version_major", "version_minor", "version_patch", "module_id",
  "max_pcrs", "locked_pcrs", "digest"}}` and `{"Error": "<ErrorCode>"}` with ErrorCode one of
  Success, InvalidArgument, InvalidIndex, InvalidResponse, ReadOnlyIndex, InvalidOperation,
  BufferTooSmall, InputTooLarge, InternalError.
- aws/aws-nitro-enclaves-sdk-bootstrap `init/init.c` inserts `nsm.ko` before running the image's
  command, so `/dev/nsm` exists when our program starts.

None of this can run on a machine without Nitro hardware; the tests drive the same code through an
injected ioctl that behaves as the driver above (tests/enclave/test_nitro.py).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import io
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import cbor2

from .nsm import MAX_NONCE, MAX_PUBLIC_KEY, MAX_USER_DATA, PCR_SIZE, _check_size

NSM_DEVICE = "/dev/nsm"
NSM_MAGIC = 0x0A
NSM_REQUEST_MAX_SIZE = 0x1000
NSM_RESPONSE_MAX_SIZE = 0x3000
# PCR0 image, PCR1 kernel+boot, PCR2 application, PCR3 parent's IAM role, PCR4 parent instance,
# PCR8 image signing certificate: the ones our attestation checks and KMS policies name.
MEASURED_PCRS = (0, 1, 2, 3, 4, 8)

_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, kind: int, number: int, size: int) -> int:
    """Linux asm-generic/ioctl.h `_IOC` (x86_64 and aarch64: 2 dir, 14 size, 8 type, 8 nr bits)."""
    return (direction << 30) | (size << 16) | (kind << 8) | number


class NsmIovec(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class NsmRaw(ctypes.Structure):
    _fields_ = [("request", NsmIovec), ("response", NsmIovec)]


NSM_IOCTL_RAW = _ioc(_IOC_READ | _IOC_WRITE, NSM_MAGIC, 0, ctypes.sizeof(NsmRaw))
assert NSM_IOCTL_RAW == 0xC0200A00, hex(NSM_IOCTL_RAW)

# (fd, request code, mutable argument) -> int, as fcntl.ioctl(fd, request, arg, True).
IoctlFn = Callable[[int, int, Any], Any]


class NsmError(Exception):
    """Any failure talking to the NSM. Messages never carry the request or answer bytes."""


class NsmUnavailable(NsmError):
    """/dev/nsm cannot be opened: not inside a Nitro enclave, or the driver is not loaded."""


class NsmIoctlError(NsmError):
    """The ioctl itself failed (errno set by the driver or the kernel)."""

    def __init__(self, message: str, errno_value: int) -> None:
        super().__init__(message)
        self.errno = errno_value


class NsmResponseError(NsmError):
    """The NSM answered `{"Error": code}`."""

    def __init__(self, operation: str, code: str) -> None:
        super().__init__(f"NSM refused {operation}: {code}")
        self.operation = operation
        self.code = code


class NsmProtocolError(NsmError):
    """The answer is not what the protocol allows (malformed, truncated, wrong variant, types)."""


def _decode_exact(data: bytes) -> Any:
    fp = io.BytesIO(data)
    value = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != len(data):
        raise ValueError("trailing bytes after the CBOR answer")
    return value


class NitroNsm:
    """`Nsm` over the Linux NSM driver. Thread-safe: every call has its own buffers.

    `ioctl` defaults to `fcntl.ioctl`; tests inject a fake device with the same signature. The
    device is opened once (O_RDWR, as AWS's `nsm_init`), DescribeNSM is read at construction
    (`module_id`, digest), and locked PCRs are cached after their first read (a locked PCR cannot
    change for the life of the enclave).
    """

    def __init__(
        self,
        device: str = NSM_DEVICE,
        *,
        ioctl: IoctlFn | None = None,
        pcr_indices: Iterable[int] = MEASURED_PCRS,
    ) -> None:
        self._ioctl: IoctlFn = ioctl or fcntl.ioctl
        self._device = device
        try:
            self._fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise NsmUnavailable(
                f"cannot open {device} ({errno.errorcode.get(exc.errno or 0, exc.errno)}): "
                "not inside a Nitro enclave, or the nsm driver is not loaded"
            ) from None
        self._pcr_indices = tuple(pcr_indices)
        self._locked: dict[int, bytes] = {}
        self._lock = threading.Lock()
        try:
            description = self.describe()
        except BaseException:
            self.close()
            raise
        self.module_id: str = description["module_id"]
        self.description = description

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> NitroNsm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the raw exchange -------------------------------------------------------------------------

    def _exchange(self, request: bytes) -> bytes:
        """One NSM_IOCTL_RAW round trip: request bytes in, the answer bytes the driver wrote out."""
        if len(request) > NSM_REQUEST_MAX_SIZE:
            raise NsmResponseError("request", "InputTooLarge")
        if self._fd < 0:
            raise NsmUnavailable(f"{self._device} is closed")
        req_buf = ctypes.create_string_buffer(request, len(request))
        resp_buf = ctypes.create_string_buffer(NSM_RESPONSE_MAX_SIZE)
        raw = NsmRaw(
            NsmIovec(ctypes.addressof(req_buf), len(request)),
            NsmIovec(ctypes.addressof(resp_buf), NSM_RESPONSE_MAX_SIZE),
        )
        try:
            self._ioctl(self._fd, NSM_IOCTL_RAW, raw)
        except OSError as exc:
            code = exc.errno or 0
            if code == errno.EMSGSIZE:
                raise NsmResponseError("request", "InputTooLarge") from None
            if code in (errno.ENOTTY, errno.EINVAL):
                message = f"{self._device} does not accept NSM_IOCTL_RAW (not the NSM driver?)"
            else:
                message = f"NSM ioctl on {self._device} failed"
            raise NsmIoctlError(f"{message}: {errno.errorcode.get(code, code)}", code) from None
        length = raw.response.len
        if length == 0:
            raise NsmProtocolError("NSM wrote an empty answer")
        if length > NSM_RESPONSE_MAX_SIZE:
            raise NsmProtocolError(
                f"NSM reported {length} bytes into a {NSM_RESPONSE_MAX_SIZE}-byte buffer"
            )
        return ctypes.string_at(resp_buf, length)

    def _call(self, operation: str, request: Any) -> Any:
        """Encode, exchange, decode; return the body of the `{operation: body}` answer."""
        answer = self._exchange(cbor2.dumps(request))
        try:
            decoded = _decode_exact(answer)
        except (cbor2.CBORError, ValueError, EOFError, TypeError):
            if len(answer) == NSM_RESPONSE_MAX_SIZE:
                raise NsmProtocolError(
                    f"NSM answer to {operation} filled the {NSM_RESPONSE_MAX_SIZE}-byte buffer "
                    "and does not decode: truncated by the driver"
                ) from None
            raise NsmProtocolError(f"NSM answer to {operation} is not valid CBOR") from None
        if isinstance(decoded, dict) and len(decoded) == 1:
            ((variant, body),) = decoded.items()
            if variant == "Error":
                raise NsmResponseError(operation, body if isinstance(body, str) else repr(body))
            if variant == operation:
                return body
            raise NsmProtocolError(f"NSM answered {variant!r} to {operation}")
        raise NsmProtocolError(f"NSM answer to {operation} is not a one-entry map")

    # --- operations -------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """DescribeNSM: module id, version, PCR count, locked PCRs, digest."""
        body = self._call("DescribeNSM", "DescribeNSM")
        if not isinstance(body, dict):
            raise NsmProtocolError("DescribeNSM answer is not a map")
        module_id = body.get("module_id")
        if not isinstance(module_id, str) or not module_id:
            raise NsmProtocolError("DescribeNSM answer has no module_id")
        if body.get("digest") != "SHA384":
            raise NsmProtocolError(f"NSM digest is {body.get('digest')!r}, expected 'SHA384'")
        for name in ("version_major", "version_minor", "version_patch", "max_pcrs"):
            if not isinstance(body.get(name), int) or isinstance(body.get(name), bool):
                raise NsmProtocolError(f"DescribeNSM field {name} is not an integer")
        locked = body.get("locked_pcrs")
        if not isinstance(locked, list) or not all(isinstance(i, int) for i in locked):
            raise NsmProtocolError("DescribeNSM field locked_pcrs is not a list of integers")
        return {**body, "locked_pcrs": sorted(locked)}

    def describe_pcr(self, index: int) -> tuple[bool, bytes]:
        """DescribePCR: (locked, 48-byte value)."""
        if not isinstance(index, int) or not 0 <= index <= 0xFFFF:
            raise ValueError("PCR index must be an integer 0..65535")
        body = self._call("DescribePCR", {"DescribePCR": {"index": index}})
        if not isinstance(body, dict):
            raise NsmProtocolError("DescribePCR answer is not a map")
        lock, data = body.get("lock"), body.get("data")
        if not isinstance(lock, bool) or not isinstance(data, bytes):
            raise NsmProtocolError(f"DescribePCR answer for PCR{index} has wrong field types")
        if len(data) != PCR_SIZE:
            raise NsmProtocolError(f"PCR{index} is {len(data)} bytes, expected {PCR_SIZE}")
        return lock, data

    def pcrs(self) -> dict[int, bytes]:
        """PCR 0, 1, 2, 3, 4 and 8 (by default), read with DescribePCR."""
        values: dict[int, bytes] = {}
        for index in self._pcr_indices:
            with self._lock:
                cached = self._locked.get(index)
            if cached is not None:
                values[index] = cached
                continue
            lock, data = self.describe_pcr(index)
            if lock:
                with self._lock:
                    self._locked[index] = data
            values[index] = data
        return values

    def attest(
        self,
        *,
        public_key: bytes | None = None,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        """Attestation: the NSM's COSE_Sign1 document binding the three optional fields."""
        _check_size("public_key", public_key, MAX_PUBLIC_KEY)
        _check_size("user_data", user_data, MAX_USER_DATA)
        _check_size("nonce", nonce, MAX_NONCE)
        request = {
            "Attestation": {"user_data": user_data, "nonce": nonce, "public_key": public_key}
        }
        body = self._call("Attestation", request)
        document = body.get("document") if isinstance(body, dict) else None
        if not isinstance(document, bytes) or not document:
            raise NsmProtocolError("Attestation answer has no document")
        return document
