"""The week's XLSX template (``/api/v1/weeks/{code}/templates/{kind}.xlsx``), styled and locked.

The layout (sheets, columns, pt-BR headers and choice labels) and the rows are
``prudencial.domain.sheets``' (``payloads_to_rows``), the same the enclave parses with
(``enclave_bridge.enclave.xlsx.parse_workbook`` → ``sheets.rows_to_payloads``); this module
only writes them with openpyxl and adds what a person filling the file needs:

- one ``PLA`` row per agent the user may submit for, its acronym and CNPJ filled in and locked;
- data validation on every data column: the week's months (``MAR/2023`` …), operations,
  contract types, the week's energy types, submarkets and the agents' acronyms as lists (from a
  hidden ``Listas`` sheet and the ``PLA`` sheet, so no list is bounded by Excel's 255 characters
  of an inline list), numbers within the JSON Schema's bounds (≥ 0 where the schema says so),
  positions 1..5, text lengths;
- header rows locked: the sheets are protected (no password: the lock prevents slips, it is not
  a secret) with every data cell unlocked, rows may be inserted, deleted and sorted;
- an ``Instruções`` sheet in pt-BR: each column's meaning and unit, the rules, the deadline in
  Brasília time.

The workbook is written in openpyxl's ``write_only`` mode (rows streamed to the file, memory
independent of their number) and bounded: at most ``max_agents()`` agents per file (setting
``PRUDENCIAL_TEMPLATE_MAX_AGENTS``, default 1,000, the batch target of issue 9); a user who
represents more chooses the agents (``?agent=<id>``, repeatable) or gets ``TooManyAgents``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.db.models import QuerySet
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation

from prudencial.domain import formats, sheets
from prudencial.models import Agent, Week
from prudencial.submissions import selectors as submission_selectors
from prudencial.submissions.timefmt import BRASILIA, deadline_text  # noqa: F401 (re-exported)

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DEFAULT_MAX_AGENTS = 1_000
#: Data rows (2 .. 1 + VALIDATED_ROWS) that carry the data validation of their column.
VALIDATED_ROWS = 5_000
SHEET_LISTS = "Listas"

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
_LOCKED = Protection(locked=True)
_UNLOCKED = Protection(locked=False)
_PREFILLED_FILL = PatternFill("solid", fgColor="E7E6E6")

#: What each column means, with its unit (the Instruções sheet and the cells' input prompts).
COLUMN_HELP: dict[str, dict[str, str]] = {
    sheets.SHEET_CONTRACTS: {
        "agent": "Sigla do agente a que a linha pertence (uma das siglas da aba PLA).",
        "bucket": "Mês de entrega do contrato, M+0 a M+6 da semana (ex.: MAR/2023).",
        "side": "Compra ou Venda: compras e vendas em linhas separadas.",
        "contract_type": "Preço fixo, Preço variável ou Derivativo.",
        "energy_type": "Tipo de energia contratada (lista da semana).",
        "submarket": "Submercado de entrega: SE/CO, S, NE ou N.",
        "volume_mwm": "Volume contratado no mês, em MWm (megawatts médios), ≥ 0.",
        "amount_brl": "Valor contratado no mês, em R$, ≥ 0; > 0 quando há volume.",
    },
    sheets.SHEET_FORECASTS: {
        "agent": "Sigla do agente a que a linha pertence (uma das siglas da aba PLA).",
        "bucket": "Mês da previsão, M+0 a M+6 da semana (ex.: MAR/2023).",
        "submarket": "Submercado: SE/CO, S, NE ou N.",
        "energy_type": "Tipo de energia (lista da semana).",
        "generation_mwm": "Previsão de geração no mês, em MWm, ≥ 0.",
        "consumption_mwm": "Previsão de consumo no mês, em MWm, ≥ 0.",
    },
    sheets.SHEET_EQUITY: {
        "agent": "Sigla do agente (preenchida: uma linha por agente que você representa).",
        "cnpj": "CNPJ do agente (preenchido).",
        "equity_brl": "Patrimônio líquido, em R$ (obrigatório no portfólio).",
        "goodwill_net_of_deferred_tax_brl": "Dedução: ágio líquido de impostos diferidos, "
        "em R$, ≥ 0.",
        "intangibles_brl": "Dedução: ativos intangíveis, em R$, ≥ 0.",
        "sector_stakes_brl": "Dedução: participações em empresas do setor elétrico "
        "monitoradas, em R$, ≥ 0.",
        "financial_stakes_brl": "Dedução: participações em entidades financeiras "
        "supervisionadas, em R$, ≥ 0.",
        "tax_credits_brl": "Dedução: créditos tributários, em R$, ≥ 0.",
        "regulated_market_revenue_brl": "Receita do mercado regulado, em R$, ≥ 0.",
    },
    sheets.SHEET_COUNTERPARTIES: {
        "agent": "Sigla do agente que declara a contraparte (uma das siglas da aba PLA).",
        "rank": "Posição da contraparte, 1 a 5, pela soma do MtM M0–M2 (1 = maior).",
        "cnpj": "CNPJ da contraparte (válido, com ou sem máscara; não o do próprio agente).",
        "acronym": "Sigla da contraparte quando é agente da CCEE (a do cadastro); vazia se não é.",
        "mtm_m0_brl": "Marcação a mercado da exposição no mês M0, em R$.",
        "mtm_m1_brl": "Marcação a mercado da exposição no mês M1, em R$.",
        "mtm_m2_brl": "Marcação a mercado da exposição no mês M2, em R$.",
        "mitigation_brl": "Valor mitigado (garantias), em R$, ≥ 0.",
        "mitigants": "Mitigadores, em texto (até 500 caracteres).",
        "volume_m0": "Opcional: volume negociado com a contraparte em M0, em MWm "
        "(+ comprado dela, − vendido a ela).",
        "volume_m1": "Opcional: idem, em M1, em MWm.",
        "volume_m2": "Opcional: idem, em M2, em MWm.",
    },
}


class TemplateUnavailable(Exception):
    """The week cannot have a template yet (it has no parameters: no months, no energy types)."""


class TooManyAgents(Exception):
    def __init__(self, count: int, limit: int):
        super().__init__(count, limit)
        self.count, self.limit = count, limit


@dataclass(frozen=True)
class TemplateWeek:
    """What of a week the template shows: its code, deadline, months and energy types."""

    code: str
    deadline: datetime
    bucket_labels: tuple[str, ...]
    energy_types: tuple[str, ...]

    @classmethod
    def of(cls, week: Week) -> TemplateWeek:
        parameters = getattr(week, "parameters", None)
        if parameters is None:
            raise TemplateUnavailable(week.code)
        return cls(
            code=week.code,
            deadline=week.deadline,
            bucket_labels=sheets.bucket_labels(parameters.first_month),
            energy_types=formats.check_energy_types(parameters.energy_types),
        )


def max_agents() -> int:
    return int(getattr(settings, "PRUDENCIAL_TEMPLATE_MAX_AGENTS", DEFAULT_MAX_AGENTS))


def template_agents(*, user, week: Week, ids: Sequence[int] | None = None) -> QuerySet[Agent]:
    """The agents a template covers: those the user may submit for (guardian
    ``submit_agent_data``) that have an event in the week (active, cadence with an event:
    ``submissions.selectors.eligible_agents``; distributors never), optionally only ``ids``."""
    qs = submission_selectors.eligible_agents(week=week, user=user)
    if ids is not None:
        qs = qs.filter(id__in=ids)
    return qs.order_by("acronym")


# --- validation ------------------------------------------------------------------------------------


def _schema_bounds(types: Sequence[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """(minimum, maximum) of each numeric column, read from the JSON Schemas: one source."""
    portfolio = formats.json_schema("portfolio", types)["properties"]
    counterparties = formats.json_schema("counterparties", types)["properties"]
    contract = portfolio["contracts"]["items"]["properties"]
    forecast = portfolio["forecasts"]["items"]["properties"]
    equity = {
        **portfolio["equity"]["properties"],
        "regulated_market_revenue_brl": portfolio["regulated_market_revenue_brl"],
    }
    party = counterparties["counterparties"]["items"]["properties"]
    volume = party["volume_mwm"]["items"]

    def pick(props: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
        return {
            k: (p["minimum"], p["maximum"])
            for k, p in props.items()
            if isinstance(p, Mapping) and p.get("type") == "number"
        }

    parties = pick(party) | {
        f"volume_m{i}": (volume["minimum"], volume["maximum"]) for i in range(formats.VOLUME_MONTHS)
    }
    return {
        sheets.SHEET_CONTRACTS: pick(contract),
        sheets.SHEET_FORECASTS: pick(forecast),
        sheets.SHEET_EQUITY: pick(equity),
        sheets.SHEET_COUNTERPARTIES: parties,
    }


def _number_text(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else repr(float(value))


def _lists(week: TemplateWeek) -> dict[str, list[str]]:
    """The hidden sheet's lists, one per column (A months, B operations, …)."""
    return {
        "bucket": list(week.bucket_labels),
        "side": list(sheets.SIDE_LABELS.values()),
        "contract_type": list(sheets.CONTRACT_TYPE_LABELS.values()),
        "energy_type": [sheets.energy_type_label(t) for t in week.energy_types],
        "submarket": list(sheets.SUBMARKET_LABELS.values()),
    }


