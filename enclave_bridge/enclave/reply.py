"""The confidential breakdown of an agent's leverage factor, for the agent's own eyes.

A portfolio envelope's protected header may carry ``prd_reply``: the agent's public EC P-256
JWK ``{kty, crv, x, y}`` (checked by ``protocol.reply_key_problem`` in ``envelope.read_header``;
authenticated as the JWE's AAD, so nobody on the way can swap it). The enclave encrypts the R$
breakdown — PLA, RES_FIN, VaR_total, RWA, the per-bucket and per-source figures
(``LeverageResult.to_dict()``) and the concentration detail — to that key as a compact JWE
(``ECDH-ES+A256KW`` + ``A256GCM``, ``kid`` the key's RFC 7638 thumbprint). The host stores the
JWE; only the holder of the private key (``python -m prudencial.client leverage show``) reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jwcrypto import jwe, jwk

from enclave_bridge.wire.protocol import REPLY_HEADER_KEY, b64url_decode, reply_key_problem

REPLY_ALG = "ECDH-ES+A256KW"
REPLY_ENC = "A256GCM"
REPLY_TYP = "prudencial-breakdown"
REPLY_CTY = "prudencial/breakdown/v1"


def reply_key_of(token: Any) -> dict[str, str] | None:
    """The valid ``prd_reply`` JWK in a compact JWE's protected header, or None (no header,
    no reply key, or one that ``read_header`` refuses anyway)."""
    if not isinstance(token, str) or token.count(".") != 4:
        return None
    try:
        header = json.loads(b64url_decode(token.split(".", 1)[0]))
    except (ValueError, UnicodeDecodeError):
        return None
    value = header.get(REPLY_HEADER_KEY) if isinstance(header, dict) else None
    if value is None or reply_key_problem(value) is not None:
        return None
    return {k: value[k] for k in ("kty", "crv", "x", "y")}


def breakdown_document(
    week: str, agent: Mapping[str, Any], leverage: Any, concentration: Any
) -> dict[str, Any]:
    """What the agent reads: the full LeverageResult (R$) and the concentration detail."""
    return {
        "schema": REPLY_CTY,
        "week": week,
        "agent": {"acronym": agent["acronym"], "cnpj": agent["cnpj"]},
        "leverage": None if leverage is None else leverage.to_dict(),
        "concentration": None if concentration is None else concentration.to_dict(),
    }


def seal_breakdown(reply_jwk: Mapping[str, str], document: Mapping[str, Any]) -> str:
    """The document as a compact JWE to the agent's reply key."""
    key = jwk.JWK(**dict(reply_jwk))
    token = jwe.JWE(
        json.dumps(document, separators=(",", ":"), allow_nan=False).encode(),
        protected={
            "alg": REPLY_ALG,
            "enc": REPLY_ENC,
            "kid": key.thumbprint(),
            "typ": REPLY_TYP,
            "cty": REPLY_CTY,
        },
    )
    token.add_recipient(key)
    return token.serialize(compact=True)


def open_breakdown(token: str, private_jwk: jwk.JWK) -> dict[str, Any]:
    """The agent's side (and the tests'): decrypt a breakdown with the reply key's private half."""
    box = jwe.JWE(algs=[REPLY_ALG, REPLY_ENC])
    box.deserialize(token, key=private_jwk)
    return json.loads(box.payload)
