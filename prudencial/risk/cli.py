"""Command line: `python -m prudencial.risk simulate …` and `python -m prudencial.risk leverage …`."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prudencial.risk.communities import COMMUNITY_METHODS
from prudencial.risk.leverage import LeverageResult, leverage_factor, leverage_stress
from prudencial.risk.market import synthetic_market
from prudencial.risk.network import AGENT_COLUMNS, network_risk, network_stress
from prudencial.risk.pld import PLD_LIMITS, bootstrap_pld, load_pld_csv, pld_history_2017


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m prudencial.risk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="run the network model on a synthetic market")
    sim.add_argument(
        "--agents",
        type=int,
        default=None,
        help="market size, split 60/35/5 % into CS/GE/CM as the paper's Table 1 (default 1,000)",
    )
    sim.add_argument(
        "--cs", type=int, default=None, help="consumers (CS); overrides --agents split"
    )
    sim.add_argument("--ge", type=int, default=None, help="generators (GE)")
    sim.add_argument("--cm", type=int, default=None, help="traders (CM)")
    sim.add_argument("--contracts", type=int, default=None, help="contracts (default 4 per agent)")
    sim.add_argument("--scenarios", type=int, default=5000, help="PLD bootstrap scenarios")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--pld-csv", type=Path, default=None, help="weekly PLD history (CSV)")
    sim.add_argument("--confidence", type=float, default=0.95)
    sim.add_argument("--community", choices=COMMUNITY_METHODS, default="fastgreedy")
    sim.add_argument("--cascade", action="store_true", help="iterate failures to a fixed point")
    sim.add_argument(
        "--failure-probability",
        type=_failure_probability,
        default=None,
        help="each potential failure happens with this probability (Monte Carlo): one number, "
        "per class as CS=0.1,GE=0.3,CM=0.5, or a CSV file with columns agent,probability",
    )
    sim.add_argument(
        "--stress-shift", type=float, action="append", default=None,
        help="parallel shift of the PLD in R$/MWh for a stress scenario (repeatable; default ±100)",
    )  # fmt: skip
    sim.add_argument("--lang", choices=("pt", "en"), default="pt", help="picture labels")
    sim.add_argument("--no-plots", action="store_true")
    sim.add_argument("--out", type=Path, required=True, help="output directory")

    lev = sub.add_parser("leverage", help="leverage factor of a portfolio")
    lev.add_argument("portfolio", type=Path, help="portfolio JSON (prudencial/portfolio/v1)")
    lev.add_argument("parameters", type=Path, help="week parameters JSON")
    lev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lev.add_argument("--stress", action="store_true", help="also floor/cap/shifted curves")
    return parser


def _failure_probability(text: str) -> Any:
    """A number, a per-class mapping (CS=0.1,GE=0.3) or a per-agent CSV (agent,probability)."""
    path = Path(text)
    if path.suffix.lower() == ".csv":
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text}: file not found")
        with path.open(newline="", encoding="utf-8") as handle:
            return {
                "by_agent": {
                    row["agent"]: float(row["probability"]) for row in csv.DictReader(handle)
                }
            }
    if "=" in text:
        try:
            pairs = (item.split("=", 1) for item in text.split(","))
            return {cls.strip().upper(): float(value) for cls, value in pairs}
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: expected CLASS=probability pairs") from None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text}: expected a probability, CLASS=p pairs or a CSV"
        ) from None


def _market_sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    """--cs/--ge/--cm when given, else --agents split as Table 1 (600/350/50 of 1,000)."""
    total = args.agents if args.agents is not None else 1000
    cs = args.cs if args.cs is not None else round(total * 0.60)
    ge = args.ge if args.ge is not None else round(total * 0.35)
    cm = (
        args.cm
        if args.cm is not None
        else max(0, total - round(total * 0.60) - round(total * 0.35))
    )
    return cs, ge, cm


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc}") from None


def _money(value: float) -> str:
    return f"{value:>18,.2f}"


def _leverage_table(result: LeverageResult) -> str:
    lines = [
        f"{'bucket':<10}{'MtM (R$)':>18}{'exposure (R$)':>18}{'VaR (R$)':>18}{'stress (R$)':>18}"
    ]
    for b in result.buckets:
        label = b.label or f"M+{b.index}"
        lines.append(
            f"{label:<10}{_money(b.mtm_total)}{_money(b.exposure)}{_money(b.var)}"
            f"{_money(b.extra_risk)}"
        )
    fa = "—" if result.fa is None else f"{result.fa:.4f}"
    fa_risk = "—" if result.fa_risk is None else f"{result.fa_risk:.4f}"
    lines += [
        "",
        f"z = {result.z:.7f}, horizon factor = {result.horizon_factor:.6f} "
        f"(netting {result.netting}, σ {result.sigma_period}, K {result.k:g}, θ {result.theta:g})",
        f"VaR_total   {_money(result.var_total)}",
        f"extra risk  {_money(result.extra_risk)}",
        f"RWA         {_money(result.rwa)}",
        f"RES_FIN     {_money(result.res_fin)}",
        f"PLA         {_money(result.pla)}",
        f"FA_risk     {fa_risk:>18}",
        f"FA          {fa:>18}",
    ]
    if result.reason:
        lines.append(f"note: {result.reason}")
    return "\n".join(lines)


def _leverage(args: argparse.Namespace) -> int:
    portfolio = _read_json(args.portfolio)
    parameters = _read_json(args.parameters)
    try:
        if args.stress:
            results = leverage_stress(portfolio, parameters)
        else:
            results = {"base": leverage_factor(portfolio, parameters)}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        payload = (
            results["base"].to_dict()
            if len(results) == 1
            else {name: r.to_dict() for name, r in results.items()}
        )
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        for name, result in results.items():
            if len(results) > 1:
                print(f"== {name}")
            print(_leverage_table(result))
    return 0


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def _write_xlsx(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "agents"
    sheet.append(list(columns))
    for row in rows:
        sheet.append([row[c] for c in columns])
    book.save(path)


def _simulate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.pld_csv is not None:
        history = load_pld_csv(args.pld_csv).values
        floor, cap = float(history.min()), float(history.max())
    else:
        history = pld_history_2017()
        floor, cap = PLD_LIMITS[2017]
    args.cs, args.ge, args.cm = _market_sizes(args)
    market = synthetic_market(
        args.cs, args.ge, args.cm, seed=args.seed, n_contracts=args.contracts, pld_history=history
    )
    if isinstance(args.failure_probability, dict) and "by_agent" in args.failure_probability:
        given = args.failure_probability["by_agent"]
        unknown = set(given) - set(market.agent_ids)
        if unknown:
            raise SystemExit(f"--failure-probability: unknown agents {sorted(unknown)[:5]}")
        args.failure_probability = np.array([given.get(a, 1.0) for a in market.agent_ids])
    prices = bootstrap_pld(history, args.scenarios, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=args.scenarios, unit="scen", desc="network risk") as bar:
        result = network_risk(
            market,
            prices,
            confidence=args.confidence,
            community_method=args.community,
            cascade=args.cascade,
            failure_probability=args.failure_probability,
            seed=args.seed,
            keep_agents=[],
            progress=bar.update,
        )
    rows = result.per_agent_table()
    _write_csv(args.out / "agents.csv", rows, AGENT_COLUMNS)
    _write_xlsx(args.out / "agents.xlsx", rows, AGENT_COLUMNS)
    communities = [c.to_dict() for c in sorted(result.community_table, key=lambda c: c.rank)]
    if communities:
        _write_csv(args.out / "communities.csv", communities, list(communities[0]))
    mean = float(prices.mean())
    stress = network_stress(
        market,
        {
            "pld_floor": floor,
            "pld_cap": cap,
            **{
                f"shift_{shift:+g}": max(0.0, mean + shift)
                for shift in (args.stress_shift or [-100.0, 100.0])
            },
        },
        cascade=args.cascade,
    )
    summary = {
        **result.summary(),
        "market": {
            "n_cs": args.cs,
            "n_ge": args.ge,
            "n_cm": args.cm,
            "n_contracts": market.n_contracts,
            "seed": args.seed,
            "pld_source": str(args.pld_csv) if args.pld_csv else "SE/CO CMO 2017 clipped (paper)",
        },
        "stress": {
            name: {k: v for k, v in s.items() if not isinstance(v, np.ndarray)}
            for name, s in stress.items()
        },
    }
    (args.out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    if not args.no_plots:
        _pictures(market, result, prices, args)
    print(f"wrote {args.out}/agents.csv, agents.xlsx, communities.csv, summary.json")
    print(
        f"{len(rows)} agents, {result.n_communities} communities "
        f"(modularity {result.communities.modularity:.3f}), "
        f"{int(result.propagators.sum())} propagators, timings {result.timings}"
    )
    return 0


def _agent_losses(market, prices, args: argparse.Namespace, agent: int) -> np.ndarray | None:
    """One agent's total loss per scenario, under the run's failure model, seed and cascade.

    The failure draws are scenario-major, hence identical to network_risk's, so the picture's
    VaR and CVaR are the table's. None when the full agent × scenario array would be too big.
    """
    from prudencial.risk.network import exposure_matrices

    if market.n_agents * prices.size > 20_000_000:
        return None
    matrices = exposure_matrices(
        market, prices, cascade=args.cascade, failure_probability=args.failure_probability,
        seed=args.seed,
    )  # fmt: skip
    return matrices.total[agent]


def _pictures(market, result, prices, args: argparse.Namespace) -> None:
    from prudencial.risk import plots

    worst = int(np.argmax(result.cvar_total))
    plots.save_figure(
        plots.plot_trade_network(market, result, lang=args.lang), args.out / "network"
    )
    plots.save_figure(plots.plot_exposure_scatter(result, lang=args.lang), args.out / "exposure")
    losses = _agent_losses(market, prices, args, worst)
    if losses is not None:
        plots.save_figure(
            plots.plot_loss_distribution(
                losses, args.confidence, agent=market.agent_ids[worst], lang=args.lang
            ),
            args.out / "loss_distribution",
        )
    # The three worst totals and the three worst propagated exposures.
    top = list(
        dict.fromkeys(
            [*np.argsort(-result.cvar_total)[:3], *np.argsort(-result.cvar_propagated)[:3]]
        )
    )
    plots.save_figure(plots.plot_agent_panel(result, top, lang=args.lang), args.out / "panel")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "leverage":
        return _leverage(args)
    return _simulate(args)
