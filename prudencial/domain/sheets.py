"""The XLSX template's layout and its converters: cell rows ⇄ v2 payloads, per agent.

No openpyxl here (the enclave's ``xlsx.py`` bounds and reads the file, the host's template
writer styles and locks it): this module only says which sheets and columns there are, their
pt-BR headers and choice labels, and turns a sheet's cell rows (row 1 the headers) into the
payloads of ``prudencial.domain.formats`` and back.

Every data sheet has the column ``Sigla do agente``, so one workbook covers many agents:

- ``Contratos``: Mês, Operação, Tipo de contrato, Tipo de energia, Submercado, Volume (MWm),
  Valor (R$) — the ``contracts``;
- ``Previsões``: Mês, Submercado, Tipo de energia, Geração (MWm), Consumo (MWm) — ``forecasts``;
- ``PLA``: CNPJ do agente, Patrimônio líquido and each deduction, Receita do mercado regulado —
  ``equity`` and ``regulated_market_revenue_brl`` (one row per agent);
- ``Contrapartes``: Posição, CNPJ, Sigla, MtM M0/M1/M2, Valor mitigado, Mitigadores, Volume
  M0/M1/M2 — ``counterparties``;
- ``Instruções``: text only.

Months are the week's bucket labels (``MAR/2023``; ``M+n`` is accepted too); choices are their
pt-BR labels (the codes are accepted too). Number fields come out as floats (``formats.normalize``
does the same to a JSON payload, so both canonicalise to the same bytes). Errors are
``{"field", "row", "rule"}`` with the sheet in the field and the Excel row; never a cell's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from prudencial.domain import formats
from prudencial.domain.identifiers import normalize_acronym, normalize_cnpj
from prudencial.domain.market import (
    BUCKET_COUNT,
    SUBMARKETS,
    add_months,
    month_label,
    normalize_submarket,
)

SHEET_CONTRACTS = formats.SHEET_NAMES["contracts"]
SHEET_FORECASTS = formats.SHEET_NAMES["forecasts"]
SHEET_EQUITY = formats.SHEET_NAMES["equity"]
SHEET_COUNTERPARTIES = formats.SHEET_NAMES["counterparties"]
SHEET_INSTRUCTIONS = "Instruções"
DATA_SHEETS = (SHEET_CONTRACTS, SHEET_FORECASTS, SHEET_EQUITY, SHEET_COUNTERPARTIES)
SHEETS = (*DATA_SHEETS, SHEET_INSTRUCTIONS)
SHEETS_BY_KIND = {
    "portfolio": (SHEET_CONTRACTS, SHEET_FORECASTS, SHEET_EQUITY),
    "counterparties": (SHEET_COUNTERPARTIES,),
}

AGENT = ("agent", "Sigla do agente")
#: (key, pt-BR header) in column order, per sheet.
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    SHEET_CONTRACTS: (
        AGENT,
        ("bucket", "Mês"),
        ("side", "Operação"),
        ("contract_type", "Tipo de contrato"),
        ("energy_type", "Tipo de energia"),
        ("submarket", "Submercado"),
        ("volume_mwm", "Volume (MWm)"),
        ("amount_brl", "Valor (R$)"),
    ),
    SHEET_FORECASTS: (
        AGENT,
        ("bucket", "Mês"),
        ("submarket", "Submercado"),
        ("energy_type", "Tipo de energia"),
        ("generation_mwm", "Geração (MWm)"),
        ("consumption_mwm", "Consumo (MWm)"),
    ),
    SHEET_EQUITY: (
        AGENT,
        ("cnpj", "CNPJ do agente"),
        ("equity_brl", "Patrimônio líquido (R$)"),
        ("goodwill_net_of_deferred_tax_brl", "Ágio líquido de impostos diferidos (R$)"),
        ("intangibles_brl", "Ativos intangíveis (R$)"),
        ("sector_stakes_brl", "Participações em empresas do setor monitoradas (R$)"),
        ("financial_stakes_brl", "Participações em entidades financeiras supervisionadas (R$)"),
        ("tax_credits_brl", "Créditos tributários (R$)"),
        ("regulated_market_revenue_brl", "Receita do mercado regulado (R$)"),
    ),
    SHEET_COUNTERPARTIES: (
        AGENT,
        ("rank", "Posição"),
        ("cnpj", "CNPJ"),
        ("acronym", "Sigla"),
        ("mtm_m0_brl", "MtM M0 (R$)"),
        ("mtm_m1_brl", "MtM M1 (R$)"),
        ("mtm_m2_brl", "MtM M2 (R$)"),
        ("mitigation_brl", "Valor mitigado (R$)"),
        ("mitigants", "Mitigadores"),
        ("volume_m0", "Volume M0 (MWm)"),
        ("volume_m1", "Volume M1 (MWm)"),
        ("volume_m2", "Volume M2 (MWm)"),
    ),
}
#: Columns a sheet may omit (their cells count as blank).
OPTIONAL_COLUMNS = {
    SHEET_EQUITY: {"cnpj", "regulated_market_revenue_brl", *formats.DEDUCTION_FIELDS},
    SHEET_COUNTERPARTIES: {"acronym", "mitigants", "volume_m0", "volume_m1", "volume_m2"},
}

SIDE_LABELS = {"purchase": "Compra", "sale": "Venda"}
CONTRACT_TYPE_LABELS = {
    "fixed_price": "Preço fixo",
    "variable_price": "Preço variável",
    "derivative": "Derivativo",
}
ENERGY_TYPE_LABELS = {
    "conventional": "Convencional",
    "conventional_special": "Convencional especial",
    "incentivized_50": "Incentivada 50%",
    "incentivized_80": "Incentivada 80%",
    "incentivized_100": "Incentivada 100%",
    "qualified_cogeneration": "Cogeração qualificada",
}
SUBMARKET_LABELS = {"SE": "SE/CO", "S": "S", "NE": "NE", "N": "N"}


def energy_type_label(code: str) -> str:
    """The pt-BR label of an energy type; a week's own type without one is written as its code."""
    return ENERGY_TYPE_LABELS.get(code, code)


