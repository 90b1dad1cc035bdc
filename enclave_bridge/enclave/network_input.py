"""The network model's input per agent, and the market built from it.

A closing computes FA chunk by chunk on several enclaves, but the network model needs every
agent at once. So each chunk keeps, per accepted agent, only what the market needs
(``agent_input``) and seals it to the enclave key ring (``seal_part``: AES-256-GCM under a key
derived with HKDF-SHA-256 from the key ring's digest key, which every enclave unsealed from the
same SealedKeySet holds); the host stores the part, opaque, and hands all of them to
``closing_network``, which opens them (``open_part``) and builds the market
(``market_from_inputs``). ``compute.build_market`` is the same function over a batch's entries,
so a closing and the ``compute`` op build the same market from the same plaintext.

An agent's input: acronym, CNPJ, network class; per bucket (all seven) its net energy in MWh
and its sale and purchase energy (MWh) and amounts (R$), so any horizon's average prices can be
taken; per declared counterparty its CNPJ and signed volumes in MWh per month (+ bought from,
− sold to). Nothing of it ever leaves the enclave in clear.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwcrypto import jwe, jwk

from enclave_bridge.wire.protocol import E_BAD_REQUEST, ProtocolError, b64url
from prudencial.domain.formats import contract_bucket, engine_portfolio

PART_VERSION = 1
PART_ALG = "dir"
PART_ENC = "A256GCM"
PART_TYP = "prudencial-network-part"
PART_INFO = b"prudencial/network-part/v1"
MAX_PART_CHARS = 8 * 1024 * 1024
MAX_PART_AGENTS = 100_000
MAX_PARTS = 1_000


def agent_input(entry: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    """The compact network input of one entry with an accepted (validated v2) portfolio."""
    hours = [float(b.hours) for b in parameters.buckets]
    n = len(hours)
    payload = entry["payloads"]["portfolio"]
    net = [0.0] * n
    for pos in engine_portfolio(payload)["positions"]:
        b = pos["bucket"]
        if b < n:
            net[b] += (pos["resource_mwm"] - pos["requirement_mwm"]) * hours[b]
    sides = {"sale": ([0.0] * n, [0.0] * n), "purchase": ([0.0] * n, [0.0] * n)}
    for row in payload["contracts"]:
        b = row["bucket"]
        if b < n and row["volume_mwm"] > 0 and row["side"] in sides:
            energy, amount = sides[row["side"]]
            energy[b] += row["volume_mwm"] * hours[b]
            amount[b] += row["amount_brl"]
    counterparties = []
    cps = entry["payloads"].get("counterparties")
    for cp in (cps or {}).get("counterparties", []):
        volumes = cp.get("volume_mwm")
        if volumes:
            counterparties.append(
                {
                    "cnpj": cp["cnpj"],
                    "mwh": [float(v) * hours[m] for m, v in enumerate(volumes[:n])],
                }
            )
    agent = entry["agent"]
    return {
        "acronym": agent["acronym"],
        "cnpj": agent["cnpj"],
        "network_class": agent["network_class"],
        "net_mwh": net,
        "sale_mwh": sides["sale"][0],
        "sale_brl": sides["sale"][1],
        "purchase_mwh": sides["purchase"][0],
        "purchase_brl": sides["purchase"][1],
        "counterparties": counterparties,
    }


def _price(energy: Sequence[float], amount: Sequence[float], horizon: int) -> float:
    e = sum(energy[:horizon])
    return sum(amount[:horizon]) / e if e > 0 else 0.0


def market_from_inputs(
    inputs: Sequence[Mapping[str, Any]],
    parameters: Any,
    horizon: int,
    trade_network: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[Any, dict[str, int]]:
    """The risk engine's Market over the agents' inputs (docs/enclave.md, "Market built from a
    batch"). Edges: the counterparties declarations, or — when ``trade_network`` (the valid
    rows of a prudencial/contracts/v1 payload) is given — the registered contracts among the
    agents present, seller → buyer, bucket < horizon, MWh = MWm × hours, their own price."""
    from prudencial.risk.market import Market

    hours = [float(b.hours) for b in parameters.buckets[:horizon]]
    n = len(inputs)
    index_by_cnpj = {a["cnpj"]: i for i, a in enumerate(inputs)}
    net = np.array([sum(a["net_mwh"][:horizon]) for a in inputs], dtype=float)
    sale_price = [_price(a["sale_mwh"], a["sale_brl"], horizon) for a in inputs]
    purchase_price = [_price(a["purchase_mwh"], a["purchase_brl"], horizon) for a in inputs]
    outside = 0
    if trade_network is None:
        declared: dict[tuple[int, int], dict[int, float]] = {}
        for i, agent in enumerate(inputs):
            for cp in agent["counterparties"]:
                j = index_by_cnpj.get(cp["cnpj"])
                if j is None or j == i:
                    outside += 1
                    continue
                for v in cp["mwh"][:horizon]:
                    if v == 0:
                        continue
                    pair = (j, i) if v > 0 else (i, j)  # (seller, buyer)
                    by = declared.setdefault(pair, {})
                    by[i] = by.get(i, 0.0) + abs(v)
        se_forward = parameters.forward_prices["SE"]  # every submarket is priced
        fallback = float(np.mean(se_forward[:horizon]))
        pairs = sorted(declared)
        seller = np.array([s for s, _ in pairs], dtype=np.int64)
        buyer = np.array([b for _, b in pairs], dtype=np.int64)
        volume = np.array([max(declared[p].values()) for p in pairs], dtype=float)
        price = np.array(
            [
                sale_price[s]
                if sale_price[s] > 0
                else purchase_price[b]
                if purchase_price[b] > 0
                else fallback
                for s, b in pairs
            ],
            dtype=float,
        )
        edges = len(pairs)
    else:
        labels = [b.label for b in parameters.buckets]
        rows: list[tuple[int, int, float, float]] = []
        for row in trade_network:
            s = index_by_cnpj.get(row["seller_cnpj"])
            b = index_by_cnpj.get(row["buyer_cnpj"])
            bucket = contract_bucket(row, labels)
            if s is None or b is None or s == b or bucket is None:
                outside += 1
                continue
            if bucket >= horizon:
                continue
            rows.append((s, b, float(row["volume_mwm"]) * hours[bucket], row["price_brl_mwh"]))
        seller = np.array([r[0] for r in rows], dtype=np.int64)
        buyer = np.array([r[1] for r in rows], dtype=np.int64)
        volume = np.array([r[2] for r in rows], dtype=float)
        price = np.array([r[3] for r in rows], dtype=float)
        edges = len(rows)
    purchases = np.bincount(buyer, weights=volume, minlength=n) if edges else np.zeros(n)
    sales = np.bincount(seller, weights=volume, minlength=n) if edges else np.zeros(n)
    residual = net - (purchases - sales)
    market = Market(
        agent_ids=[a["acronym"] for a in inputs],
        classes=np.array([a["network_class"] for a in inputs]),
        generation=np.maximum(residual, 0.0),
        consumption=np.maximum(-residual, 0.0),
        seller=seller,
        buyer=buyer,
        volume=volume,
        price=price,
    )
    counts = {"agents": n, "contracts": edges}
    counts["outside_contracts" if trade_network is not None else "outside_counterparties"] = outside
    return market, counts


# --- sealing to the key ring ----------------------------------------------------------------------


def part_key(keys: Any) -> jwk.JWK:
    """The AES-256 key of network parts: HKDF-SHA-256 over the key ring's digest key (in every
    enclave unsealed from the same SealedKeySet, unchanged by envelope key rotations)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PART_INFO).derive(
        keys.digest_key
    )
    return jwk.JWK(kty="oct", k=b64url(raw))


