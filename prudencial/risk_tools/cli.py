"""Command line: `python -m prudencial.risk_tools simulate …`, `… leverage …`, `… systemic …`
(a demo of the published systemic and tracking answers) and `… pictures …` (drawn from
published answers only)."""

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
from prudencial.risk.market import CLASSES
from prudencial.risk.network import AGENT_COLUMNS, network_risk, network_stress
from prudencial.risk.pld import (
    PLD_LIMITS,
    ContractPriceModel,
    ScenarioModel,
    Scenarios,
    load_pld_csv,
    paper_scenarios,
    pld_history,
)
from prudencial.risk_tools.synthetic import PAPER_CALIBRATION, paper_market, synthetic_market

# Above this many agent × scenario cells the loss-distribution picture re-runs the chunked
# engine for its one agent instead of building the full loss matrices.
FULL_MATRIX_CELLS = 20_000_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m prudencial.risk_tools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="run the network model on a synthetic market")
    sim.add_argument(
        "--agents",
        type=int,
        default=None,
        help="market size, split 60/35/5 %% into CS/GE/CM as the paper's Table 1 (default 1,000)",
    )
    sim.add_argument(
        "--cs", type=int, default=None, help="consumers (CS); overrides --agents split"
    )
    sim.add_argument("--ge", type=int, default=None, help="generators (GE)")
    sim.add_argument("--cm", type=int, default=None, help="traders (CM)")
    sim.add_argument("--contracts", type=int, default=None, help="contracts (default 4 per agent)")
    _calibration_arguments(sim, "the paper's case (600 CS, 350 GE, 50 CM, no --contracts)")
    sim.add_argument("--scenarios", type=int, default=5000, help="PLD bootstrap scenarios")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--pld-csv", type=Path, default=None, help="weekly PLD history (CSV)")
    sim.add_argument(
        "--pld-year", type=int, default=2017, choices=range(2016, 2021), metavar="YEAR",
        help="year (2016–2020) of the shipped SE/CO series, bounded by its floor and cap "
        "(default 2017, the paper's; 2019 and 2020 need --pld-floor and --pld-cap)",
    )  # fmt: skip
    sim.add_argument(
        "--pld-floor", type=float, default=None,
        help="PLD floor (R$/MWh): bounds the scenarios and is the floor stress; default the "
        "year's regulatory floor, or the lowest price of --pld-csv",
    )  # fmt: skip
    sim.add_argument(
        "--pld-cap", type=float, default=None,
        help="PLD cap (R$/MWh), as --pld-floor; default the year's cap or the highest price of "
        "--pld-csv",
    )  # fmt: skip
    _contract_prices_argument(sim)
    sim.add_argument(
        "--risk-convention", choices=("default", "paper_r"), default="default",
        help="how VaR/CVaR are read off the losses: default (L(⌈αN⌉), Acerbi–Tasche) or paper_r "
        "(R's quantile type 7 and the mean of the worst)",
    )  # fmt: skip
    sim.add_argument("--confidence", type=float, default=0.95)
    sim.add_argument("--community", choices=COMMUNITY_METHODS, default="fastgreedy")
    sim.add_argument("--cascade", action="store_true", help="iterate failures to a fixed point")
    sim.add_argument(
        "--failure-probability",
        type=_failure_probability,
        default=None,
        help="each potential failure happens with this probability (Monte Carlo): one number, "
        "per class as CS=0.1,GE=0.3,CM=0.5, or a CSV file with columns agent,probability "
        "(classes or agents not named fail with probability 1)",
    )
    sim.add_argument(
        "--stress-shift", type=float, action="append", default=None,
        help="parallel shift of the PLD in R$/MWh for a stress scenario (repeatable; default ±100)",
    )  # fmt: skip
    sim.add_argument("--lang", choices=("pt", "en"), default="pt", help="picture labels")
    sim.add_argument("--no-plots", action="store_true")
    sim.add_argument("--out", type=Path, required=True, help="output directory")

    syst = sub.add_parser(
        "systemic",
        help="demo: published network, systemic measures and tracking over synthetic weeks",
    )
    syst.add_argument("--agents", type=int, default=1000,
                      help="agents (60/35/5 %% CS/GE/CM; default 1,000, the paper's case)")  # fmt: skip
    _calibration_arguments(syst, "the paper's case (1,000 agents: 600 CS, 350 GE, 50 CM)",
                           weekly=True)  # fmt: skip
    syst.add_argument("--weeks", type=int, default=4, help="consecutive weeks (≥ 1)")
    syst.add_argument(
        "--churn", type=float, default=0.15,
        help="share of contracts replaced from one week to the next (default 0.15)",
    )  # fmt: skip
    syst.add_argument("--scenarios", type=int, default=5000,
                      help="PLD scenarios per week (paper_scenarios, the paper's model)")  # fmt: skip
    _contract_prices_argument(syst)
    syst.add_argument("--seed", type=int, default=1)
    syst.add_argument("--capital-fraction", type=float, default=0.10,
                      help="capital buffer as a share of each agent's expected cost")  # fmt: skip
    syst.add_argument("--community", choices=COMMUNITY_METHODS, default="fastgreedy")
    syst.add_argument("--threshold", type=float, default=0.3, help="Jaccard threshold")
    syst.add_argument("--out", type=Path, required=True, help="output directory")

    pic = sub.add_parser("pictures", help="pictures from published (disclosed) answers only")
    pic.add_argument("--network", type=Path, default=None,
                     help="published network JSON (the enclave's answer or published_network)")  # fmt: skip
    pic.add_argument("--systemic", type=Path, default=None,
                     help="published systemic JSON (or a closing answer with a systemic key)")  # fmt: skip
    pic.add_argument("--tracking", type=Path, default=None, help="tracking JSON")
    pic.add_argument("--weeks", type=Path, nargs="+", default=None,
                     help="published network JSONs of consecutive weeks (each with its week), "
                     "tracked here when --tracking is not given")  # fmt: skip
    pic.add_argument("--threshold", type=float, default=0.3, help="Jaccard threshold (--weeks)")
    pic.add_argument("--panel-agents", default=None,
                     help="comma-separated agents for the panel (default: 3 worst total and 3 "
                     "worst propagated CVaR)")  # fmt: skip
    pic.add_argument("--scenario", default=None, help="systemic scenario of the DebtRank bars")
    pic.add_argument("--lang", choices=("pt", "en", "both"), default="both")
    pic.add_argument("--max-colours", type=int, default=None,
                     help="store the PNGs with a palette of this many colours (≤ 256)")  # fmt: skip
    pic.add_argument("--docs", action="store_true",
                     help="docs/img's stable names (risk-<picture>-<lang>, e.g. "
                     "risk-debtrank-en.png), 256-colour PNGs and SVG only where it stays small "
                     "(DebtRank)")  # fmt: skip
    pic.add_argument("--out", type=Path, required=True, help="output directory")

    lev = sub.add_parser("leverage", help="leverage factor of a portfolio")
    lev.add_argument("portfolio", type=Path, help="portfolio JSON (prudencial/portfolio/v1)")
    lev.add_argument("parameters", type=Path, help="week parameters JSON")
    lev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lev.add_argument("--stress", action="store_true", help="also floor/cap/shifted curves")
    return parser


