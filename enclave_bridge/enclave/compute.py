"""Batch computation: decrypt + validate every envelope (process pool), then FA, concentration
and the network model over a market built from the batch.

Market built from a batch (documented in docs/enclave.md):

- nodes: the agents whose portfolio was accepted, identified by acronym; network class (CS/GE/CM)
  from the registry class the host sends in ``agent.class``, through
  ``prudencial.domain.market.network_class`` (an item without a class, with an unknown one or
  with a distributor's is refused whole, naming the item and the agent);
- horizon: buckets M+0..M+(H−1) (H = ``network.horizon_buckets``, default 3 — the months the
  counterparty declarations cover); energy = MWm × the bucket's hours;
- edges: each declared counterparty volume (``volume_mwm``: + bought from, − sold to) whose
  counterparty is another agent in the batch becomes seller → buyer MWh; when both sides declare
  the same pair, the larger declaration counts (no double counting). Counterparties outside the
  batch are not nodes; their volumes stay in the agent's own residual (next point);
- generation / consumption: what is left of the declared net position once in-batch trades are
  taken out, r = (resource − requirement) − (purchases − sales): generation = max(r, 0),
  consumption = max(−r, 0), so every agent keeps exactly its declared net position;
- price of an edge: the seller's average sale price over the horizon (Σ sales amount_brl / Σ
  sold MWh), else the buyer's average purchase price, else the mean SE forward price of the
  horizon;
- PLD scenarios: ``bootstrap_pld`` over the week parameters' ``pld_history``, the weekly prices the host sends
  (required: never a packaged series in its place), clipped to the week's PLD floor and cap.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import numpy as np

from enclave_bridge.wire.protocol import E_BAD_REQUEST, E_INTERNAL, ProtocolError
from prudencial.domain.errors import DomainError
from prudencial.domain.parameters import check_week_parameters
from prudencial.domain.payloads import BatchAgent

from .checks import check_agents, check_chunk, init_worker
from .disclosure import published_network
from .keys import KeyRing
from .network_input import agent_input, market_from_inputs
from .reply import reply_key_of

logger = logging.getLogger(__name__)

INLINE_LIMIT = 32  # below this many envelopes the pool's IPC costs more than it saves
MAX_SCENARIOS = 20_000
NETWORK_KEYS = {
    "scenarios",
    "seed",
    "community_method",
    "confidence",
    "cascade",
    "failure_probability",
    "horizon_buckets",
    "weeks_per_scenario",
    "block_length",
    "circular",
    "contract_prices",
    "risk_convention",
    "systemic",
    "tracking",
}
# network.systemic (closing_network only): SystemicOptions' public fields plus ``enabled``.
# ``capital`` is not among them: it is per agent, in R$, and only the enclave could know it;
# nor ``reference_pld``: the measures take the network model's own reference prices.
SYSTEMIC_KEYS = {
    "enabled",
    "confidence",
    "sides",
    "pld",
    "capital_fraction",
    "netting",
    "intrinsic",
    "debtrank",
    "cover2_candidates",
    "top",
    "max_rounds",
    "tolerance",
    "batch_cells",
}
MAX_SYSTEMIC_PRICE = 100_000.0  # R$/MWh: a stress PLD above this is no price of the SIN
MAX_SYSTEMIC_SCENARIOS = 8  # named stress prices in network.systemic.pld
MAX_COVER2_CANDIDATES = 100  # cover-2 costs K(K − 1)/2 DebtRank runs
MAX_SYSTEMIC_TOP = 100
MAX_SYSTEMIC_ROUNDS = 100_000
MAX_BATCH_CELLS = 20_000_000  # agents × shocks per DebtRank batch (8 bytes a cell)


class CheckPool:
    """A process pool whose workers hold the current key ring; rebuilt when keys change.

    A worker that dies (the kernel's OOM killer on a hostile split, a crash in a native library)
    breaks the whole executor: every later task would fail with ``BrokenProcessPool``. The pool
    is then dropped (its surviving workers are terminated by the executor itself), the request
    is refused with ``internal_error`` (no content quoted) and the next call builds a new pool.
    The work is never re-run in the server process: the input that killed a worker would take
    the server down with it, and the server's interpreter lock would stall every connection.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._keys_id: int | None = None
        self.lost = 0  # pools dropped after a worker died

    def _executor(self, keys: KeyRing) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None or self._keys_id != id(keys):
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=get_context("forkserver"),
                    initializer=init_worker,
                    initargs=(keys.to_cbor(), os.getpid()),
                )
                self._keys_id = id(keys)
            return self._pool

    def _drop(self, pool: ProcessPoolExecutor, exc: BaseException) -> ProtocolError:
        """Forget a broken pool (only if it is still the current one: a concurrent request may
        have dropped it and built the next) and return the refusal to raise."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self._keys_id = None
                self.lost += 1
                logger.error(
                    "process pool broken (%s): dropped, rebuilt on next use", type(exc).__name__
                )
        pool.shutdown(wait=False, cancel_futures=True)
        return ProtocolError(
            E_INTERNAL, "an enclave worker process was lost while processing the request; retry"
        )

    def warm(self, keys: KeyRing) -> None:
        """Start the workers now (after unlock) so the first batch does not pay for it; a pool
        that breaks while warming is dropped (the next call builds another)."""
        pool = self._executor(keys)
        try:
            list(pool.map(_noop, range(self.workers)))
        except BrokenProcessPool as exc:
            self._drop(pool, exc)

    def check(
        self,
        keys: KeyRing,
        items: list[tuple[int, dict[str, Any], Any, Any]],
        parameters: Any,
        request_id: Any = None,
    ) -> list[dict[str, Any]]:
        """check_agents over the pool (inline for small batches), results in input order."""
        if len(items) < INLINE_LIMIT:
            return check_agents(keys, items, parameters, request_id=request_id)
        pool = self._executor(keys)
        size = max(8, min(128, len(items) // (self.workers * 8) or 1))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        out: list[dict[str, Any]] = []
        n = len(chunks)
        try:
            for part in pool.map(check_chunk, chunks, [parameters] * n, [request_id] * n):
                out.extend(part)
        except BrokenProcessPool as exc:
            raise self._drop(pool, exc) from None
        return out

    def run(self, keys: KeyRing, fn: Any, *args: Any) -> Any:
        """One task in a worker process, which holds the key ring and its own interpreter lock:
        for work that would otherwise hold the request process's lock for seconds (a batch
        file's split), so the other connections' validations keep being answered."""
        pool = self._executor(keys)
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool as exc:
            raise self._drop(pool, exc) from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _noop(_: int) -> None:
    return None


def parse_parameters(parameters: Any) -> Any:
    """Week parameters (public) through the domain's check, the one the host runs when it saves
    them and opens the week (prudencial.domain.parameters); errors name the field."""
    try:
        return check_week_parameters(parameters)
    except DomainError as exc:
        raise ProtocolError(E_BAD_REQUEST, f"week parameters: {exc}") from exc


def parse_items(raw: Any) -> list[dict[str, Any]]:
    """Shape-check compute items: {agent: {acronym, cnpj[, class]}, portfolio, counterparties}."""
    if not isinstance(raw, list):
        raise ProtocolError(E_BAD_REQUEST, "items must be a list")
    items = []
    for n, item in enumerate(raw):
        agent = item.get("agent") if isinstance(item, dict) else None
        if not (
            isinstance(agent, dict)
            and isinstance(agent.get("acronym"), str)
            and isinstance(agent.get("cnpj"), str)
        ):
            raise ProtocolError(E_BAD_REQUEST, f"items[{n}].agent must have acronym and cnpj")
        try:
            who = BatchAgent.from_dict(agent, f"items[{n}].agent")
        except DomainError as exc:
            raise ProtocolError(E_BAD_REQUEST, str(exc)) from exc
        if not isinstance(item.get("portfolio"), str):
            raise ProtocolError(E_BAD_REQUEST, f"items[{n}].portfolio must be a JWE (text)")
        cps = item.get("counterparties")
        if cps is not None and not isinstance(cps, str):
            raise ProtocolError(E_BAD_REQUEST, f"items[{n}].counterparties must be a JWE or null")
        items.append(
            {
                "agent": {
                    "acronym": agent["acronym"],
                    "cnpj": agent["cnpj"],
                    "class": who.agent_class,
                    "network_class": who.network_class,
                },
                "portfolio": item["portfolio"],
                "counterparties": cps,
            }
        )
    return items


def check_batch(
    pool: CheckPool,
    keys: KeyRing,
    items: list[dict[str, Any]],
    parameters: Any,
    request_id: Any = None,
) -> list[dict[str, Any]]:
    """Decrypt, validate and compute FA + concentration for each item (enclave memory only);
    `request_id` goes into the log line of any failure caught on the way."""
    work = [
        (n, item["agent"], item["portfolio"], item["counterparties"])
        for n, item in enumerate(items)
    ]
    entries = pool.check(keys, work, parameters, request_id)
    for item, entry in zip(items, entries, strict=True):
        entry["agent"] = item["agent"]
        if "portfolio" in entry["payloads"]:  # the reply key of a closing's breakdown
            entry["reply"] = reply_key_of(item["portfolio"])
    return entries


def mark_duplicates(entries: list[dict[str, Any]]) -> None:
    """An agent twice in one batch: keep the first, refuse the others (no silent overwrite)."""
    seen: set[str] = set()
    for entry in entries:
        acronym = entry["agent"]["acronym"]
        if acronym in seen:
            entry["payloads"].clear()
            entry["leverage"] = entry["concentration"] = None
            entry["error"] = {
                "code": "duplicate_agent",
                "message": "agent appears twice in the batch",
            }
        seen.add(acronym)


def public_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        item = {
            "agent": {k: v for k, v in entry["agent"].items() if v is not None},
            "portfolio": entry["verdicts"].get("portfolio"),
            "counterparties": entry["verdicts"].get("counterparties"),
            "leverage": entry["leverage"],
            "concentration": entry["concentration"],
        }
        if "error" in entry:
            item["error"] = entry["error"]
        out.append(item)
    return out


def build_market(
    entries: list[dict[str, Any]], parameters: Any, horizon: int
) -> tuple[Any, dict[str, int]]:
    """The batch's trade network as a risk-engine Market (see the module docstring): the
    accepted agents' network inputs (network_input.agent_input), edges from their
    counterparties declarations."""
    inputs = [agent_input(e, parameters) for e in entries if "portfolio" in e["payloads"]]
    return market_from_inputs(inputs, parameters, horizon)


def parse_network(args: Any, *, systemic: bool = False) -> dict[str, Any]:
    """The network options, every one checked (unknown keys refused by name). ``systemic``:
    the op computes the systemic measures (closing_network), so ``network.systemic`` is taken
    (``_systemic_options``; absent = enabled with the defaults); elsewhere it is refused."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError(E_BAD_REQUEST, "network must be a map")
    unknown = sorted(set(args) - NETWORK_KEYS)
    if unknown:
        raise ProtocolError(E_BAD_REQUEST, f"network has unknown option(s): {', '.join(unknown)}")
    for closing_only in ("systemic", "tracking"):
        if not systemic and closing_only in args:
            raise ProtocolError(
                E_BAD_REQUEST, f"network.{closing_only} is an option of closing_network only"
            )
    scenarios = args.get("scenarios", 1000)
    if (
        isinstance(scenarios, bool)
        or not isinstance(scenarios, int)
        or not 1 <= scenarios <= MAX_SCENARIOS
    ):
        raise ProtocolError(
            E_BAD_REQUEST, f"network.scenarios must be an integer in 1..{MAX_SCENARIOS}"
        )
    horizon = args.get("horizon_buckets", 3)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= 7:
        raise ProtocolError(E_BAD_REQUEST, "network.horizon_buckets must be an integer in 1..7")
    out = dict(
        args,
        scenarios=scenarios,
        horizon_buckets=horizon,
        contract_prices=_contract_prices(args.get("contract_prices", "paper")),
        risk_convention=_risk_convention(args.get("risk_convention", "default")),
    )
    if systemic:
        out["systemic"] = _systemic_options(args.get("systemic"), args.get("confidence"))
        out["tracking"] = _tracking_options(args.get("tracking"))
    return out


