"""The agent's reply key: the EC P-256 key the enclave seals the leverage breakdown to.

The platform shows an agent only ratios (FA, shares); the R$ breakdown (PLA, RES_FIN, VaR per
bucket and price source) leaves the enclave only as a JWE to the public key the agent put in its
portfolio envelope's protected header (``prd_reply``, docs/envelope.md § 2). The private half
stays in the client's configuration directory (``reply-key.json``, mode 0600, as the token), so
only this machine can read the breakdown. Nothing here prints or sends the private key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jwcrypto import jwe, jwk
from jwcrypto.common import JWException

from enclave_bridge.wire.protocol import b64url_decode, reply_key_problem

from .config import POSIX, ClientConfig, write_private
from .errors import ReplyKeyError

REPLY_KEY_NAME = "reply-key.json"
PUBLIC_MEMBERS = ("kty", "crv", "x", "y")
# What the enclave seals with (enclave_bridge/enclave/reply.py); nothing else is accepted.
BREAKDOWN_ALG = "ECDH-ES+A256KW"
BREAKDOWN_ENC = "A256GCM"
BREAKDOWN_SCHEMA = "prudencial/breakdown/v1"


def default_path(config: ClientConfig) -> Path:
    """Beside client.toml and token.json, so one ``--config`` moves all three."""
    return config.directory / REPLY_KEY_NAME


def create(path: Path, *, force: bool = False) -> jwk.JWK:
    """A new P-256 key written 0600; an existing one is kept unless ``force`` (replacing it
    makes every breakdown sealed to the old key unreadable)."""
    if path.exists() and not force:
        raise ReplyKeyError("exists", path=str(path))
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    write_private(path, key.export_private() + "\n")
    return key


def load(path: Path) -> jwk.JWK | None:
    """The stored private key, or None when there is none. A file others may read, or one
    that is not an EC P-256 private key, is refused (ReplyKeyError naming the file)."""
    if not path.exists():
        return None
    if POSIX and path.stat().st_mode & 0o077:
        raise ReplyKeyError("permissions", path=str(path))
    try:
        key = jwk.JWK.from_json(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, JWException, TypeError):
        raise ReplyKeyError("unreadable", path=str(path)) from None
    exported = key.export_public(as_dict=True)
    if not key.has_private or exported.get("kty") != "EC" or exported.get("crv") != "P-256":
        raise ReplyKeyError("unreadable", path=str(path))
    return key


def public_jwk(key: jwk.JWK) -> dict[str, str]:
    """The ``prd_reply`` header value: exactly kty, crv, x, y (the enclave refuses any other
    member, ``kid`` and ``d`` included), checked with the enclave's own rule."""
    exported = key.export_public(as_dict=True)
    value = {name: exported[name] for name in PUBLIC_MEMBERS}
    problem = reply_key_problem(value)
    if problem is not None:  # a key jwcrypto made is always valid; a hand-edited file may not be
        raise ValueError(problem)
    return value


def thumbprint(key: jwk.JWK | Mapping[str, str]) -> str:
    """RFC 7638 thumbprint: the ``kid`` the enclave puts on a breakdown sealed to this key."""
    if not isinstance(key, jwk.JWK):
        key = jwk.JWK(**dict(key))
    return key.thumbprint()


def header_of(token: str) -> dict[str, Any]:
    """A compact JWE's protected header (public), {} when it cannot be read."""
    try:
        header = json.loads(b64url_decode(token.split(".", 1)[0]))
    except (ValueError, UnicodeDecodeError, IndexError):
        return {}
    return header if isinstance(header, dict) else {}


def open_breakdown(token: str, key: jwk.JWK | None, path: Path) -> dict[str, Any]:
    """Decrypt a breakdown with the local reply key. ReplyKeyError naming ``path`` when there
    is no key, the breakdown was sealed to another key, or it does not decrypt."""
    if key is None:
        raise ReplyKeyError("missing", path=str(path))
    header = header_of(token)
    mine = thumbprint(key)
    if header.get("kid") and header["kid"] != mine:
        raise ReplyKeyError("other_key", path=str(path), kid=header["kid"], mine=mine)
    box = jwe.JWE(algs=[BREAKDOWN_ALG, BREAKDOWN_ENC])
    try:
        box.deserialize(token, key=key)
        document = json.loads(box.payload)
    except (JWException, ValueError, TypeError):
        raise ReplyKeyError("does_not_open", path=str(path)) from None
    if not isinstance(document, dict) or document.get("schema") != BREAKDOWN_SCHEMA:
        raise ReplyKeyError("not_a_breakdown", path=str(path))
    return document
