"""Counterparty concentration: the largest exposure to one counterparty, net of mitigants, over PLA.

From the weekly declaration of the agent's five largest counterparties (contrapartes,
``prudencial/counterparties/v2``, docs/formats.md), with their mark-to-market over M0–M2 and
the amount covered by mitigants (guarantees, bank letters):

    exposure[c]  = max(0, mtm_m0_brl + mtm_m1_brl + mtm_m2_brl − mitigation_brl)
    largest      = max_c exposure[c] / PLA
    top_five     = Σ_c exposure[c] / PLA
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prudencial.domain import values as check
from prudencial.domain.formats import COUNTERPARTIES_SCHEMA_ID, MAX_COUNTERPARTIES, VOLUME_MONTHS
from prudencial.risk.agent import AgentRef

COUNTERPARTIES_SCHEMA = COUNTERPARTIES_SCHEMA_ID


@dataclass(frozen=True)
class Counterparty:
    """One declared counterparty; `volume_mwm` is M0–M2 MWm, + bought from it, − sold to it.
    `acronym` is None when the counterparty is not a registered agent."""

    rank: int
    cnpj: str
    acronym: str | None
    mtm_m0_brl: float
    mtm_m1_brl: float
    mtm_m2_brl: float
    mitigation_brl: float = 0.0
    mitigants: str = ""
    volume_mwm: tuple[float, ...] | None = None

    @property
    def gross_exposure(self) -> float:
        return self.mtm_m0_brl + self.mtm_m1_brl + self.mtm_m2_brl

    @property
    def net_exposure(self) -> float:
        """Exposure net of mitigants, never below zero."""
        return max(0.0, self.gross_exposure - self.mitigation_brl)

    @classmethod
    def from_dict(cls, data: Any, field: str = "counterparty") -> Counterparty:
        data = check.require_mapping(data, field)
        get = lambda key: check.require_key(data, key, field)  # noqa: E731
        volume = data.get("volume_mwm")
        if volume is not None:
            if not isinstance(volume, Sequence) or len(volume) != VOLUME_MONTHS:
                raise ValueError(f"{field}.volume_mwm must list {VOLUME_MONTHS} values (M0–M2)")
            volume = tuple(
                check.number(v, f"{field}.volume_mwm[{i}]") for i, v in enumerate(volume)
            )
        mitigants = data.get("mitigants", "")
        if not isinstance(mitigants, str):
            raise ValueError(f"{field}.mitigants must be text")
        acronym = data.get("acronym")
        return cls(
            rank=check.integer(get("rank"), f"{field}.rank", low=1, high=MAX_COUNTERPARTIES),
            cnpj=check.text(get("cnpj"), f"{field}.cnpj"),
            acronym=None if acronym is None else check.text(acronym, f"{field}.acronym"),
            mtm_m0_brl=check.number(get("mtm_m0_brl"), f"{field}.mtm_m0_brl"),
            mtm_m1_brl=check.number(get("mtm_m1_brl"), f"{field}.mtm_m1_brl"),
            mtm_m2_brl=check.number(get("mtm_m2_brl"), f"{field}.mtm_m2_brl"),
            mitigation_brl=check.number(
                data.get("mitigation_brl", 0.0), f"{field}.mitigation_brl", minimum=0
            ),
            mitigants=mitigants,
            volume_mwm=volume,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rank": self.rank,
            "cnpj": self.cnpj,
            "acronym": self.acronym,
            "mtm_m0_brl": self.mtm_m0_brl,
            "mtm_m1_brl": self.mtm_m1_brl,
            "mtm_m2_brl": self.mtm_m2_brl,
            "mitigation_brl": self.mitigation_brl,
            "mitigants": self.mitigants,
        }
        if self.volume_mwm is not None:
            out["volume_mwm"] = list(self.volume_mwm)
        return out


@dataclass(frozen=True)
class CounterpartyDeclaration:
    """The counterparties payload an agent encrypts (up to five counterparties)."""

    agent: AgentRef
    week: str
    counterparties: tuple[Counterparty, ...]

    @classmethod
    def from_dict(cls, data: Any) -> CounterpartyDeclaration:
        data = check.require_mapping(data, "counterparties")
        check.schema(data, COUNTERPARTIES_SCHEMA, "counterparties")
        rows = check.require_key(data, "counterparties", "counterparties")
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
            raise ValueError("counterparties.counterparties must be a list")
        if len(rows) > MAX_COUNTERPARTIES:
            raise ValueError(
                f"counterparties.counterparties lists at most {MAX_COUNTERPARTIES} "
                f"(got {len(rows)})"
            )
        return cls(
            agent=AgentRef.from_dict(
                check.require_key(data, "agent", "counterparties"), "counterparties.agent"
            ),
            week=check.week_code(
                check.require_key(data, "week", "counterparties"), "counterparties.week"
            ),
            counterparties=tuple(
                Counterparty.from_dict(row, f"counterparties.counterparties[{n}]")
                for n, row in enumerate(rows)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COUNTERPARTIES_SCHEMA,
            "agent": self.agent.to_dict(),
            "week": self.week,
            "counterparties": [c.to_dict() for c in self.counterparties],
        }


@dataclass(frozen=True)
class ConcentrationResult:
    """Concentration ratios; `largest_ratio` and `top_five_ratio` are None when PLA ≤ 0."""

    largest_ratio: float | None
    top_five_ratio: float | None
    reason: str | None
    pla: float
    largest_exposure: float
    largest_counterparty: str | None
    top_five_exposure: float
    exposures: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "largest_ratio": self.largest_ratio,
            "top_five_ratio": self.top_five_ratio,
            "reason": self.reason,
            "pla": self.pla,
            "largest_exposure": self.largest_exposure,
            "largest_counterparty": self.largest_counterparty,
            "top_five_exposure": self.top_five_exposure,
            "exposures": [dict(e) for e in self.exposures],
        }


def counterparty_concentration(
    counterparties: CounterpartyDeclaration | Mapping[str, Any], adjusted_equity: float
) -> ConcentrationResult:
    """Largest and top-five counterparty exposures (net of mitigants) over adjusted equity."""
    if not isinstance(counterparties, CounterpartyDeclaration):
        counterparties = CounterpartyDeclaration.from_dict(counterparties)
    pla = check.number(adjusted_equity, "adjusted_equity")
    exposures = tuple(
        {
            "rank": c.rank,
            "cnpj": c.cnpj,
            "acronym": c.acronym,
            "gross_exposure": c.gross_exposure,
            "mitigation_brl": c.mitigation_brl,
            "net_exposure": c.net_exposure,
        }
        for c in sorted(counterparties.counterparties, key=lambda c: c.rank)
    )
    top = max(exposures, key=lambda e: e["net_exposure"], default=None)
    largest_name = None if top is None else (top["acronym"] or top["cnpj"])
    largest = 0.0 if top is None else top["net_exposure"]
    total = sum(e["net_exposure"] for e in exposures)
    if pla > 0:
        largest_ratio: float | None = largest / pla
        top_ratio: float | None = total / pla
        reason = None
    else:
        largest_ratio = top_ratio = None
        reason = f"adjusted equity (PLA) is {pla:,.2f} ≤ 0: concentration over PLA is undefined"
    return ConcentrationResult(
        largest_ratio=largest_ratio,
        top_five_ratio=top_ratio,
        reason=reason,
        pla=pla,
        largest_exposure=largest,
        largest_counterparty=largest_name,
        top_five_exposure=total,
        exposures=exposures,
    )
