"""Persistence of the simulated KMS's keys across restarts (development only).

moto keeps its KMS backend in memory; a developer's sealed enclave keys must survive a restart of
everything, so the backend's attributes are pickled to a 0600 file after every change. Private
keys (asymmetric KMS keys) are stored as PKCS#8 DER. Loading uses an allow-list unpickler and
refuses a file that others can write, since unpickling untrusted data would run code.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
_PRIVATE_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)  # the key types moto's KMS creates
_ALLOWED_MODULE_PREFIXES = ("moto.",)
_ALLOWED_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "object"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("datetime", "datetime"),
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    (__name__, "_load_private_key"),
}


def _load_private_key(der: bytes) -> Any:
    return serialization.load_der_private_key(der, password=None)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _PRIVATE_KEY_TYPES):
            der = obj.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return _load_private_key, (der,)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS or module.startswith(_ALLOWED_MODULE_PREFIXES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"state file refers to {module}.{name}, which is not allowed")


def save_backend(backend: Any, path: str | Path) -> None:
    """Atomically write the backend's attributes to `path` (mode 0600)."""
    target = Path(path)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        {"format": STATE_FORMAT, "backend": dict(vars(backend))}
    )
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(buffer.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def load_backend(backend: Any, path: str | Path) -> bool:
    """Restore a backend saved by save_backend; False when the file does not exist yet."""
    source = Path(path)
    if not source.exists():
        return False
    mode = source.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{source} is writable by group or others; refusing to load it")
    with source.open("rb") as fh:
        state = _Unpickler(fh).load()
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{source} is not a simulated-KMS state file (format {STATE_FORMAT})")
    backend.__dict__.update(state["backend"])
    logger.info("simulated KMS restored %d key(s) from %s", len(backend.keys), source)
    return True