def seal_part(keys: Any, *, week: str, closing: str, chunk: int, inputs: list[dict]) -> str:
    """A chunk's agents' inputs as a compact JWE (dir + A256GCM) only an enclave can open."""
    plaintext = json.dumps(
        {"v": PART_VERSION, "week": week, "closing": closing, "chunk": chunk, "agents": inputs},
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    token = jwe.JWE(plaintext, protected={"alg": PART_ALG, "enc": PART_ENC, "typ": PART_TYP})
    token.add_recipient(part_key(keys))
    return token.serialize(compact=True)


def open_part(keys: Any, token: Any, index: int, *, week: str) -> dict[str, Any]:
    """Open one sealed part; anything but a part this key ring sealed for ``week`` is a
    ``bad_request`` naming ``parts[index]`` and the rule (never its content)."""
    name = f"parts[{index}]"
    if not isinstance(token, str) or not 0 < len(token) <= MAX_PART_CHARS:
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be a sealed network part (text)")
    try:
        part = jwe.JWE(algs=[PART_ALG, PART_ENC])
        part.deserialize(token)
        header = part.jose_header
        if header.get("typ") != PART_TYP or header.get("alg") != PART_ALG or "zip" in header:
            raise ValueError
        part.decrypt(part_key(keys))
        doc = json.loads(part.plaintext)
    except Exception:
        raise ProtocolError(
            E_BAD_REQUEST,
            f"{name} is not a network part sealed by this key ring (tampered or foreign)",
        ) from None
    if not isinstance(doc, dict) or doc.get("v") != PART_VERSION:
        raise ProtocolError(E_BAD_REQUEST, f"{name} has an unsupported version")
    if doc.get("week") != week:
        raise ProtocolError(E_BAD_REQUEST, f"{name} was sealed for another week")
    agents = doc.get("agents")
    if not isinstance(agents, list) or len(agents) > MAX_PART_AGENTS:
        raise ProtocolError(E_BAD_REQUEST, f"{name} holds no agent list")
    return doc