def _calibration_arguments(parser: argparse.ArgumentParser, case: str, weekly: bool = False):
    """--calibrated (default) / --uncalibrated, as `simulate` and the `systemic` demo take them."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--calibrated", dest="calibrated", action="store_true", default=True,
        help=f"{case} uses the calibrated market, paper_market"
        + (" (every week's replacement contracts too)" if weekly else "")
        + " (default; docs/risk.md, 'Calibrated market')",
    )  # fmt: skip
    group.add_argument(
        "--uncalibrated", dest="calibrated", action="store_false",
        help="the paper's case with synthetic_market's defaults (the earlier market)",
    )  # fmt: skip


def _contract_prices_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--contract-prices", choices=("paper", "fixed"), default="paper",
        help="paper (default): contract prices drawn per scenario within the scenario's PLD "
        "bounds, as the paper does (prudencial.risk.pld.ContractPriceModel); fixed: the traded "
        "prices in every scenario",
    )  # fmt: skip


def _probability(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{where}: {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{where}: probability must be in [0, 1] (got {value:g})")
    return value


def _failure_probability(text: str) -> Any:
    """A number, a per-class mapping (CS=0.1,GE=0.3) or a per-agent CSV (agent,probability)."""
    path = Path(text)
    if path.suffix.lower() == ".csv":
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text}: file not found")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"agent", "probability"} - set(reader.fieldnames or ())
            if missing:
                raise argparse.ArgumentTypeError(
                    f"{text}: columns agent and probability are required "
                    f"(missing {', '.join(sorted(missing))})"
                )
            given = {}
            for line, row in enumerate(reader, start=2):
                agent = (row["agent"] or "").strip()
                if not agent:
                    raise argparse.ArgumentTypeError(f"{text}, line {line}: agent is empty")
                if agent in given:
                    raise argparse.ArgumentTypeError(
                        f"{text}, line {line}: agent {agent} is listed twice"
                    )
                given[agent] = _probability(
                    row["probability"] or "", f"{text}, line {line}, probability"
                )
        if not given:
            raise argparse.ArgumentTypeError(f"{text}: no agents listed")
        return {"by_agent": given}
    if "=" in text:
        by_class = {}
        for item in text.split(","):
            name, sep, value = item.partition("=")
            name = name.strip().upper()
            if not sep or name not in CLASSES:
                raise argparse.ArgumentTypeError(
                    f"{text}: expected CLASS=probability pairs with CLASS in "
                    f"{', '.join(CLASSES)} (got {item!r})"
                )
            try:
                by_class[name] = _probability(value, f"{text}, {name}")
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(
                    f"expected CLASS=probability pairs: {exc}"
                ) from None
        return by_class
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text}: expected a probability, CLASS=p pairs or a CSV"
        ) from None
    return _probability(text, "--failure-probability")


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


def _pld_inputs(args: argparse.Namespace) -> tuple[np.ndarray, float, float, str]:
    """PLD history, floor, cap and where the bounds came from ("given", "regulatory YYYY" or
    "history range": a user's CSV carries no regulatory limits)."""
    given = args.pld_floor is not None or args.pld_cap is not None
    if args.pld_csv is not None:
        history = load_pld_csv(args.pld_csv).values
        floor = float(history.min()) if args.pld_floor is None else args.pld_floor
        cap = float(history.max()) if args.pld_cap is None else args.pld_cap
        source = "given" if given else "history range"
    else:
        known = PLD_LIMITS.get(args.pld_year, (None, None))
        floor = known[0] if args.pld_floor is None else args.pld_floor
        cap = known[1] if args.pld_cap is None else args.pld_cap
        if floor is None or cap is None:
            raise ValueError(
                f"the PLD floor and cap of {args.pld_year} are not on record: "
                "give --pld-floor and --pld-cap"
            )
        history = pld_history(args.pld_year, floor, cap)
        source = "given" if given else f"regulatory {args.pld_year}"
    if not 0.0 <= floor < cap:
        raise ValueError(f"--pld-floor must be ≥ 0 and < --pld-cap (got {floor:g}, {cap:g})")
    return np.clip(history, floor, cap), float(floor), float(cap), source


def _simulate(args: argparse.Namespace) -> int:
    try:
        return _run_simulation(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _is_paper_case(args: argparse.Namespace) -> bool:
    """The paper's case: Table 1's 600/350/50 agents and the default contract count."""
    sizes = (PAPER_CALIBRATION.n_cs, PAPER_CALIBRATION.n_ge, PAPER_CALIBRATION.n_cm)
    return (args.cs, args.ge, args.cm) == sizes and args.contracts is None


def _simulated_market(args: argparse.Namespace, history: np.ndarray, seed: int | None = None):
    """paper_market for the paper's case unless --uncalibrated, synthetic_market otherwise
    (sizes args.cs/ge/cm, args.contracts); `seed` defaults to args.seed. Sets args.calibrated
    to what was drawn."""
    args.calibrated = bool(getattr(args, "calibrated", True)) and _is_paper_case(args)
    seed = args.seed if seed is None else seed
    if args.calibrated:
        return paper_market(seed, pld_history=history)
    return synthetic_market(
        args.cs, args.ge, args.cm, seed=seed, n_contracts=args.contracts, pld_history=history
    )


def _contract_price_model(args: argparse.Namespace) -> ContractPriceModel | None:
    """--contract-prices paper: the paper's per-scenario draw; fixed: the traded prices."""
    return ContractPriceModel() if args.contract_prices == "paper" else None


def _run_simulation(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    history, floor, cap, bounds_source = _pld_inputs(args)
    args.cs, args.ge, args.cm = _market_sizes(args)
    market = _simulated_market(args, history)
    if isinstance(args.failure_probability, dict) and "by_agent" in args.failure_probability:
        given = args.failure_probability["by_agent"]
        unknown = set(given) - set(market.agent_ids)
        if unknown:
            raise SystemExit(f"--failure-probability: unknown agents {sorted(unknown)[:5]}")
        args.failure_probability = np.array([given.get(a, 1.0) for a in market.agent_ids])
    scenarios = ScenarioModel(
        floor=floor, cap=cap, contract_prices=_contract_price_model(args)
    ).draw(args.scenarios, args.seed, history)
    prices = scenarios.pld
    args.out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=args.scenarios, unit="scen", desc="network risk") as bar:
        result = network_risk(
            market,
            scenarios,
            risk_convention=args.risk_convention,
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
            "calibrated": args.calibrated,
            "pld_source": str(args.pld_csv)
            if args.pld_csv
            else f"SE/CO CMO {args.pld_year} bounded by floor and cap",
            "pld_floor": floor,
            "pld_cap": cap,
            "pld_bounds_source": bounds_source,
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
        _pictures(market, result, scenarios, args)
    print(f"wrote {args.out}/agents.csv, agents.xlsx, communities.csv, summary.json")
    print(
        f"{len(rows)} agents, {result.n_communities} communities "
        f"(modularity {result.communities.modularity:.3f}), "
        f"{int(result.propagators.sum())} propagators, timings {result.timings}"
    )
    return 0


def _agent_losses(
    market, prices, args: argparse.Namespace, agent: int, communities=None
) -> np.ndarray:
    """One agent's total loss per scenario, under the run's scenarios (drawn contract prices
    included), failure model, seed and cascade.

    The failure draws are scenario-major, hence identical to network_risk's, so the picture's
    VaR and CVaR are the table's. Large markets re-run the chunked engine keeping this agent's
    series (bounded memory) instead of the full agent × scenario matrices.
    """
    from prudencial.risk.network import exposure_matrices

    drawn = isinstance(prices, Scenarios) and prices.per_scenario_prices
    if drawn or market.n_agents * np.size(getattr(prices, "pld", prices)) > FULL_MATRIX_CELLS:
        if communities is None:
            from prudencial.risk.communities import Communities

            communities = Communities(np.zeros(market.n_agents, dtype=np.int64), 0.0, "none")
        rerun = network_risk(
            market, prices, confidence=args.confidence, cascade=args.cascade,
            failure_probability=args.failure_probability, seed=args.seed,
            keep_agents=[agent], communities=communities,
            risk_convention=getattr(args, "risk_convention", None),
        )  # fmt: skip
        return rerun.kept_losses[agent]["total"]
    matrices = exposure_matrices(
        market, getattr(prices, "pld", prices), cascade=args.cascade, failure_probability=args.failure_probability,
        seed=args.seed,
    )  # fmt: skip
    return matrices.total[agent]


def _pictures(market, result, prices, args: argparse.Namespace) -> None:
    from prudencial.risk_tools import plots

    worst = int(np.argmax(result.cvar_total))
    plots.save_figure(
        plots.plot_trade_network(market, result, lang=args.lang), args.out / "network"
    )
    plots.save_figure(plots.plot_exposure_scatter(result, lang=args.lang), args.out / "exposure")
    losses = _agent_losses(market, prices, args, worst, result.communities)
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
    if args.command == "systemic":
        return _guarded(_systemic_demo, args)
    if args.command == "pictures":
        return _guarded(_published_pictures, args)
    return _simulate(args)


def _guarded(run, args: argparse.Namespace) -> int:
    try:
        return run(args)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _covers(market) -> np.ndarray:
    """Each agent's resource / requirement (0 for an agent without requirement)."""
    cover = np.zeros(market.n_agents)
    requirement = market.requirement
    np.divide(market.resource, requirement, out=cover, where=requirement > 0)
    return cover


def _week_market(
    base, other, churn: float, rng: np.random.Generator, cover: np.ndarray | None = None
):
    """`base` with a share `churn` of its contracts replaced by contracts of `other` (same
    agents): consecutive weeks that resemble each other, so communities can be followed.

    The calibration holds week after week. An agent that trades in `base` keeps one of its
    contracts when the replacement would leave it trading none (agents do not leave the market,
    and the calibrated market has every agent trade: every generator sells, every consumer
    buys). Every agent keeps the share of its needs it covers, `cover` (default `base`'s
    resource / requirement: the calibration's cs_cover, ge_cover and cm_cover; the demo passes
    the first week's, so no agent drifts), set from the week's contracts as synthetic_market
    does: a trader's purchases are scaled to cover · sales (in trader order, so its sales are
    final when it is reached), a generator's purchases to at most cover · sales, then
    consumption = purchases / cover and generation = cover · sales − purchases. (Keeping
    `base`'s energy under another market's contracts would leave some consumers buying thirty
    times what they consume, and traders long.)
    """
    from prudencial.risk.market import Market

    keep = rng.random(base.n_contracts) >= churn
    take = rng.random(other.n_contracts) < churn
    n = base.n_agents
    # Trading as Table 1 has it: a generator sells, a consumer or trader buys or sells.
    sells_or_buys = base.classes != "GE"

    def trading(seller: np.ndarray, buyer: np.ndarray) -> np.ndarray:
        out = np.zeros(n, bool)
        out[seller] = True
        out[buyer[sells_or_buys[buyer]]] = True
        return out

    left = trading(base.seller, base.buyer) & ~trading(
        np.concatenate([base.seller[keep], other.seller[take]]),
        np.concatenate([base.buyer[keep], other.buyer[take]]),
    )
    for c in rng.permutation(np.flatnonzero(~keep)):
        s, b = base.seller[c], base.buyer[c]
        if left[s] or (left[b] and sells_or_buys[b]):
            keep[c] = True
            left[s] = False
            left[b] = left[b] and not sells_or_buys[b]
    seller = np.concatenate([base.seller[keep], other.seller[take]])
    buyer = np.concatenate([base.buyer[keep], other.buyer[take]])
    volume = np.concatenate([base.volume[keep], other.volume[take]])
    cover = _covers(base) if cover is None else np.asarray(cover, dtype=float)
    # A trader buys from traders after it in the order only, so its sales are final here.
    for a in np.flatnonzero(base.classes == "CM"):
        bought = buyer == a
        sold = volume[seller == a].sum()
        if cover[a] > 0 and sold > 0 and bought.any():
            volume[bought] *= cover[a] * sold / volume[bought].sum()
    # A generator buying more than its cover of its sales is scaled down to it (generation 0),
    # as synthetic_market caps a generator's purchases, so it does not turn long; repeated
    # while a cut trims another generator's sales (volumes only shrink, a few rounds do).
    generator = (base.classes == "GE") & (cover > 0)
    for _ in range(50):
        purchases = np.bincount(buyer, weights=volume, minlength=n)
        sales = np.bincount(seller, weights=volume, minlength=n)
        over = generator & (sales > 0) & (purchases > cover * sales * (1 + 1e-12))
        if not over.any():
            break
        ge_buys = over[buyer]
        volume[ge_buys] *= (cover * sales)[buyer[ge_buys]] / purchases[buyer[ge_buys]]
    purchases = np.bincount(buyer, weights=volume, minlength=n)
    sales = np.bincount(seller, weights=volume, minlength=n)
    consumption, generation = base.consumption.copy(), base.generation.copy()
    cs = (base.classes == "CS") & (purchases > 0) & (cover > 0)
    consumption[cs] = purchases[cs] / cover[cs]
    ge = (base.classes == "GE") & (sales > 0) & (cover > 0)
    generation[ge] = np.maximum(0.0, cover[ge] * sales[ge] - purchases[ge])
    return Market(
        agent_ids=list(base.agent_ids), classes=base.classes, generation=generation,
        consumption=consumption, seller=seller, buyer=buyer, volume=volume,
        price=np.concatenate([base.price[keep], other.price[take]]),
    )  # fmt: skip


def _systemic_demo(args: argparse.Namespace) -> int:
    """Synthetic weeks → what the enclave would publish: network.<week>.json (published
    network), systemic.json (published systemic measures of the last week), tracking.json, and
    summary.json (how the demo drew its market and scenarios; not a published answer).

    The paper's case (1,000 agents) is the calibrated market, paper_market(seed), unless
    --uncalibrated; each later week w (from 0) replaces a share --churn of the contracts by
    those of another calibrated market, paper_market(seed + 1000 + w), of the same agents
    (_week_market keeps every agent trading and at the first week's cover). Every week's
    scenarios are the paper's, paper_scenarios(2017, --scenarios, seed + w): contract
    prices drawn per scenario unless --contract-prices fixed. The systemic measures take the
    last week's PLD scenarios (their high and low quantiles) with the contracts at their traded
    prices: systemic_measures prices a stress PLD, not a Scenarios object.
    """
    from enclave_bridge.enclave.disclosure import published_network, published_systemic
    from prudencial.risk.systemic import systemic_measures
    from prudencial.risk.tracking import track_communities

    if args.weeks < 1 or args.agents < 3:
        raise ValueError("--weeks must be ≥ 1 and --agents ≥ 3")
    if not 0.0 <= args.churn <= 1.0:
        raise ValueError(f"--churn must be in [0, 1] (got {args.churn:g})")
    args.cs, args.ge = round(args.agents * 0.60), round(args.agents * 0.35)
    args.cm, args.contracts = max(0, args.agents - args.cs - args.ge), None
    floor, cap = PLD_LIMITS[2017]
    history = pld_history(2017, floor, cap)
    rng = np.random.default_rng(args.seed)
    market = _simulated_market(args, history)
    cover = _covers(market)  # every week keeps the first week's covers (the calibration's)
    args.out.mkdir(parents=True, exist_ok=True)
    weeks, rows = [], []
    for w in range(args.weeks):
        other_seed = None
        if w:
            other_seed = args.seed + 1000 + w
            other = _simulated_market(args, history, seed=other_seed)
            market = _week_market(market, other, args.churn, rng, cover)
        code = f"2017{1 + w // 4:02d}{1 + w % 4:03d}"
        scenarios = paper_scenarios(history, args.scenarios, seed=args.seed + w, floor=floor,
                                    cap=cap, contract_prices=_contract_price_model(args))  # fmt: skip
        result = network_risk(market, scenarios, community_method=args.community, seed=args.seed)
        network = {"week": code, **published_network(result)}
        (args.out / f"network.{code}.json").write_text(
            json.dumps(network, ensure_ascii=False), encoding="utf-8"
        )
        weeks.append((code, {row["agent"]: row["community"] for row in network["agents"]}))
        rows.append({
            "week": code, "market_seed": args.seed, "replacements_seed": other_seed,
            "scenario_seed": args.seed + w, "n_contracts": market.n_contracts,
            **{k: network[k] for k in ("n_communities", "modularity", "n_isolated",
                                       "n_propagators")},
        })  # fmt: skip
    systemic = systemic_measures(
        market, scenarios.pld, options={"capital_fraction": args.capital_fraction}
    )
    (args.out / "systemic.json").write_text(
        json.dumps({"week": weeks[-1][0], **published_systemic(systemic)}, ensure_ascii=False),
        encoding="utf-8",
    )
    tracking = track_communities(weeks, threshold=args.threshold).to_dict()
    (args.out / "tracking.json").write_text(json.dumps(tracking, ensure_ascii=False),
                                            encoding="utf-8")  # fmt: skip
    summary = {
        "market": {
            "n_cs": args.cs, "n_ge": args.ge, "n_cm": args.cm, "seed": args.seed,
            "calibrated": args.calibrated,
            "generator": "paper_market" if args.calibrated else "synthetic_market",
            "churn": args.churn,
        },
        "scenario_model": scenarios.model,
        "contract_prices": args.contract_prices,
        "community_method": args.community,
        "threshold": args.threshold,
        "systemic": {"week": weeks[-1][0], "capital_fraction": args.capital_fraction,
                     "pld": "the week's scenarios (high and low quantile), contracts at their "
                     "traded prices"},
        "weeks": rows,
    }  # fmt: skip
    (args.out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    market_name = "calibrated paper_market" if args.calibrated else "synthetic_market"
    prices = "drawn per scenario" if args.contract_prices == "paper" else "fixed (traded)"
    print(f"wrote {args.out}: network.<week>.json for {len(weeks)} weeks, systemic.json, "
          f"tracking.json, summary.json ({market_name}, contract prices {prices}; "
          f"communities {', '.join(str(r['n_communities']) for r in rows)}; "
          f"systemic in {systemic.timings['total']:.2f}s)")  # fmt: skip
    return 0


def _load_published(path: Path, key: str | None = None) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if key is not None and isinstance(data.get(key), dict):
        return data[key]
    return data


def _default_panel(network: dict[str, Any]) -> list[str]:
    rows = network.get("agents", [])
    worst = sorted(rows, key=lambda r: -float(r.get("cvar_total") or 0.0))[:3]
    spread = sorted(rows, key=lambda r: -float(r.get("cvar_propagated") or 0.0))[:3]
    return list(dict.fromkeys(r["agent"] for r in [*worst, *spread]))


# `pictures --docs`: the stable names of docs/img and the pictures also written as SVG (the
# others hold a marker per agent, a band per flow or a table of glyphs: their SVG is 3–7 times
# the 256-colour PNG, for no gain on the page).
DOCS_PICTURES = {
    "fig5_exposure": "risk-published-exposure",
    "fig6_communities": "risk-published-communities",
    "fig7_panel": "risk-published-panel",
    "community_evolution": "risk-community-evolution",
    "debtrank": "risk-debtrank",
}
DOCS_SVG = ("debtrank",)


def _published_pictures(args: argparse.Namespace) -> int:
    """Figs. 5–7, the community evolution and DebtRank from published JSON files."""
    from prudencial.risk.tracking import track_communities
    from prudencial.risk_tools import plots

    if not any((args.network, args.systemic, args.tracking, args.weeks)):
        raise ValueError("give at least one of --network, --systemic, --tracking, --weeks")
    if args.max_colours is not None and not 2 <= args.max_colours <= 256:
        raise ValueError(f"--max-colours must be in 2..256 (got {args.max_colours})")
    network = _load_published(args.network) if args.network else None
    systemic = _load_published(args.systemic, "systemic") if args.systemic else None
    tracking = _load_published(args.tracking) if args.tracking else None
    if tracking is None and args.weeks:
        weeks = []
        for path in args.weeks:
            data = _load_published(path)
            if not isinstance(data.get("week"), str):
                raise ValueError(f"{path}: a published network with its week is required")
            weeks.append((data["week"], {r["agent"]: r.get("community") for r in data["agents"]}))
        tracking = track_communities(weeks, threshold=args.threshold).to_dict()
    if network is None and args.weeks:
        network = _load_published(args.weeks[-1])
    panel = (
        [a.strip() for a in args.panel_agents.split(",") if a.strip()]
        if args.panel_agents
        else (_default_panel(network) if network else [])
    )
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for lang in ("pt", "en") if args.lang == "both" else (args.lang,):
        figures = []
        if network is not None:
            figures += [
                ("fig5_exposure", plots.plot_published_exposure(network, lang=lang)),
                ("fig6_communities", plots.plot_published_communities(network, lang=lang)),
                ("fig7_panel", plots.plot_published_panel(network, panel, lang=lang)),
            ]
        if tracking is not None:
            figures.append(("community_evolution",
                            plots.plot_community_evolution(tracking, lang=lang)))  # fmt: skip
        if systemic is not None:
            figures.append(("debtrank", plots.plot_debtrank(systemic, scenario=args.scenario,
                                                             lang=lang)))  # fmt: skip
        for name, fig in figures:
            if args.docs:
                formats = ("png", "svg") if name in DOCS_SVG else ("png",)
                written += plots.save_figure(fig, args.out / f"{DOCS_PICTURES[name]}-{lang}",
                                             formats, max_colours=args.max_colours or 256)  # fmt: skip
            else:
                written += plots.save_figure(fig, args.out / f"{name}_{lang}",
                                             max_colours=args.max_colours)  # fmt: skip
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