def _range(sheet: str, column: int, first: int, last: int) -> str:
    letter = get_column_letter(column)
    return f"{quote_sheetname(sheet)}!${letter}${first}:${letter}${last}"


def _validations(
    sheet: str,
    week: TemplateWeek,
    *,
    n_agents: int,
    list_ranges: Mapping[str, str],
    bounds: Mapping[str, tuple[float, float]],
) -> list[DataValidation]:
    out: list[DataValidation] = []
    last_row = 1 + VALIDATED_ROWS
    for index, (key, header) in enumerate(sheets.COLUMNS[sheet], start=1):
        letter = get_column_letter(index)
        cells = f"{letter}2:{letter}{last_row}"
        if sheet == sheets.SHEET_EQUITY and key in ("agent", "cnpj"):
            continue  # filled in and locked
        if key == "agent":
            if not n_agents:
                continue
            dv = DataValidation(
                type="list", formula1=_range(sheets.SHEET_EQUITY, 1, 2, 1 + n_agents)
            )
            error = "Use uma das siglas da aba PLA."
        elif key in list_ranges:
            dv = DataValidation(type="list", formula1=list_ranges[key])
            error = "Escolha um valor da lista."
        elif key in bounds:
            low, high = bounds[key]
            dv = DataValidation(
                type="decimal",
                operator="between",
                formula1=_number_text(low),
                formula2=_number_text(high),
            )
            error = "Informe um número ≥ 0." if low == 0 else "Informe um número."
        elif key == "rank":
            dv = DataValidation(
                type="whole",
                operator="between",
                formula1="1",
                formula2=str(formats.MAX_COUNTERPARTIES),
            )
            error = f"Posição de 1 a {formats.MAX_COUNTERPARTIES}."
        elif key == "mitigants":
            dv = DataValidation(
                type="textLength",
                operator="lessThanOrEqual",
                formula1=str(formats.MAX_MITIGANTS_CHARS),
            )
            error = f"Até {formats.MAX_MITIGANTS_CHARS} caracteres."
        else:
            continue  # free text (a counterparty's CNPJ or acronym): checked on validation
        dv.allow_blank = True
        dv.showErrorMessage = True
        dv.errorTitle = header[:32]
        dv.error = error
        dv.showInputMessage = True
        dv.promptTitle = header[:32]
        dv.prompt = COLUMN_HELP[sheet][key][:255]
        dv.add(cells)
        out.append(dv)
    return out