def _tracking_options(value: Any) -> dict[str, float]:
    """network.tracking: ``{"threshold": Jaccard index in (0, 1]}`` linking a community of last
    week to one of this week (default ``TRACKING_THRESHOLD``, 0.3, docs/systemic.md); unknown
    keys refused by name."""
    from .network_measures import TRACKING_THRESHOLD

    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ProtocolError(E_BAD_REQUEST, "network.tracking must be a map")
    unknown = sorted(set(value) - {"threshold"})
    if unknown:
        raise ProtocolError(
            E_BAD_REQUEST, f"network.tracking has unknown option(s): {', '.join(unknown)}"
        )
    threshold = value.get("threshold", TRACKING_THRESHOLD)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or not 0.0 < threshold <= 1.0
    ):
        raise ProtocolError(E_BAD_REQUEST, "network.tracking.threshold must be a number in (0, 1]")
    return {"threshold": float(threshold)}


def _number(value: Any, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (low < value if open_low else low <= value)
        or not value <= high
    ):
        bounds = f"({low:g}, {high:g}]" if open_low else f"{low:g}..{high:g}"
        raise ProtocolError(E_BAD_REQUEST, f"network.systemic.{name} must be a number in {bounds}")
    return float(value)


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(
            E_BAD_REQUEST, f"network.systemic.{name} must be an integer in {low}..{high}"
        )
    return value