def bucket_labels(first_month: date) -> tuple[str, ...]:
    """MAR/2023 … SET/2023 for a week whose M+0 is ``first_month``."""
    return tuple(month_label(add_months(first_month, i)) for i in range(BUCKET_COUNT))


def labels_of(parameters: Any) -> tuple[str, ...]:
    """The bucket labels of a week's parameters (RiskParameters or its payload)."""
    buckets = parameters["buckets"] if isinstance(parameters, Mapping) else parameters.buckets
    return tuple(b["label"] if isinstance(b, Mapping) else b.label for b in buckets)


def _norm(text: Any) -> str:
    return " ".join(str(text).split()).casefold() if text is not None else ""


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass
class ParsedWorkbook:
    """Payloads by agent acronym, their Excel row maps (``formats.validate(rows=...)``) and
    the errors: ``errors`` for the file (a missing sheet or column), ``agent_errors`` per agent
    (a cell that is no month, choice or number), so one agent's slip refuses that agent only."""

    portfolios: dict[str, dict[str, Any]] = field(default_factory=dict)
    counterparties: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    agent_errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def payloads(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.portfolios if kind == "portfolio" else self.counterparties

    @property
    def agents(self) -> list[str]:
        return sorted({*self.portfolios, *self.counterparties, *self.agent_errors})


class _Cells:
    """Converts one sheet's cells; records value-free errors against the agent of the row."""

    def __init__(
        self, out: ParsedWorkbook, sheet: str, labels: Sequence[str], types: Sequence[str]
    ):
        self.out, self.sheet = out, sheet
        self.months = {_norm(label): i for i, label in enumerate(labels)}
        self.months.update({_norm(f"M+{i}"): i for i in range(BUCKET_COUNT)})
        self.labels = labels
        self.types = types
        self.agent = ""
        self.row = 0

    def fail(self, key: str, rule: str) -> None:
        header = dict(COLUMNS[self.sheet])[key]
        err = {"field": f"sheet {self.sheet} column '{header}'", "row": self.row, "rule": rule}
        self.out.agent_errors.setdefault(self.agent, []).append(err)

    def month(self, key: str, value: Any) -> Any:
        if isinstance(value, datetime | date):
            value = month_label(value)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and float(value).is_integer()
            and 0 <= value < BUCKET_COUNT
        ):
            return int(value)
        found = self.months.get(_norm(value))
        if found is None:
            self.fail(key, f"must be one of the week's months ({', '.join(self.labels)})")
        return found

    def choice(self, key: str, value: Any, labels: Mapping[str, str]) -> Any:
        wanted = _norm(value)
        for code, label in labels.items():
            if wanted in (_norm(code), _norm(label)):
                return code
        self.fail(key, f"must be one of {', '.join(labels.values())}")
        return None

    def submarket(self, key: str, value: Any) -> Any:
        if isinstance(value, str) and normalize_submarket(value.strip()) in SUBMARKETS:
            return normalize_submarket(value.strip())
        return self.choice(key, value, SUBMARKET_LABELS)

    def energy(self, key: str, value: Any) -> Any:
        return self.choice(key, value, {t: energy_type_label(t) for t in self.types})

    def number(self, key: str, value: Any, *, required: bool = False) -> Any:
        if _blank(value):
            if required:
                self.fail(key, "is required")
                return None
            return 0.0
        if isinstance(value, bool):
            self.fail(key, "must be a number")
            return None
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):  # a number typed as text: 1234,56 or 1.234,56 or 1234.56
            text = value.strip().replace(" ", "")
            if "," in text:
                text = text.replace(".", "").replace(",", ".")
            try:
                return float(text)
            except ValueError:
                pass
        self.fail(key, "must be a number")
        return None

    def integer(self, key: str, value: Any) -> Any:
        number = self.number(key, value, required=True)
        if number is None:
            return None
        if not float(number).is_integer():
            self.fail(key, "must be a whole number")
            return None
        return int(number)


