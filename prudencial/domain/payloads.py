"""Typed payloads between the host and the enclave (besides the week's parameters, which are in
``parameters``): an item of the batch the host ships, a verdict on one envelope, and the shape of
a week's results (filled by the closing issue)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prudencial.domain import values as check
from prudencial.domain.errors import DomainError
from prudencial.domain.market import network_class

VERDICT_STATUSES = ("accepted", "rejected", "error")


@dataclass(frozen=True)
class BatchAgent:
    """Who an item of the batch is: acronym, CNPJ and the registry class, from which the
    network model's class (CS/GE/CM) follows through market.network_class."""

    acronym: str
    cnpj: str
    agent_class: str
    network_class: str

    @classmethod
    def from_dict(cls, data: Any, field: str = "agent") -> BatchAgent:
        data = check.require_mapping(data, field)
        acronym = check.text(check.require_key(data, "acronym", field), f"{field}.acronym")
        # The check digits are the verdict's business (validation.py), so a bad CNPJ is one
        # refused item, not a refused batch.
        cnpj = check.require_key(data, "cnpj", field)
        if not isinstance(cnpj, str):
            raise DomainError(f"{field}.cnpj", "text")
        if "class" not in data or data["class"] is None:
            raise DomainError(f"{field}.class of agent {acronym}", "required")
        klass = data["class"]
        return cls(
            acronym=acronym,
            cnpj=cnpj,
            agent_class=klass,
            network_class=network_class(klass, agent=acronym, field=f"{field}.class"),
        )

    def to_dict(self) -> dict[str, str]:
        """What the host sends: the registry class, never a network class of its own."""
        return {"acronym": self.acronym, "cnpj": self.cnpj, "class": self.agent_class}


@dataclass(frozen=True)
class Verdict:
    """The enclave's public verdict on one envelope: status, errors by field and row (no
    values), the plaintext's keyed digest and counts."""

    status: str
    errors: tuple[dict[str, Any], ...] = ()
    digest: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, field: str = "verdict") -> Verdict:
        data = check.require_mapping(data, field)
        status = check.choice(data.get("status"), f"{field}.status", VERDICT_STATUSES)
        errors = data.get("errors", [])
        if not isinstance(errors, list):
            raise DomainError(f"{field}.errors", "list")
        return cls(
            status=status,
            errors=tuple(errors),
            digest=data.get("digest"),
            summary=dict(data.get("summary") or {}),
        )

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


@dataclass(frozen=True)
class AgentResult:
    """One agent's published figures of a week (disclosure.py decides which figures)."""

    agent: BatchAgent
    portfolio: Verdict | None
    counterparties: Verdict | None
    leverage: dict[str, Any] | None
    concentration: dict[str, Any] | None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class WeekResults:
    """A week's signed results: one AgentResult per item, the network summary and counts.
    Shape only, for the closing and network-risk issues."""

    week: str
    agents: tuple[AgentResult, ...]
    network: dict[str, Any]
    counts: dict[str, int]