def _systemic_options(value: Any, network_confidence: Any = None) -> dict[str, Any]:
    """network.systemic: ``{"enabled": bool (default true), ...SystemicOptions' public
    fields}``, each checked here with the rest of the options (unknown keys refused by name,
    numbers range-checked), so the engine never sees a value the closing could not use.
    ``confidence`` defaults to the network's own (else SystemicOptions' 0.95); ``pld`` absent:
    the stress prices are the week's scenarios' ``confidence`` quantiles (high and low).
    Returns ``{"enabled": bool, "options": {...}}`` (options: SystemicOptions keywords)."""
    from prudencial.risk.systemic import DEBTRANK_METHODS, QUANTILE_SIDES

    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ProtocolError(E_BAD_REQUEST, "network.systemic must be a map")
    if "capital" in value:
        raise ProtocolError(
            E_BAD_REQUEST,
            "network.systemic.capital is not an option: capital is capital_fraction × each "
            "agent's expected cost, computed inside the enclave",
        )
    if "reference_pld" in value:
        raise ProtocolError(
            E_BAD_REQUEST,
            "network.systemic.reference_pld is not an option: the systemic measures use the "
            "network model's own reference prices",
        )
    unknown = sorted(set(value) - SYSTEMIC_KEYS)
    if unknown:
        raise ProtocolError(
            E_BAD_REQUEST, f"network.systemic has unknown option(s): {', '.join(unknown)}"
        )
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ProtocolError(E_BAD_REQUEST, "network.systemic.enabled must be true or false")
    options: dict[str, Any] = {}
    if "confidence" in value:
        options["confidence"] = _number(
            value["confidence"], "confidence", 0.0, 0.9999, open_low=True
        )
    elif (
        isinstance(network_confidence, int | float)
        and not isinstance(network_confidence, bool)
        and 0 < network_confidence < 1
    ):
        options["confidence"] = float(network_confidence)  # the network model's own
    if "sides" in value:
        sides = value["sides"]
        if (
            not isinstance(sides, list)
            or not sides
            or len(set(map(str, sides))) != len(sides)
            or not all(isinstance(s, str) and s in QUANTILE_SIDES for s in sides)
        ):
            raise ProtocolError(
                E_BAD_REQUEST,
                f"network.systemic.sides must be a non-empty list of distinct {QUANTILE_SIDES}",
            )
        options["sides"] = tuple(sides)
    if value.get("pld") is not None:
        options["pld"] = _stress_prices(value["pld"])
    if "capital_fraction" in value:
        options["capital_fraction"] = _number(
            value["capital_fraction"], "capital_fraction", 0.0, 10.0, open_low=True
        )
    for name in ("netting", "intrinsic"):
        if name in value:
            if not isinstance(value[name], bool):
                raise ProtocolError(E_BAD_REQUEST, f"network.systemic.{name} must be true or false")
            options[name] = value[name]
    if "debtrank" in value:
        if value["debtrank"] not in DEBTRANK_METHODS:
            raise ProtocolError(
                E_BAD_REQUEST,
                f"network.systemic.debtrank must be one of {', '.join(DEBTRANK_METHODS)}",
            )
        options["debtrank"] = value["debtrank"]
    for name, low, high in (
        ("cover2_candidates", 2, MAX_COVER2_CANDIDATES),
        ("top", 1, MAX_SYSTEMIC_TOP),
        ("max_rounds", 1, MAX_SYSTEMIC_ROUNDS),
        ("batch_cells", 1, MAX_BATCH_CELLS),
    ):
        if name in value:
            options[name] = _integer(value[name], name, low, high)
    if "tolerance" in value:
        options["tolerance"] = _number(value["tolerance"], "tolerance", 0.0, 1e-3, open_low=True)
    return {"enabled": enabled, "options": options}


