"""Benchmark of the risk engine's network model (a script, not a test).

    .venv/bin/python bench/risk_bench.py [--out bench/results/risk.md]

Measures: the paper's case (1,000 agents, 5,000 PLD scenarios: intrinsic + propagated +
communities; target < 2 s) against the per-agent, per-scenario reference loop in
bench/risk_reference.py (target ≥ 50× faster, agreement to 1e-9 relative); a large market
(20,000 agents, 200,000 contracts, 10,000 scenarios; target < 60 s and < 4 GB peak RSS, measured
in a child process so its peak RSS is its own) with Fast Greedy, Louvain and Leiden timed
apart; and a small sweep over agents, contracts and scenarios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from risk_reference import reference_network_risk  # noqa: E402

from prudencial.risk import (  # noqa: E402
    Communities,
    bootstrap_pld,
    detect_communities,
    network_risk,
    pld_history_2017,
)
from prudencial.risk.pld import paper_scenarios  # noqa: E402
from prudencial.risk_tools.synthetic import synthetic_market  # noqa: E402

MEASURES = (
    "var_intrinsic",
    "cvar_intrinsic",
    "var_propagated",
    "cvar_propagated",
    "var_total",
    "cvar_total",
)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        total_kb = int(handle.readline().split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{total_kb / 1024**2:.1f} GiB",
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def no_communities(n: int) -> Communities:
    return Communities(np.zeros(n, dtype=np.int64), 0.0, "none")


def best_of(repeats: int, fn):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def paper_case() -> dict:
    market = synthetic_market(600, 350, 50, seed=1)
    prices = bootstrap_pld(pld_history_2017(), 5000, seed=1)
    network_risk(market, prices)  # warm-up (imports, first sparse call)
    total, result = best_of(3, lambda: network_risk(market, prices, community_method="fastgreedy"))
    exposures, _ = best_of(
        3, lambda: network_risk(market, prices, communities=no_communities(1000))
    )
    # The general path (what multi-week scenarios and probabilistic failures take).
    streamed, streamed_result = best_of(
        3,
        lambda: network_risk(
            market, prices, communities=no_communities(1000), group_equal_prices=False
        ),
    )
    start = time.perf_counter()
    reference = reference_network_risk(market, prices.tolist())
    reference_time = time.perf_counter() - start
    worst = 0.0
    for name in MEASURES:
        theirs = np.asarray(reference[name])
        for ours in (getattr(result, name), getattr(streamed_result, name)):
            scale = np.maximum(np.abs(ours), np.abs(theirs))
            diff = np.abs(ours - theirs)
            rel = np.divide(
                diff, scale, out=np.zeros_like(diff), where=scale > 1e-12
            )  # ±1e-17 noise: not relative
            worst = max(worst, float(rel.max()))
    # The paper's scenario model: contract prices drawn per scenario (prudencial.risk.priced),
    # against the per-scenario reference loop on the same drawn prices.
    drawn = paper_scenarios(pld_history_2017(), 5000, seed=1)
    priced, priced_result = best_of(
        3, lambda: network_risk(market, drawn, communities=no_communities(1000))
    )
    contract_prices = drawn.contract_price_block(market.n_contracts, 0, drawn.n_scenarios)
    start = time.perf_counter()
    priced_reference = reference_network_risk(
        market, drawn.pld.tolist(), contract_prices=contract_prices.tolist()
    )
    priced_reference_time = time.perf_counter() - start
    priced_worst = 0.0
    for name in MEASURES:
        theirs, ours = np.asarray(priced_reference[name]), getattr(priced_result, name)
        scale = np.maximum(np.abs(ours), np.abs(theirs))
        diff = np.abs(ours - theirs)
        rel = np.divide(
            diff, scale, out=np.zeros_like(diff), where=scale > 1e-12
        )  # ±1e-17 noise: not relative
        priced_worst = max(priced_worst, float(rel.max()))
    cascade, cascaded = best_of(
        1, lambda: network_risk(market, prices, cascade=True, communities=no_communities(1000))
    )
    probabilistic, _ = best_of(
        1,
        lambda: network_risk(
            market,
            prices,
            failure_probability={"GE": 0.3, "CM": 0.5},
            seed=1,
            communities=no_communities(1000),
        ),
    )
    return {
        "total": total,
        "exposures": exposures,
        "communities": result.timings["communities"],
        "n_communities": result.n_communities,
        "modularity": result.communities.modularity,
        "distinct_prices": int(np.unique(prices).size),
        "propagators": int(result.propagators.sum()),
        "reference": reference_time,
        "speedup": reference_time / exposures,
        "streamed": streamed,
        "speedup_streamed": reference_time / streamed,
        "max_relative_difference": worst,
        "streamed_tail_passes": streamed_result.tail_passes,
        "priced": priced,
        "priced_tail_passes": priced_result.tail_passes,
        "priced_reference": priced_reference_time,
        "speedup_priced": priced_reference_time / priced,
        "priced_max_relative_difference": priced_worst,
        "cascade": cascade,
        "cascade_rounds": cascaded.rounds,
        "probabilistic": probabilistic,
    }


def large_child() -> dict:
    """Runs in its own process so ru_maxrss is the large case's peak."""
    start = time.perf_counter()
    market = synthetic_market(12_000, 7_000, 1_000, seed=1, n_contracts=200_000)
    build = time.perf_counter() - start
    prices = bootstrap_pld(pld_history_2017(), 10_000, seed=1)
    start = time.perf_counter()
    result = network_risk(market, prices, community_method="louvain", seed=1)
    engine_total = time.perf_counter() - start
    start = time.perf_counter()
    streamed = network_risk(
        market, prices, communities=result.communities, group_equal_prices=False
    )
    exposures_streamed = time.perf_counter() - start
    streamed_passes = streamed.tail_passes
    del streamed
    start = time.perf_counter()
    priced = network_risk(
        market, paper_scenarios(pld_history_2017(), 10_000, seed=1), communities=result.communities
    )
    exposures_priced = time.perf_counter() - start
    priced_passes = priced.tail_passes
    del priced
    timings = {}
    for method in ("leiden", "fastgreedy"):
        start = time.perf_counter()
        found = detect_communities(market, method, seed=1)
        timings[method] = (time.perf_counter() - start, found.n_communities, found.modularity)
    return {
        "build_market": build,
        "engine_total_louvain": engine_total,
        "exposures": result.timings["exposures"],
        "exposures_streamed": exposures_streamed,
        "streamed_tail_passes": streamed_passes,
        "exposures_priced": exposures_priced,
        "priced_tail_passes": priced_passes,
        "louvain": (
            result.timings["communities"],
            result.n_communities,
            result.communities.modularity,
        ),
        **timings,
        "propagators": int(result.propagators.sum()),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def sweep() -> list[dict]:
    rows = []
    history = pld_history_2017()
    cases = [(n, 10 * n, 2_000) for n in (2_500, 5_000, 10_000, 20_000)]
    cases += [(20_000, m, 2_000) for m in (50_000, 100_000)]
    cases += [(20_000, 200_000, s) for s in (5_000, 10_000)]
    for n, m, s in cases:
        market = synthetic_market(
            int(0.6 * n), int(0.35 * n), n - int(0.6 * n) - int(0.35 * n), seed=2, n_contracts=m
        )
        prices = bootstrap_pld(history, s, seed=2)
        elapsed, _ = best_of(
            1,
            lambda market=market, prices=prices, n=n: network_risk(
                market, prices, communities=no_communities(n), group_equal_prices=False
            ),
        )
        rows.append({"agents": n, "contracts": m, "scenarios": s, "seconds": elapsed})
        print(
            f"  sweep {n:>6} agents {m:>7} contracts {s:>6} scenarios: {elapsed:6.2f} s", flush=True
        )
    return rows


def report(info: dict, paper: dict, large: dict, rows: list[dict]) -> str:
    ok = lambda cond: "met" if cond else "NOT met"  # noqa: E731
    lines = [
        "# Risk engine benchmark",
        "",
        "Command: `.venv/bin/python bench/risk_bench.py` (best of 3 for the paper's case, one run otherwise).",
        "",
        f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, {info['memory']} RAM; "
        f"Python {info['python']}, NumPy {info['numpy']}.",
        "",
        "## Paper's case: 600 CS, 350 GE, 50 CM, 4,000 contracts, 5,000 PLD scenarios",
        "",
        "| measure | time | target |",
        "|---|---|---|",
        f"| intrinsic + propagated + VaR/CVaR + Fast Greedy communities | {paper['total']:.3f} s | < 2 s: {ok(paper['total'] < 2)} |",
        f"| of which communities (Fast Greedy, {paper['n_communities']} found, Q = {paper['modularity']:.3f}) | {paper['communities']:.3f} s | |",
        f"| engine, Algorithms 1–2 + VaR/CVaR (default: each of the {paper['distinct_prices']} distinct PLDs once) | {paper['exposures']:.4f} s | |",
        f"| engine, general streamed path (`group_equal_prices=False`) | {paper['streamed']:.3f} s | |",
        f"| reference loop (bench/risk_reference.py) | {paper['reference']:.2f} s | |",
        f"| speed-up over the reference, default | {paper['speedup']:.0f}× | ≥ 50×: {ok(paper['speedup'] >= 50)} |",
        f"| speed-up over the reference, general streamed path | {paper['speedup_streamed']:.0f}× | ≥ 50×: {ok(paper['speedup_streamed'] >= 50)} |",
        f"| largest relative difference, 6 measures × 1,000 agents, both paths | {paper['max_relative_difference']:.1e} | ≤ 1e-9: {ok(paper['max_relative_difference'] <= 1e-9)} |",
        f"| engine, the paper's scenario model (contract prices drawn per scenario) | {paper['priced']:.3f} s | |",
        f"| reference loop on the same drawn prices | {paper['priced_reference']:.2f} s | |",
        f"| speed-up over the reference, drawn prices | {paper['speedup_priced']:.0f}× | ≥ 50×: {ok(paper['speedup_priced'] >= 50)} |",
        f"| largest relative difference, drawn prices | {paper['priced_max_relative_difference']:.1e} | ≤ 1e-9: {ok(paper['priced_max_relative_difference'] <= 1e-9)} |",
        f"| tail work, cells partitioned per loss value: streamed / drawn prices | {paper['streamed_tail_passes']:.2f} / {paper['priced_tail_passes']:.2f} | ≤ 3 (floor 1) |",
        f"| cascade to the fixed point ({paper['cascade_rounds']} rounds) | {paper['cascade']:.3f} s | |",
        f"| probabilistic failures (GE 0.3, CM 0.5), Monte Carlo over failures and prices | {paper['probabilistic']:.3f} s | |",
        "",
        "## Large market: 12,000 CS, 7,000 GE, 1,000 CM, 200,000 contracts, 10,000 scenarios",
        "",
        "| measure | time | target |",
        "|---|---|---|",
        f"| building the synthetic market | {large['build_market']:.2f} s | |",
        f"| engine: Algorithms 1–2 + VaR/CVaR ({large['propagators']} propagators; distinct PLDs once) | {large['exposures']:.2f} s | |",
        f"| engine, general streamed path (`group_equal_prices=False`) | {large['exposures_streamed']:.2f} s | < 60 s with Louvain: {ok(large['exposures_streamed'] + large['louvain'][0] < 60)} |",
        f"| engine, the paper's scenario model (contract prices drawn per scenario) | {large['exposures_priced']:.2f} s | |",
        f"| tail work, cells partitioned per loss value: streamed / drawn prices | {large['streamed_tail_passes']:.2f} / {large['priced_tail_passes']:.2f} | ≤ 3 (floor 1): {ok(max(large['streamed_tail_passes'], large['priced_tail_passes']) <= 3)} |",
        f"| communities, Louvain ({large['louvain'][1]} found, Q = {large['louvain'][2]:.3f}) | {large['louvain'][0]:.2f} s | |",
        f"| **engine total with Louvain** | **{large['engine_total_louvain']:.2f} s** | < 60 s: {ok(large['engine_total_louvain'] < 60)} |",
        f"| communities, Leiden ({large['leiden'][1]} found, Q = {large['leiden'][2]:.3f}) | {large['leiden'][0]:.2f} s | |",
        f"| communities, Fast Greedy ({large['fastgreedy'][1]} found, Q = {large['fastgreedy'][2]:.3f}) | {large['fastgreedy'][0]:.2f} s | |",
        f"| engine total if Fast Greedy were used | {large['exposures'] + large['fastgreedy'][0]:.2f} s | < 60 s: {ok(large['exposures'] + large['fastgreedy'][0] < 60)} |",
        f"| peak RSS of the whole large run (all three methods) | {large['peak_rss_gib']:.2f} GiB | < 4 GB: {ok(large['peak_rss_gib'] * 1.0737 < 4)} |",
        "",
        "## How time grows (general streamed path, without community detection, one run each)",
        "",
        "| agents | contracts | scenarios | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['agents']:,} | {r['contracts']:,} | {r['scenarios']:,} | {r['seconds']:.2f} |"
        for r in rows
    ]
    lines += [
        "",
        "The default path computes each distinct PLD once (single-week bootstrap scenarios repeat",
        "the 52 weeks of the history), so its time hardly depends on the number of scenarios; the",
        "table is the general path, which multi-week scenarios and probabilistic failures take.",
        "Time grows about linearly with agents and with contracts, and faster than linearly",
        "with scenarios: each agent keeps its worst ⌈(1 − α)N⌉ + 1 losses, so the tail merged at",
        "every block grows with N (2,000 → 10,000 scenarios: ×8 time for ×5 scenarios). The",
        "intrinsic part is closed-form; the propagated part is one sparse product per block over",
        "the short sellers' contracts. Memory is bounded by the block (10⁷ agent × scenario",
        "cells). The machine is shared: the same 20k/200k/10k run took 7–16 s across runs.",
        "Fast Greedy dominates past ~10⁴ agents, hence Louvain/Leiden for scale.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "risk.md")
    parser.add_argument("--child", choices=("large",), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "large":
        print(json.dumps(large_child()))
        return 0
    info = machine()
    print(f"machine: {info}", flush=True)
    print("paper's case …", flush=True)
    paper = paper_case()
    print(json.dumps(paper, indent=1), flush=True)
    print("large market (child process) …", flush=True)
    child = subprocess.run(
        [sys.executable, __file__, "--child", "large"], capture_output=True, text=True, check=True
    )
    large = json.loads(child.stdout.strip().splitlines()[-1])
    print(json.dumps(large, indent=1), flush=True)
    print("sweep …", flush=True)
    rows = sweep()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(info, paper, large, rows), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
