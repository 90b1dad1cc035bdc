"""Each registry class reaches the network model as the right network class; the rest is refused
naming the item, the agent and the class (never a guess from the acronym)."""

from __future__ import annotations

import pytest

from enclave_bridge.enclave.compute import build_market, parse_items, parse_parameters
from enclave_bridge.wire.protocol import ProtocolError
from prudencial.domain import market
from prudencial.models import AgentClass
from tests.enclave.payloads import contract, make_cnpj, parameters, portfolio

EXPECTED = {
    "generator": "GE",
    "self_producer": "GE",
    "trader": "CM",
    "free_consumer": "CS",
    "special_consumer": "CS",
}


def test_every_registry_class_is_mapped_explicitly():
    assert set(market.NETWORK_CLASS_BY_AGENT_CLASS) == set(AgentClass.values)
    assert set(market.AGENT_CLASSES) == set(AgentClass.values)
    assert market.NETWORK_CLASS_BY_AGENT_CLASS["distributor"] is None  # exempt from reporting


def _item(n: int, acronym: str, agent_class: str | None) -> dict:
    agent = {"acronym": acronym, "cnpj": make_cnpj(f"{20000000 + n:08d}0001")}
    if agent_class is not None:
        agent["class"] = agent_class
    return {"agent": agent, "portfolio": "jwe", "counterparties": None}


def test_each_class_reaches_the_network_model_as_its_network_class():
    # Acronyms whose first letters would have fooled the old guess (CL, CE, AP, DI → "CM").
    acronyms = {"generator": "GE1", "self_producer": "AP2", "trader": "XX3"}
    acronyms |= {"free_consumer": "CL4", "special_consumer": "CE5"}
    items = parse_items([_item(n, acronyms[c], c) for n, c in enumerate(EXPECTED)])
    entries = [
        {
            "agent": item["agent"],
            "payloads": {
                "portfolio": portfolio(
                    item["agent"],
                    contracts=[contract(0, "purchase", 1.0 + n, 100.0 * (1.0 + n) * 720)],
                )
            },
        }
        for n, item in enumerate(items)
    ]
    built, counts = build_market(entries, parse_parameters(parameters()), 3)
    assert counts["agents"] == len(EXPECTED)
    assert dict(zip(built.agent_ids, built.classes.tolist(), strict=True)) == {
        acronyms[c]: EXPECTED[c] for c in EXPECTED
    }


@pytest.mark.parametrize(
    ("agent_class", "message"),
    [
        (None, r"items\[1\]\.agent\.class of agent DI9 is required"),
        ("CS", r"items\[1\]\.agent\.class of agent DI9 must be one of .* \(got 'CS'\)"),
        ("pirate", r"items\[1\]\.agent\.class of agent DI9 must be one of .* \(got 'pirate'\)"),
        ("distributor", r"items\[1\]\.agent\.class of agent DI9 is distributor: distributors"),
    ],
)
def test_a_missing_unknown_or_exempt_class_refuses_the_batch_naming_agent_and_class(
    agent_class, message
):
    with pytest.raises(ProtocolError, match=message) as info:
        parse_items([_item(0, "GE1", "generator"), _item(1, "DI9", agent_class)])
    assert info.value.code == "bad_request"


def test_network_class_names_the_agent():
    with pytest.raises(ValueError, match="agent.class of agent CM1 must be one of"):
        market.network_class("CM", agent="CM1")