def _stress_prices(value: Any) -> float | dict[str, float]:
    """network.systemic.pld: one stress PLD (R$/MWh) or {name: PLD} of 1 to 8 named ones."""
    if isinstance(value, dict):
        if not 0 < len(value) <= MAX_SYSTEMIC_SCENARIOS or not all(
            isinstance(k, str) and 0 < len(k) <= 32 and k.isidentifier() for k in value
        ):
            raise ProtocolError(
                E_BAD_REQUEST,
                f"network.systemic.pld must name 1 to {MAX_SYSTEMIC_SCENARIOS} scenarios "
                "(identifiers of up to 32 characters)",
            )
        return {k: _number(v, f"pld.{k}", 0.0, MAX_SYSTEMIC_PRICE) for k, v in value.items()}
    return _number(value, "pld", 0.0, MAX_SYSTEMIC_PRICE)


def _risk_convention(value: Any) -> str:
    """network.risk_convention: "default" (VaR = L(⌈αN⌉), Acerbi–Tasche CVaR) or "paper_r"
    (R's quantile type 7 and the mean of the worst ⌊N(1 − α)⌋: what the paper's R code gives)."""
    if value not in ("default", "paper_r"):
        raise ProtocolError(E_BAD_REQUEST, 'network.risk_convention must be "default" or "paper_r"')
    return value