# --- the workbook --------------------------------------------------------------------------------


def instructions(kind: str, week: TemplateWeek) -> list[str]:
    """The Instruções sheet's lines (pt-BR)."""
    title = "Portfólio" if kind == "portfolio" else "Contrapartes"
    lines = [
        f"Modelo de preenchimento — {title} — semana {week.code}",
        f"Prazo: até {deadline_text(week.deadline)} (horário de Brasília). Depois dele a semana "
        "não aceita envios.",
        "Como enviar: criptografe este arquivo para o enclave (cliente prudencial.client ou a "
        "página de envio) e envie-o como lote (um arquivo para vários agentes) ou como o envio "
        "de um agente; nenhuma pessoa nem o servidor da CCEE lê o conteúdo, só o enclave.",
        "Preencha a partir da linha 2; não altere os cabeçalhos (linha 1, bloqueada) nem os "
        "nomes das abas. Linhas vazias são ignoradas.",
        "",
        *sheets.instructions(week.bucket_labels, week.energy_types),
        "",
        "Colunas",
    ]
    for sheet in sheets.SHEETS_BY_KIND[kind] + (
        (sheets.SHEET_EQUITY,) if kind == "counterparties" else ()
    ):
        lines.append(f"Aba {sheet}")
        for key, header in sheets.COLUMNS[sheet]:
            lines.append(f"  {header}: {COLUMN_HELP[sheet][key]}")
    if kind == "counterparties":
        lines.append(
            "Na aba PLA deste modelo só as colunas Sigla e CNPJ do agente contam: o "
            "patrimônio é enviado com o portfólio."
        )
    lines += [
        "",
        "Números: use a célula como número (1234,56), sem o símbolo R$. Valores em R$ e "
        "volumes em MWm (megawatts médios no mês).",
        "Erros de validação indicam a aba, a coluna e a linha do Excel, nunca o valor.",
    ]
    return lines


