"""What may leave the enclave: an allow-list of published figures, nothing else.

The leverage factor and the concentration ratios are published (to the agent's users and CCEE),
and so are the network model's loss fractions and community positions. Anything from which a
declaration could be read back — the adjusted equity (PLA), the financial result, VaR in R$, RWA,
per-bucket MtM, an agent's net energy, expected cost, contract prices or per-agent volumes —
stays inside. New figures are published by adding them here, deliberately.
"""

from __future__ import annotations

from typing import Any

LEVERAGE_FIGURES = ("fa", "fa_risk", "res_fin_over_pla", "var_share_by_bucket")
# Fractions, not R$: RES_FIN / PLA (None when PLA ≤ 0) and each bucket's share of the summed
# per-bucket VaR (None when it is 0), rounded so they cannot carry a declared value's digits.
FRACTION_DIGITS = 4
CONCENTRATION_FIGURES = ("largest_ratio", "top_five_ratio")
NETWORK_AGENT_FIGURES = (
    "agent",
    "class",
    "var_intrinsic",
    "cvar_intrinsic",
    "var_propagated",
    "cvar_propagated",
    "var_total",
    "cvar_total",
    "failure_frequency",
    "community",
    "community_mean_cvar_propagated",
    "community_rank",
    "n_communities",
    "network_position",
    # True: the agent has no expected cost, so no relative figure (its var_*/cvar_* are None).
    # The R$ figures (*_brl) are never disclosed: they would reveal the size of its position.
    "no_expected_cost",
)
NETWORK_SUMMARY_FIGURES = (
    "n_agents",
    "n_scenarios",
    "confidence",
    "cascade",
    "probabilistic",
    "rounds",
    "converged",
    "pld_mean",
    "reference_source",
    "scenario_model",
    "risk_convention",
    "loss_convention",
    "community_method",
    "modularity",
    "n_communities",
    "n_isolated",
    "n_propagators",
    "network_mean",
    "timings_s",
)
COMMUNITY_FIGURES = (
    "community",
    "rank",
    "size",
    "propagators",
    "mean_cvar_intrinsic",
    "mean_cvar_propagated",
    "mean_cvar_total",
    "isolated",
)


def _pick(source: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(source, dict):
        return {n: source[n] for n in names if n in source}
    return {n: getattr(source, n) for n in names if hasattr(source, n)}


def published_leverage(result: Any) -> dict[str, Any]:
    """FA and FA_risk, with the reason when there is no FA (PLA ≤ 0), never PLA itself."""
    figures = _pick(result, LEVERAGE_FIGURES)
    pla, res_fin = getattr(result, "pla", None), getattr(result, "res_fin", None)
    if "res_fin_over_pla" in LEVERAGE_FIGURES:
        figures["res_fin_over_pla"] = (
            round(res_fin / pla, FRACTION_DIGITS)
            if isinstance(pla, int | float) and pla > 0 and isinstance(res_fin, int | float)
            else None
        )
    if "var_share_by_bucket" in LEVERAGE_FIGURES:
        var = [float(v) for v in getattr(result, "var_by_bucket", ()) or ()]
        total = sum(var)
        figures["var_share_by_bucket"] = (
            [round(v / total, FRACTION_DIGITS) for v in var] if var and total > 0 else None
        )
    figures["reason"] = (
        None if getattr(result, "reason", None) is None else "adjusted equity (PLA) ≤ 0"
    )
    return figures


def published_concentration(result: Any) -> dict[str, Any]:
    figures = _pick(result, CONCENTRATION_FIGURES)
    figures["reason"] = (
        None if getattr(result, "reason", None) is None else "adjusted equity (PLA) ≤ 0"
    )
    return figures


def published_network(result: Any) -> dict[str, Any]:
    """Summary, community table and each agent's loss fractions and community position."""
    return {
        **_pick(result.summary(), NETWORK_SUMMARY_FIGURES),
        "communities": [_pick(c.to_dict(), COMMUNITY_FIGURES) for c in result.community_table],
        "agents": [_pick(row, NETWORK_AGENT_FIGURES) for row in result.per_agent_table()],
    }


# Systemic measures (prudencial.risk.systemic): shares of capital, of obligations and recovery
# rates, counts and agent identifiers — never the capital, obligations or contract values (R$).
SYSTEMIC_FIGURES: dict[str, tuple[str, ...]] = {
    "summary": (
        "schema",
        "n_agents",
        "confidence",
        "capital_source",
        "capital_fraction",
        "netting",
        "intrinsic",
        "debtrank_method",
        "cover2_candidates",
        "timings_s",
    ),
    "scenario": ("scenario", "quantile", "debtrank", "eisenberg_noe", "cover2"),
    "debtrank": (
        "method",
        "system_initial",
        "system_final",
        "system_propagated",
        "rounds",
        "converged",
        "distressed",
        "defaulted",
        "top",
    ),
    "debtrank_top": ("agent", "impact"),
    "eisenberg_noe": (
        "defaults",
        "fundamental",
        "contagious",
        "unpaid_share",
        "unpaid_to_agents_share",
        "rounds",
    ),
    "cover2": (
        "agents",
        "loss",
        "bound",
        "certified",
        "exhaustive",
        "candidates",
        "pairs_evaluated",
        "distressed",
    ),
    "agent": (
        "debtrank_impact",
        "debtrank_distress",
        "en_recovery",
        "en_default_wave",
        "en_credit_loss_over_capital",
    ),
}


def published_systemic(result: Any) -> dict[str, Any]:
    """The systemic measures' relative figures, each name passed through SYSTEMIC_FIGURES."""
    raw = result.published() if hasattr(result, "published") else result
    figures = SYSTEMIC_FIGURES
    scenarios = {}
    for name, s in raw.get("scenarios", {}).items():
        scenario = _pick(s, figures["scenario"])
        if "debtrank" in scenario:
            debtrank = _pick(s["debtrank"], figures["debtrank"])
            if "top" in debtrank:
                debtrank["top"] = [_pick(t, figures["debtrank_top"]) for t in debtrank["top"]]
            scenario["debtrank"] = debtrank
        for part in ("eisenberg_noe", "cover2"):
            if part in scenario:
                scenario[part] = _pick(s[part], figures[part])
        scenarios[str(name)] = scenario
    return {
        **_pick(raw, figures["summary"]),
        "scenarios": scenarios,
        "agents": [
            {
                "agent": row["agent"],
                "scenarios": {
                    str(k): _pick(v, figures["agent"]) for k, v in row.get("scenarios", {}).items()
                },
            }
            for row in raw.get("agents", [])
        ],
    }