def _contract_prices(value: Any) -> Any:
    """network.contract_prices: "paper" (the default: prices drawn per scenario as the paper
    does, prudencial.risk.pld.ContractPriceModel's defaults), "fixed" (the traded prices in
    every scenario) or {"draw": "history" | "uniform", "lower": x, "upper": y} (fractions of
    the scenario's PLD). Returns the model, or None for fixed."""
    from prudencial.risk.pld import ContractPriceModel

    if value == "fixed":
        return None
    if value == "paper":
        return ContractPriceModel()
    if not isinstance(value, dict) or set(value) - {"draw", "lower", "upper"}:
        raise ProtocolError(
            E_BAD_REQUEST,
            'network.contract_prices must be "paper", "fixed" or a map of draw, lower, upper',
        )
    for name in ("lower", "upper"):
        bound = value.get(name, 0.0)
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not 0 <= bound <= 10:
            raise ProtocolError(
                E_BAD_REQUEST, f"network.contract_prices.{name} must be a number in 0..10"
            )
    try:
        return ContractPriceModel(**value)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(E_BAD_REQUEST, f"network.contract_prices: {exc}") from None


def run_network(
    entries: list[dict[str, Any]], parameters: Any, options: dict[str, Any]
) -> dict[str, Any]:
    """Network risk over the batch's market; returns the engine's summary plus market counts."""

    started = time.perf_counter()
    market, counts = build_market(entries, parameters, options["horizon_buckets"])
    return run_market(market, counts, parameters, options, started=started)


def run_market(
    market: Any,
    counts: dict[str, int],
    parameters: Any,
    options: dict[str, Any],
    *,
    started: float | None = None,
    raw: bool = False,
) -> Any:
    """network_risk over a built market: the published summary (with ``market`` counts), or
    a ``skipped`` reason; ``raw`` also returns the engine's result and the PLD scenarios it
    ran on (for the closing's systemic measures: the same reference prices, the scenarios'
    quantiles as stress prices), as ``(summary, result or None, scenarios or None)``."""
    from prudencial.risk.network import network_risk
    from prudencial.risk.pld import ScenarioModel

    started = time.perf_counter() if started is None else started
    if counts["agents"] < 2:
        skipped = {"market": counts, "skipped": "fewer than two accepted portfolios in the batch"}
        return (skipped, None, None) if raw else skipped
    history = parameters.pld_history
    if history is None:
        # The week's price history is a week parameter; a packaged series in its place would
        # give figures of another market without saying so. FA and concentration still stand.
        skipped = {
            "market": counts,
            "skipped": "the week's parameters have no pld_history: network model not computed",
        }
        return (skipped, None, None) if raw else skipped
    seed = options.get("seed")
    try:
        model = ScenarioModel(
            weeks_per_scenario=options.get("weeks_per_scenario", 1),
            block_length=options.get("block_length", 1),
            circular=bool(options.get("circular", False)),
            floor=parameters.pld_floor,
            cap=parameters.pld_cap,
            contract_prices=options.get("contract_prices"),
        )
        scenarios = model.draw(options["scenarios"], seed, np.asarray(history, dtype=float))
        kwargs = {
            k: options[k]
            for k in (
                "confidence",
                "community_method",
                "cascade",
                "failure_probability",
                "risk_convention",
            )
            if k in options
        }
        result = network_risk(market, scenarios, seed=seed, **kwargs)
    except (ValueError, TypeError) as exc:
        # Options are public, but the engine may also describe the market: say only what failed.
        raise ProtocolError(
            E_BAD_REQUEST, "network options were refused by the risk engine"
        ) from exc
    summary = published_network(result)
    summary["market"] = counts
    summary["pld_source"] = "host"
    logger.info(
        "network model: %d agents, %d contracts, %d scenarios in %.2fs",
        counts["agents"],
        counts["contracts"],
        options["scenarios"],
        time.perf_counter() - started,
    )
    return (summary, result, scenarios) if raw else summary