def _header(ws: Any, values: Sequence[Any]) -> list[WriteOnlyCell]:
    cells = []
    for value in values:
        cell = WriteOnlyCell(ws, value=value)
        cell.font, cell.fill, cell.protection = _HEADER_FONT, _HEADER_FILL, _LOCKED
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        cells.append(cell)
    return cells


def _protect(ws: Any) -> None:
    """Protected sheet: locked cells (the headers, the agents' identities) cannot change;
    rows may still be inserted, deleted, sorted and filtered, and columns resized."""
    p = ws.protection
    p.sheet = True
    p.insertRows = p.deleteRows = p.sort = p.autoFilter = False
    p.formatColumns = p.formatRows = False


def write_template(
    kind: str, *, week: TemplateWeek, agents: Iterable[Mapping[str, str]], out: IO[bytes]
) -> None:
    """Write the ``portfolio`` or ``counterparties`` template for ``agents`` ({acronym, cnpj},
    at most ``max_agents()``) into ``out``."""
    if kind not in formats.KINDS:
        raise ValueError(f"kind must be one of {', '.join(formats.KINDS)}")
    who = [{"acronym": a["acronym"], "cnpj": a["cnpj"]} for a in agents]
    if len(who) > max_agents():
        raise TooManyAgents(len(who), max_agents())
    grid = sheets.payloads_to_rows(
        kind, [], bucket_labels=week.bucket_labels, agents=who, energy_types=week.energy_types
    )
    bounds = _schema_bounds(week.energy_types)
    lists = _lists(week)
    list_ranges = {
        key: _range(SHEET_LISTS, column, 1, len(values))
        for column, (key, values) in enumerate(lists.items(), start=1)
    }

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheets.SHEET_INSTRUCTIONS)
    ws.column_dimensions["A"].width = 130
    for n, line in enumerate(instructions(kind, week)):
        cell = WriteOnlyCell(ws, value=line)
        if n == 0 or line.startswith("Aba ") or line == "Colunas":
            cell.font = Font(bold=True)
        ws.append([cell])
    _protect(ws)

    # The kind's own sheets first, then PLA (a counterparties template's agents' identities);
    # Instruções was written above, with the week's deadline.
    order = [*sheets.SHEETS_BY_KIND[kind], *(s for s in sheets.DATA_SHEETS if s in grid)]
    for name in dict.fromkeys(s for s in order if s in grid):
        rows = grid[name]
        ws = wb.create_sheet(name)
        columns = sheets.COLUMNS[name]
        for index, (key, header) in enumerate(columns, start=1):
            dim = ws.column_dimensions[get_column_letter(index)]
            dim.width = max(14, min(len(header) + 4, 40))
            dim.protection = _UNLOCKED  # empty cells take the column's style
            if key in bounds.get(name, {}):
                dim.number_format = "#,##0.00"
        ws.freeze_panes = "A2"
        for dv in _validations(
            name,
            week,
            n_agents=len(who),
            list_ranges=list_ranges,
            bounds=bounds.get(name, {}),
        ):
            ws.data_validations.append(dv)
        ws.append(_header(ws, rows[0]))
        for row in rows[1:]:
            cells = []
            for (key, _), value in zip(columns, row, strict=True):
                if name == sheets.SHEET_EQUITY and key in ("agent", "cnpj"):
                    cell = WriteOnlyCell(ws, value=value)
                    cell.protection, cell.fill = _LOCKED, _PREFILLED_FILL
                    cells.append(cell)
                else:
                    cells.append(value)
            ws.append(cells)
        _protect(ws)

    ws = wb.create_sheet(SHEET_LISTS)
    ws.sheet_state = "hidden"
    depth = max(len(v) for v in lists.values())
    for i in range(depth):
        ws.append([values[i] if i < len(values) else None for values in lists.values()])
    _protect(ws)
    wb.save(out)