def _cnpj(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{int(value):014d}"
    if isinstance(value, str):
        return normalize_cnpj(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read(
    sheet: str, grid: Iterable[Sequence[Any]], out: ParsedWorkbook
) -> list[tuple[int, dict[str, Any]]]:
    """(Excel row, {key: cell}) of a sheet's data rows; the header row maps the columns."""
    columns = COLUMNS[sheet]
    by_header = {_norm(header): key for key, header in columns}
    by_header.update({_norm(key): key for key, _ in columns})
    positions: dict[str, int] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for excel_row, values in enumerate(grid, start=1):
        values = tuple(values)
        if excel_row == 1:
            for col, value in enumerate(values):
                key = by_header.get(_norm(value))
                if key is not None and key not in positions:
                    positions[key] = col
            for key, header in columns:
                if key not in positions and key not in OPTIONAL_COLUMNS.get(sheet, ()):
                    out.errors.append(
                        {
                            "field": f"sheet {sheet} column '{header}'",
                            "row": 1,
                            "rule": "is required",
                        }
                    )
            continue
        if all(_blank(v) for v in values):
            continue
        rows.append(
            (
                excel_row,
                {k: (values[c] if c < len(values) else None) for k, c in positions.items()},
            )
        )
    return rows


def rows_to_payloads(
    kind_or_all: str,
    sheet_rows: Mapping[str, Iterable[Sequence[Any]]],
    *,
    week: str,
    bucket_labels: Sequence[str],
    agents: Mapping[str, str] | None = None,
    energy_types: Sequence[str] = formats.DEFAULT_ENERGY_TYPES,
) -> ParsedWorkbook:
    """The payloads of a workbook's cells, by agent acronym.

    ``sheet_rows``: {sheet name: rows of cell values, row 1 the headers} (every row in order,
    blank ones included, so the Excel row numbers hold). ``kind_or_all``: ``portfolio``,
    ``counterparties`` or ``all``. ``agents`` (acronym → CNPJ), when given, supplies each
    agent's CNPJ (a ``CNPJ do agente`` cell must then agree); otherwise it comes from the PLA
    sheet. The payloads are not validated: ``formats.validate(kind, p, rows=result.rows[(kind,
    acronym)], ...)`` does that, naming the sheet and the Excel row.
    """
    kinds = formats.KINDS if kind_or_all == "all" else (kind_or_all,)
    if not set(kinds) <= set(formats.KINDS):
        raise ValueError("kind_or_all must be portfolio, counterparties or all")
    if len(bucket_labels) != BUCKET_COUNT:
        raise ValueError(f"bucket_labels must list {BUCKET_COUNT} labels")
    types = formats.check_energy_types(energy_types)
    out = ParsedWorkbook()
    needed = {s for k in kinds for s in SHEETS_BY_KIND[k]}
    if "counterparties" in kinds and agents is None:
        needed.add(SHEET_EQUITY)  # the agents' CNPJs
    if kind_or_all == "all":
        needed = {s for s in needed if s in sheet_rows} or needed  # a file may hold one kind
    for sheet in sorted(needed):
        if sheet not in sheet_rows:
            out.errors.append({"field": f"sheet {sheet}", "row": None, "rule": "is required"})
    read = {s: _read(s, sheet_rows[s], out) for s in DATA_SHEETS if s in sheet_rows}
    if out.errors:
        return out

    cells = {s: _Cells(out, s, bucket_labels, types) for s in DATA_SHEETS}

    def agent_of(sheet: str, excel_row: int, row: dict[str, Any]) -> str | None:
        acronym = normalize_acronym(row.get("agent"))
        c = cells[sheet]
        c.agent, c.row = acronym, excel_row
        if not acronym:
            out.errors.append(
                {
                    "field": f"sheet {sheet} column '{AGENT[1]}'",
                    "row": excel_row,
                    "rule": "is required",
                }
            )
            return None
        return acronym

    # PLA: one row per agent (its CNPJ, equity parts, regulated revenue).
    equity_rows: dict[str, tuple[int, dict[str, Any]]] = {}
    for excel_row, row in read.get(SHEET_EQUITY, []):
        acronym = agent_of(SHEET_EQUITY, excel_row, row)
        if acronym is None:
            continue
        if acronym in equity_rows:
            cells[SHEET_EQUITY].fail(
                "agent", f"repeats row {equity_rows[acronym][0]}: one row per agent"
            )
            continue
        equity_rows[acronym] = (excel_row, row)

    def cnpj_of(acronym: str) -> Any:
        declared = equity_rows.get(acronym, (None, {}))[1].get("cnpj")
        declared = None if _blank(declared) else _cnpj(declared)
        if agents is None:
            return declared
        known = agents.get(acronym)
        if declared is not None and known is not None and declared != known:
            c = cells[SHEET_EQUITY]
            c.agent, c.row = acronym, equity_rows[acronym][0]
            c.fail("cnpj", "must be the CNPJ of the agent")
        return known if known is not None else declared

    def new_rows() -> dict[str, Any]:
        return {}

    if "portfolio" in kinds:
        contracts: dict[str, list[dict[str, Any]]] = {}
        forecasts: dict[str, list[dict[str, Any]]] = {}
        rowmaps: dict[str, dict[str, Any]] = {}
        c = cells[SHEET_CONTRACTS]
        for excel_row, row in read.get(SHEET_CONTRACTS, []):
            acronym = agent_of(SHEET_CONTRACTS, excel_row, row)
            if acronym is None:
                continue
            items = contracts.setdefault(acronym, [])
            rowmaps.setdefault(acronym, new_rows()).setdefault("contracts", {})[len(items)] = (
                excel_row
            )
            items.append(
                {
                    "bucket": c.month("bucket", row.get("bucket")),
                    "side": c.choice("side", row.get("side"), SIDE_LABELS),
                    "contract_type": c.choice(
                        "contract_type", row.get("contract_type"), CONTRACT_TYPE_LABELS
                    ),
                    "energy_type": c.energy("energy_type", row.get("energy_type")),
                    "submarket": c.submarket("submarket", row.get("submarket")),
                    "volume_mwm": c.number("volume_mwm", row.get("volume_mwm")),
                    "amount_brl": c.number("amount_brl", row.get("amount_brl")),
                }
            )
        c = cells[SHEET_FORECASTS]
        for excel_row, row in read.get(SHEET_FORECASTS, []):
            acronym = agent_of(SHEET_FORECASTS, excel_row, row)
            if acronym is None:
                continue
            items = forecasts.setdefault(acronym, [])
            rowmaps.setdefault(acronym, new_rows()).setdefault("forecasts", {})[len(items)] = (
                excel_row
            )
            items.append(
                {
                    "bucket": c.month("bucket", row.get("bucket")),
                    "submarket": c.submarket("submarket", row.get("submarket")),
                    "energy_type": c.energy("energy_type", row.get("energy_type")),
                    "generation_mwm": c.number("generation_mwm", row.get("generation_mwm")),
                    "consumption_mwm": c.number("consumption_mwm", row.get("consumption_mwm")),
                }
            )
        c = cells[SHEET_EQUITY]
        with_equity = {
            a
            for a, (_, row) in equity_rows.items()
            if kind_or_all != "all" or not _blank(row.get("equity_brl"))
        }
        for acronym in sorted({*contracts, *forecasts, *with_equity}):
            if acronym not in equity_rows:
                out.agent_errors.setdefault(acronym, []).append(
                    {
                        "field": f"sheet {SHEET_EQUITY}",
                        "row": None,
                        "rule": "must have one row for every agent of the portfolio sheets",
                    }
                )
                continue
            excel_row, row = equity_rows[acronym]
            c.agent, c.row = acronym, excel_row
            equity = {"equity_brl": c.number("equity_brl", row.get("equity_brl"), required=True)}
            for name in formats.DEDUCTION_FIELDS:
                equity[name] = c.number(name, row.get(name))
            rows = rowmaps.setdefault(acronym, new_rows())
            rows.update(equity=excel_row, agent=excel_row, regulated_market_revenue_brl=excel_row)
            out.portfolios[acronym] = {
                "schema": formats.PORTFOLIO_SCHEMA_ID,
                "agent": {"acronym": acronym, "cnpj": cnpj_of(acronym)},
                "week": week,
                "contracts": contracts.get(acronym, []),
                "forecasts": forecasts.get(acronym, []),
                "equity": equity,
                "regulated_market_revenue_brl": c.number(
                    "regulated_market_revenue_brl", row.get("regulated_market_revenue_brl")
                ),
            }
            out.rows[("portfolio", acronym)] = rows

    if "counterparties" in kinds:
        c = cells[SHEET_COUNTERPARTIES]
        declared: dict[str, list[dict[str, Any]]] = {}
        rowmaps = {}
        for excel_row, row in read.get(SHEET_COUNTERPARTIES, []):
            acronym = agent_of(SHEET_COUNTERPARTIES, excel_row, row)
            if acronym is None:
                continue
            items = declared.setdefault(acronym, [])
            rowmaps.setdefault(acronym, {}).setdefault("counterparties", {})[len(items)] = excel_row
            other = normalize_acronym(row.get("acronym"))
            entry = {
                "rank": c.integer("rank", row.get("rank")),
                "cnpj": _cnpj(row.get("cnpj")),
                "acronym": other or None,
                "mtm_m0_brl": c.number("mtm_m0_brl", row.get("mtm_m0_brl")),
                "mtm_m1_brl": c.number("mtm_m1_brl", row.get("mtm_m1_brl")),
                "mtm_m2_brl": c.number("mtm_m2_brl", row.get("mtm_m2_brl")),
                "mitigation_brl": c.number("mitigation_brl", row.get("mitigation_brl")),
                "mitigants": _text(row.get("mitigants")),
            }
            volumes = [row.get(f"volume_m{i}") for i in range(formats.VOLUME_MONTHS)]
            if not all(_blank(v) for v in volumes):
                entry["volume_mwm"] = [c.number(f"volume_m{i}", v) for i, v in enumerate(volumes)]
            items.append(entry)
        for acronym, items in sorted(declared.items()):
            rows = rowmaps[acronym]
            if acronym in equity_rows:
                rows["agent"] = equity_rows[acronym][0]
            out.counterparties[acronym] = {
                "schema": formats.COUNTERPARTIES_SCHEMA_ID,
                "agent": {"acronym": acronym, "cnpj": cnpj_of(acronym)},
                "week": week,
                "counterparties": items,
            }
            out.rows[("counterparties", acronym)] = rows
    return out


def payloads_to_rows(
    kind_or_all: str,
    payloads: Iterable[Mapping[str, Any]],
    *,
    bucket_labels: Sequence[str],
    agents: Iterable[Mapping[str, str]] = (),
    energy_types: Sequence[str] = formats.DEFAULT_ENERGY_TYPES,
) -> dict[str, list[list[Any]]]:
    """The template's cell rows ({sheet: [header row, data rows...]}) for the given payloads
    (portfolio and/or counterparties v2, any agents); ``agents`` ({acronym, cnpj}) adds an
    empty PLA row for each agent not otherwise present, for a blank template."""
    kinds = formats.KINDS if kind_or_all == "all" else (kind_or_all,)
    sheets = [s for k in kinds for s in SHEETS_BY_KIND[k]]
    if "counterparties" in kinds and SHEET_EQUITY not in sheets:
        sheets.append(SHEET_EQUITY)
    grid: dict[str, list[list[Any]]] = {
        s: [[header for _, header in COLUMNS[s]]] for s in DATA_SHEETS if s in sheets
    }
    equity_done: set[str] = set()

    def month(i: int) -> str:
        return bucket_labels[i]

    def add(sheet: str, values: Mapping[str, Any]) -> None:
        grid[sheet].append([values.get(key) for key, _ in COLUMNS[sheet]])

    def equity_row(who: Mapping[str, Any], payload: Mapping[str, Any] | None) -> None:
        if who["acronym"] in equity_done:
            return
        equity_done.add(who["acronym"])
        values = {"agent": who["acronym"], "cnpj": who.get("cnpj")}
        if payload is not None:
            values |= dict(payload["equity"])
            values["regulated_market_revenue_brl"] = payload["regulated_market_revenue_brl"]
        add(SHEET_EQUITY, values)

    items = list(payloads)
    for payload in items:
        acronym = payload["agent"]["acronym"]
        if payload.get("schema") == formats.PORTFOLIO_SCHEMA_ID and "portfolio" in kinds:
            for row in payload["contracts"]:
                add(
                    SHEET_CONTRACTS,
                    {
                        "agent": acronym,
                        "bucket": month(row["bucket"]),
                        "side": SIDE_LABELS[row["side"]],
                        "contract_type": CONTRACT_TYPE_LABELS[row["contract_type"]],
                        "energy_type": energy_type_label(row["energy_type"]),
                        "submarket": SUBMARKET_LABELS[row["submarket"]],
                        "volume_mwm": row["volume_mwm"],
                        "amount_brl": row["amount_brl"],
                    },
                )
            for row in payload["forecasts"]:
                add(
                    SHEET_FORECASTS,
                    {
                        "agent": acronym,
                        "bucket": month(row["bucket"]),
                        "submarket": SUBMARKET_LABELS[row["submarket"]],
                        "energy_type": energy_type_label(row["energy_type"]),
                        "generation_mwm": row["generation_mwm"],
                        "consumption_mwm": row["consumption_mwm"],
                    },
                )
            equity_row(payload["agent"], payload)
    for payload in items:
        acronym = payload["agent"]["acronym"]
        if payload.get("schema") == formats.COUNTERPARTIES_SCHEMA_ID and "counterparties" in kinds:
            for cp in formats.concentration_input(payload):
                values = {"agent": acronym, **cp}
                for i, v in enumerate(cp.get("volume_mwm") or ()):
                    values[f"volume_m{i}"] = v
                add(SHEET_COUNTERPARTIES, values)
            if SHEET_EQUITY in grid and "portfolio" not in kinds:
                equity_row(payload["agent"], None)
    for who in agents:
        if SHEET_EQUITY in grid:
            equity_row(who, None)
    grid[SHEET_INSTRUCTIONS] = [[line] for line in instructions(bucket_labels, energy_types)]
    return grid


def instructions(bucket_labels: Sequence[str], energy_types: Sequence[str]) -> list[str]:
    """The ``Instruções`` sheet's lines (pt-BR)."""
    return [
        "Preenchimento do portfólio e das contrapartes (REN ANEEL 1.072/2023, art. 135-B)",
        "Uma linha por agente em PLA; a coluna 'Sigla do agente' identifica o agente em todas "
        "as abas, de modo que uma planilha pode cobrir vários agentes.",
        f"Mês: {', '.join(bucket_labels)} (M+0 a M+6).",
        f"Operação: {', '.join(SIDE_LABELS.values())}.",
        f"Tipo de contrato: {', '.join(CONTRACT_TYPE_LABELS.values())}.",
        f"Tipo de energia: {', '.join(energy_type_label(t) for t in energy_types)}.",
        f"Submercado: {', '.join(SUBMARKET_LABELS.values())}.",
        "Contratos: uma linha por (mês, operação, tipo de contrato, tipo de energia, "
        "submercado); Valor (R$) > 0 quando Volume (MWm) > 0.",
        "Previsões: uma linha por (mês, submercado, tipo de energia).",
        "PLA = patrimônio líquido − (ágio líquido de impostos diferidos + intangíveis + "
        "participações em empresas do setor monitoradas + participações em entidades "
        "financeiras supervisionadas + créditos tributários); deduções ≥ 0.",
        "Contrapartes: até 5, Posição 1 a n pela soma do MtM M0–M2 (1 = maior); Sigla vazia "
        "quando a contraparte não é agente da CCEE.",
    ]
