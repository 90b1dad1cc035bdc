"""Reference implementation of the paper's Algorithms 1 and 2: plain per-agent, per-scenario loops.

Kept deliberately naive (lists and for-loops, one scenario at a time, no NumPy in the
algorithms) so it can be read against the paper and used to check the vectorised engine in
prudencial.risk.network; bench/risk_bench.py compares the two. Conventions are those of the
engine (docs/risk.md): losses are fractions of the expected cost, larger = worse, one round of
failures (the paper's worst case).
"""

from __future__ import annotations

import math

from prudencial.risk import Market


def reference_exposures(
    market: Market,
    prices: list[float],
    contract_prices: list[list[float]] | None = None,
) -> tuple[list[list[float]], list[list[float]]]:
    """Intrinsic and propagated losses, indexed [agent][scenario]. With `contract_prices`
    ([contract][scenario], the paper's prices drawn per scenario) every price-dependent figure
    is recomputed in each scenario from that scenario's contract prices."""
    if contract_prices is not None:
        return _reference_priced(market, [float(p) for p in prices], contract_prices)
    n = market.n_agents
    seller = market.seller.tolist()
    buyer = market.buyer.tolist()
    volume = market.volume.tolist()
    price = market.price.tolist()
    generation = market.generation.tolist()
    consumption = market.consumption.tolist()
    prices = [float(p) for p in prices]
    # Agents without contracts are priced at the market's volume-weighted mean contract price
    # (the scenarios' mean only when the market has no contract at all), as in the engine.
    traded_total = sum(volume)
    fallback = (
        sum(v * p for v, p in zip(volume, price, strict=True)) / traded_total
        if traded_total > 0
        else sum(prices) / len(prices)
    )

    purchases = [0.0] * n
    sales = [0.0] * n
    traded = [0.0] * n
    worth = [0.0] * n
    sold_to: list[list[tuple[int, float, float]]] = [[] for _ in range(n)]
    for c in range(len(seller)):
        s, b, v, p = seller[c], buyer[c], volume[c], price[c]
        sales[s] += v
        purchases[b] += v
        traded[s] += v
        traded[b] += v
        worth[s] += v * p
        worth[b] += v * p
        sold_to[s].append((b, v, p))

    reference = [worth[a] / traded[a] if traded[a] > 0 else fallback for a in range(n)]
    requirement = [consumption[a] + sales[a] for a in range(n)]
    resource = [generation[a] + purchases[a] for a in range(n)]
    deficit = [requirement[a] - resource[a] for a in range(n)]
    expected_cost = [requirement[a] * reference[a] for a in range(n)]

    intrinsic = [[0.0] * len(prices) for _ in range(n)]
    propagated = [[0.0] * len(prices) for _ in range(n)]
    for b, pld in enumerate(prices):
        # Algorithm 1: each agent's own imbalance settled at the scenario PLD.
        for a in range(n):
            if expected_cost[a] > 0:
                intrinsic[a][b] = deficit[a] * (pld - reference[a]) / expected_cost[a]
        # Algorithm 2: short sellers losing in this scenario fail up to their shortfall,
        # split over their buyers in proportion to the volume each bought.
        lost = [0.0] * n
        lost_value = [0.0] * n
        for a in range(n):
            if sales[a] > 0 and pld > reference[a] and deficit[a] > 0:
                limit = min(deficit[a], sales[a])
                for b_agent, v, p in sold_to[a]:
                    share = v / sales[a] * limit
                    lost[b_agent] += share
                    lost_value[b_agent] += share * p
        for a in range(n):
            if expected_cost[a] > 0 and lost[a] > 0:
                propagated[a][b] = (pld * lost[a] - lost_value[a]) / expected_cost[a]
    return intrinsic, propagated


def _reference_priced(
    market: Market, prices: list[float], contract_prices: list[list[float]]
) -> tuple[list[list[float]], list[list[float]]]:
    """One scenario at a time: the fixed-price loop over that scenario's contract prices."""
    n = market.n_agents
    intrinsic = [[0.0] * len(prices) for _ in range(n)]
    propagated = [[0.0] * len(prices) for _ in range(n)]
    for b, pld in enumerate(prices):
        priced = Market(
            agent_ids=list(market.agent_ids),
            classes=market.classes,
            generation=market.generation,
            consumption=market.consumption,
            seller=market.seller,
            buyer=market.buyer,
            volume=market.volume,
            price=[row[b] for row in contract_prices],
        )
        # The market's mean contract price of *this* scenario prices agents without contracts.
        one_i, one_p = reference_exposures(priced, [pld])
        for a in range(n):
            intrinsic[a][b] = one_i[a][0]
            propagated[a][b] = one_p[a][0]
    return intrinsic, propagated


def reference_var_cvar(losses: list[float], confidence: float) -> tuple[float, float]:
    """VaR = L(k), k = ⌈αN⌉; CVaR = (Σ_{i>k} L(i) + (k − αN)·L(k)) / (N(1 − α))."""
    ordered = sorted(losses)
    n = len(ordered)
    k = max(1, math.ceil(confidence * n - 1e-9))
    tail = sum(ordered[k:])
    return ordered[k - 1], (tail + (k - confidence * n) * ordered[k - 1]) / (n * (1 - confidence))


def reference_network_risk(
    market: Market,
    prices: list[float],
    confidence: float = 0.95,
    contract_prices: list[list[float]] | None = None,
) -> dict[str, list[float]]:
    """Per-agent VaR and CVaR, intrinsic, propagated and total, as in the paper's Fig. 7."""
    intrinsic, propagated = reference_exposures(market, prices, contract_prices)
    out: dict[str, list[float]] = {
        key: []
        for key in (
            "var_intrinsic",
            "cvar_intrinsic",
            "var_propagated",
            "cvar_propagated",
            "var_total",
            "cvar_total",
        )
    }
    for a in range(market.n_agents):
        total = [i + p for i, p in zip(intrinsic[a], propagated[a], strict=True)]
        for name, series in (
            ("intrinsic", intrinsic[a]),
            ("propagated", propagated[a]),
            ("total", total),
        ):
            v, c = reference_var_cvar(series, confidence)
            out[f"var_{name}"].append(v)
            out[f"cvar_{name}"].append(c)
    return out
