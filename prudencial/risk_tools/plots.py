"""Pictures of the network model (paper Figs. 5–7) and of an agent's loss distribution.

Matplotlib with the Agg backend (no display in the enclave or on servers). Labels are in
Portuguese by default (`lang="pt"`), English with `lang="en"`. Figures show losses as
percentages of the expected cost, negative as in the paper (an exposure).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import igraph as ig  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from prudencial.domain.market import NETWORK_CLASSES  # noqa: E402
from prudencial.risk.communities import trade_graph  # noqa: E402
from prudencial.risk.market import Market  # noqa: E402
from prudencial.risk.network import NetworkRiskResult  # noqa: E402

LABELS: dict[str, dict[str, str]] = {
    "pt": {
        "network_title": "Rede de comercialização: comunidades e propagadores",
        "network_note": (
            "{k} comunidades, modularidade {q}; cada comunidade disposta à parte; "
            "{shown} de {m} ligações desenhadas (as de maior volume)"
        ),
        "isolated": "{n} agentes sem volume contratado",
        "isolated_agent": "isolado",
        "legend_title": "Comunidades por CVaR propagado médio",
        "legend_community": "{rank}º: {n} agentes, {cvar}",
        "legend_other": "demais comunidades",
        "legend_propagator": "propagador de exposição",
        "scatter_title": "Exposição intrínseca × propagada (CVaR, % do custo esperado)",
        "intrinsic": "CVaR intrínseco",
        "propagated": "CVaR propagado",
        "long": "posição longa",
        "balanced": "equilibrado",
        "short": "posição curta",
        "no_exposure": "sem exposição recebida",
        "loss_title": "Distribuição de perdas de {agent}",
        "loss_axis": "perda (% do custo esperado)",
        "frequency": "cenários",
        "var": "VaR {p}",
        "cvar": "CVaR {p}",
        "panel_title": "Painel de risco: visão local e visão global",
        "panel_note": (
            "Exposições em % do custo esperado de cada agente, negativas = perda (como no "
            "artigo); VaR e CVaR sobre os {worst} piores cenários de {n}. Risco sistêmico: "
            "energia não entregue ao agente no pior cenário. CVaR médio da rede: CVaR "
            "propagado médio da comunidade; posição 1 = maior exposição."
        ),
        "agent": "Agente",
        "var_intrinsic": "VaR\nintrínseco",
        "cvar_intrinsic": "CVaR\nintrínseco",
        "var_propagated": "VaR\npropagado",
        "cvar_propagated": "CVaR\npropagado",
        "var_total": "VaR\ntotal",
        "cvar_total": "CVaR\ntotal",
        "systemic": "Risco sistêmico\n(MWh)",
        "community_mean": "CVaR médio\nda rede",
        "position": "Posição\nna rede",
        "of": "de",
        "local": "Visão local",
        "global": "Visão global",
    },
    "en": {
        "network_title": "Trade network: communities and propagators",
        "network_note": (
            "{k} communities, modularity {q}; each community laid out on its own; "
            "{shown} of {m} links drawn (largest volumes)"
        ),
        "isolated": "{n} agents without traded volume",
        "isolated_agent": "isolated",
        "legend_title": "Communities by mean propagated CVaR",
        "legend_community": "#{rank}: {n} agents, {cvar}",
        "legend_other": "other communities",
        "legend_propagator": "exposure propagator",
        "scatter_title": "Intrinsic × propagated exposure (CVaR, % of expected cost)",
        "intrinsic": "Intrinsic CVaR",
        "propagated": "Propagated CVaR",
        "long": "long position",
        "balanced": "balanced",
        "short": "short position",
        "no_exposure": "no exposure received",
        "loss_title": "Loss distribution of {agent}",
        "loss_axis": "loss (% of expected cost)",
        "frequency": "scenarios",
        "var": "VaR {p}",
        "cvar": "CVaR {p}",
        "panel_title": "Risk panel: local and global view",
        "panel_note": (
            "Exposures in % of each agent's expected cost, negative = loss (as in the paper); "
            "VaR and CVaR over the worst {worst} of {n} scenarios. Systemic risk: energy not "
            "delivered to the agent in the worst scenario. Network mean CVaR: the community's "
            "mean propagated CVaR; position 1 = most exposed."
        ),
        "agent": "Agent",
        "var_intrinsic": "Intrinsic\nVaR",
        "cvar_intrinsic": "Intrinsic\nCVaR",
        "var_propagated": "Propagated\nVaR",
        "cvar_propagated": "Propagated\nCVaR",
        "var_total": "Total\nVaR",
        "cvar_total": "Total\nCVaR",
        "systemic": "Systemic risk\n(MWh)",
        "community_mean": "Network mean\nCVaR",
        "position": "Network\nposition",
        "of": "of",
        "local": "Local view",
        "global": "Global view",
    },
}


def _labels(lang: str) -> dict[str, str]:
    if lang not in LABELS:
        raise ValueError(f"lang must be one of {', '.join(LABELS)} (got {lang!r})")
    return LABELS[lang]


MINUS = "\u2212"


def _number(value: float, digits: int = 0, lang: str = "pt") -> str:
    """A number with thousands separators: pt-BR "−1.163,5", English "−1,163.5".

    A value that rounds to zero is shown without a sign (no "−0").
    """
    value = float(value)
    if abs(value) < 0.5 * 10.0**-digits:
        value = 0.0
    text = f"{abs(value):,.{digits}f}"
    if lang == "pt":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return (MINUS if value < 0 else "") + text


def _percent(fraction: float, digits: int = 0, lang: str = "pt") -> str:
    """A fraction as a percentage: pt-BR "−2,54 %", English "−2.54%"."""
    return _number(100.0 * fraction, digits, lang) + ("\u00a0%" if lang == "pt" else "%")


def _axis_formatter(lang: str, digits: int | None = None) -> FuncFormatter:
    """Tick labels in the language's number format (decimal comma in Portuguese)."""

    def fmt(value: float, _pos: int) -> str:
        d = digits
        if d is None:
            d = 0 if float(value).is_integer() else (1 if round(value, 1) == value else 2)
        return _number(value, d, lang)

    return FuncFormatter(fmt)


def save_figure(
    fig: Figure,
    path: str | Path,
    formats: tuple[str, ...] = ("png", "svg"),
    *,
    max_colours: int | None = None,
) -> list[Path]:
    """Write the figure as PNG and SVG next to each other (path without suffix).

    `max_colours` (≤ 256) stores the PNG with a palette of that many colours (median cut, no
    dithering): a picture drops to a third to a half of its size with no visible change, which
    keeps the pictures committed to the docs small. (Pillow's fast octree, used before, moves
    light greys and white by up to 8 levels: white backgrounds came out grey.)
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        # No date and fixed element ids in the SVG, so a regenerated picture differs only
        # where the picture does.
        metadata = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context({"svg.hashsalt": "prudencial"}):
            fig.savefig(target, dpi=110, bbox_inches="tight", metadata=metadata)
        if fmt == "png" and max_colours is not None:
            from PIL import Image

            with Image.open(target) as image:
                rgb = image.convert("RGB")
            rgb.quantize(
                colors=max(2, min(int(max_colours), 256)), method=Image.Quantize.MEDIANCUT,
                dither=Image.Dither.NONE,
            ).save(target, optimize=True)  # fmt: skip
        written.append(target)
    plt.close(fig)
    return written


def _community_layout(
    graph: ig.Graph, membership: np.ndarray, isolated: np.ndarray, seed: int
) -> tuple[np.ndarray, dict[int, tuple[float, float, float]], tuple[float, float, float]]:
    """Community-grouped layout: each community laid out on its own (Fruchterman–Reingold) in a
    disc of radius ∝ √size, discs packed in rows from the largest; isolated agents in a grid
    aside. Returns coordinates, {community: (x, y, radius)} and the isolated block (x, y, width).
    """
    rng = np.random.default_rng(seed)
    xy = np.zeros((graph.vcount(), 2))
    groups = {int(c): np.flatnonzero((membership == c) & ~isolated) for c in np.unique(membership)}
    groups = {c: g for c, g in groups.items() if g.size}
    order = sorted(groups, key=lambda c: (-groups[c].size, c))
    radius = {c: np.sqrt(groups[c].size) for c in order}
    gap = 1.0
    row_width = max(
        np.sqrt(sum((2 * r + gap) ** 2 for r in radius.values())) * 1.15,
        2 * max(radius.values(), default=1.0) + gap,
    )
    discs: dict[int, tuple[float, float, float]] = {}
    x = y = row_height = 0.0
    for c in order:
        r = radius[c]
        if x > 0 and x + 2 * r > row_width:
            x, y, row_height = 0.0, y - row_height - gap, 0.0
        cx, cy = x + r, y - r
        members = groups[c]
        if members.size == 1:
            local = np.zeros((1, 2))
        else:
            sub = graph.subgraph(members.tolist())
            start = rng.random((members.size, 2)).tolist()
            local = np.asarray(
                sub.layout_fruchterman_reingold(weights=None, seed=start, niter=500).coords
            )
            local -= local.mean(axis=0)
            local /= max(float(np.linalg.norm(local, axis=1).max()), 1e-12)
        xy[members] = (cx, cy) + 0.92 * r * local
        discs[c] = (cx, cy, r)
        x += 2 * r + gap
        row_height = max(row_height, 2 * r)
    bottom = y - row_height - 2 * gap
    lone = np.flatnonzero(isolated)
    width = min(row_width, max(1.0, 1.2 * np.sqrt(max(lone.size, 1)) * 2))
    per_row = max(1, int(np.ceil(np.sqrt(max(lone.size, 1) * 3))))
    step = width / per_row
    for i, a in enumerate(lone):
        xy[a] = (step * (i % per_row + 0.5), bottom - step * (i // per_row + 0.5))
    return xy, discs, (0.0, bottom, width)


def _community_legend(
    ax, entries: list[tuple[Any, int, int, float]], other_colour: Any, text: dict, lang: str
) -> None:
    """The legend of the community pictures: one entry per (colour, rank, size, mean propagated
    CVaR) community, then "other communities" and "propagator"."""
    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=7, color=colour,
               label=text["legend_community"].format(
                   rank=rank, n=_number(size, 0, lang), cvar=_percent(-mean_cvar, 2, lang)))
        for colour, rank, size, mean_cvar in entries
    ]  # fmt: skip
    handles += [
        Line2D([], [], marker="o", linestyle="", markersize=7, color=other_colour,
               label=text["legend_other"]),
        Line2D([], [], marker="o", linestyle="", markersize=8, color="white",
               markeredgecolor="#222222", label=text["legend_propagator"]),
    ]  # fmt: skip
    ax.legend(handles=handles, title=text["legend_title"], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, title_fontsize=9, frameon=False)  # fmt: skip


def plot_trade_network(
    market: Market,
    result: NetworkRiskResult,
    *,
    lang: str = "pt",
    max_edges: int = 3000,
    max_bridges: int = 150,
    n_legend: int = 10,
    seed: int = 0,
) -> Figure:
    """Fig. 6: the trade graph grouped by community, readable at thousands of agents.

    Each community is laid out separately (Fruchterman–Reingold) in its own disc, discs sized
    by √members and packed from the largest; agents without any traded volume are grouped
    aside. Edges inside communities are drawn up to `max_edges` (heaviest first), between
    communities only the `max_bridges` heaviest. The `n_legend` communities with the highest
    mean propagated CVaR get their own colour and a legend entry (rank, size, mean CVaR);
    the rest are drawn in muted tones. Propagators (agents that fail in some scenario) are
    larger, with a dark outline.
    """
    text = _labels(lang)
    graph = trade_graph(market)
    membership = np.asarray(result.community)
    strength = np.asarray(graph.strength(weights="weight")) if graph.ecount() else None
    isolated = np.zeros(graph.vcount(), bool) if strength is None else strength <= 0
    xy, discs, lone_block = _community_layout(graph, membership, isolated, seed)

    rank = {c.community: c.rank for c in result.community_table}
    mean_prop = {c.community: c.mean_cvar_propagated for c in result.community_table}
    size = {c.community: c.size for c in result.community_table}
    ranked = [c for c in sorted(discs, key=lambda c: rank[c]) if size[c] > 1][:n_legend]
    palette = plt.get_cmap("tab10")
    colour_of = {c: palette(i % 10) for i, c in enumerate(ranked)}
    muted = ("#b9c3cc", "#c9bfb3", "#bfc8b8", "#c4b9c9")
    node_colour = np.array(
        [
            colour_of.get(int(c), matplotlib.colors.to_rgba(muted[int(c) % len(muted)]))
            for c in membership
        ]
    ).reshape(-1, 4)
    node_colour[isolated] = matplotlib.colors.to_rgba("#9a9a9a")

    fig, ax = plt.subplots(figsize=(12, 9))
    shown = 0
    if graph.ecount():
        edges = np.asarray(graph.get_edgelist())
        weights = np.asarray(graph.es["weight"])
        inside = membership[edges[:, 0]] == membership[edges[:, 1]]
        heavy = np.argsort(-weights, kind="stable")
        intra = heavy[inside[heavy]][:max_edges]
        bridges = heavy[~inside[heavy]][:max_bridges]
        shown = int(intra.size + bridges.size)
        if bridges.size:
            ax.add_collection(
                LineCollection(xy[edges[bridges]], colors="#8a8a8a", linewidths=0.35,
                               alpha=0.25, zorder=1)
            )  # fmt: skip
        if intra.size:
            top = weights[intra].max()
            ax.add_collection(
                LineCollection(
                    xy[edges[intra]], colors=node_colour[edges[intra, 0]],
                    linewidths=0.25 + 1.0 * np.sqrt(weights[intra] / top), alpha=0.45, zorder=2,
                )
            )  # fmt: skip
    propagators = np.asarray(result.propagators)
    order = np.argsort(propagators, kind="stable")  # propagators on top
    ax.scatter(
        xy[order, 0], xy[order, 1], s=np.where(propagators, 46.0, 9.0)[order],
        c=node_colour[order], linewidths=np.where(propagators, 0.7, 0.0)[order],
        edgecolors="#222222", zorder=3,
    )  # fmt: skip
    for c in ranked:
        cx, cy, r = discs[c]
        ax.text(cx, cy + r * 1.02, f"{rank[c]}º" if lang == "pt" else f"#{rank[c]}",
                ha="center", va="bottom", fontsize=8, weight="bold", zorder=4)  # fmt: skip
    lone = int(isolated.sum())
    if lone:
        x0, y0, width = lone_block
        ax.text(x0, y0 + 0.3, text["isolated"].format(n=_number(lone, 0, lang)),
                ha="left", va="bottom", fontsize=8, color="#555555")  # fmt: skip

    _community_legend(
        ax, [(colour_of[c], rank[c], size[c], mean_prop[c]) for c in ranked], muted[0], text, lang
    )
    ax.set_title(text["network_title"])
    ax.text(
        0.0, -0.02,
        text["network_note"].format(
            k=result.n_communities, q=_number(result.communities.modularity, 3, lang),
            shown=_number(shown, 0, lang),
            m=_number(int(graph.ecount()), 0, lang),
        ),
        transform=ax.transAxes, fontsize=8, va="top",
    )  # fmt: skip
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.autoscale_view()
    ax.margins(0.02, 0.05)  # room for the rank labels above the top row
    return fig


def plot_exposure_scatter(result: NetworkRiskResult, *, lang: str = "pt") -> Figure:
    """Fig. 5: intrinsic against propagated CVaR per agent, coloured by initial position."""
    text = _labels(lang)
    fig, ax = plt.subplots(figsize=(8, 6))
    net = result.net_mwh
    tolerance = 0.02 * np.maximum(np.abs(net).max(initial=0.0), 1.0)
    hit = result.received_max_mwh > 0
    x, y = -100 * result.cvar_intrinsic, -100 * result.cvar_propagated
    ax.scatter(x[~hit], y[~hit], s=6, c="#bbbbbb", label=text["no_exposure"])
    for mask, colour, label in (
        (net > tolerance, "#2ca02c", text["long"]),
        (np.abs(net) <= tolerance, "#e6c229", text["balanced"]),
        (net < -tolerance, "#d62728", text["short"]),
    ):
        m = mask & hit
        ax.scatter(x[m], y[m], s=12, c=colour, label=label)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlabel(text["intrinsic"] + " (%)")
    ax.set_ylabel(text["propagated"] + " (%)")
    ax.xaxis.set_major_formatter(_axis_formatter(lang))
    ax.yaxis.set_major_formatter(_axis_formatter(lang))
    ax.set_title(text["scatter_title"])
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_loss_distribution(
    losses: np.ndarray,
    confidence: float = 0.95,
    *,
    agent: str = "",
    lang: str = "pt",
) -> Figure:
    """Histogram of an agent's losses over the scenarios with VaR and CVaR marked."""
    from prudencial.risk.measures import cvar, var

    text = _labels(lang)
    values = 100 * np.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(values, bins=60, color="#4c72b0", alpha=0.8)
    v, c = var(values, confidence), cvar(values, confidence)
    level = _percent(confidence, 0, lang)
    ax.axvline(v, color="#dd8452", linewidth=2,
               label=f"{text['var'].format(p=level)}: {_percent(v / 100, 2, lang)}")  # fmt: skip
    ax.axvline(c, color="#c44e52", linewidth=2, linestyle="--",
               label=f"{text['cvar'].format(p=level)}: {_percent(c / 100, 2, lang)}")  # fmt: skip
    ax.xaxis.set_major_formatter(_axis_formatter(lang))
    ax.yaxis.set_major_formatter(_axis_formatter(lang, 0))
    ax.set_xlabel(text["loss_axis"])
    ax.set_ylabel(text["frequency"])
    ax.set_title(text["loss_title"].format(agent=agent))
    ax.legend()
    return fig


def plot_agent_panel(result: NetworkRiskResult, agents: list[int], *, lang: str = "pt") -> Figure:
    """Fig. 7: the local (VaR/CVaR intrinsic, propagated, total) and global panel as a table.

    Exposures are printed negative, as in the paper (exposure = −loss), in the language's
    number format; column widths follow their contents so no header is clipped.
    """
    text = _labels(lang)
    community_mean = {c.community: c.mean_cvar_propagated for c in result.community_table}
    keys = (
        "agent", "var_intrinsic", "cvar_intrinsic", "var_propagated", "cvar_propagated",
        "var_total", "cvar_total", "systemic", "community_mean", "position",
    )  # fmt: skip
    columns = [text[k] for k in keys]
    rows = []
    for a in agents:
        rows.append(
            [
                result.agent_ids[a],
                *(_percent(-getattr(result, name)[a], 0, lang) for name in keys[1:7]),
                _number(-result.received_max_mwh[a], 0, lang),
                _percent(-community_mean[int(result.community[a])], 2, lang),
                text["isolated_agent"]
                if result.isolated[a]
                else f"{result.community_rank[a]} {text['of']} {result.n_communities}",
            ]
        )
    # Width of each column from its longest line (header lines are bold, hence 1.15).
    chars = [
        max([1.15 * len(line) for line in header.split("\n")] + [len(row[j]) for row in rows])
        for j, header in enumerate(columns)
    ]
    widths = np.array(chars) + 3.0
    widths = widths / widths.sum()
    # ~0.085 inch per character at 9 pt; the table fills the axes (bbox), rows 0.34 inch,
    # the two-line header 0.55 inch.
    fig_width = max(9.0, 0.085 * float(np.sum(np.array(chars) + 3.0)))
    table_height = 0.55 + 0.34 * len(rows)
    fig, ax = plt.subplots(figsize=(fig_width, table_height + 1.1))
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / (table_height + 1.1),
                        bottom=0.65 / (table_height + 1.1))  # fmt: skip
    ax.set_axis_off()
    table = ax.table(
        cellText=rows, colLabels=columns, colWidths=widths.tolist(), cellLoc="center",
        bbox=[0.0, 0.0, 1.0, 1.0],
    )  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    header_share = 0.55 / table_height
    for (r, c), cell in table.get_celld().items():
        cell.set_height(header_share if r == 0 else (1 - header_share) / max(len(rows), 1))
        if r == 0:
            cell.set_facecolor("#dbe9f6" if c < 7 else "#f6e3db")
            cell.set_text_props(weight="bold")
    ax.set_title(f"{text['panel_title']}  —  {text['local']}: 1–7 | {text['global']}: 8–10")
    worst = result.n_scenarios - int(np.ceil(result.confidence * result.n_scenarios - 1e-9))
    note = text["panel_note"].format(
        worst=_number(worst, 0, lang), n=_number(result.n_scenarios, 0, lang)
    )
    ax.text(0.0, -0.04, "\n".join(textwrap.wrap(note, int(fig_width * 18.5))), transform=ax.transAxes,
            ha="left", va="top", fontsize=7.5, color="#444444")  # fmt: skip
    return fig


# --- pictures drawn from disclosed results only ------------------------------------------------
#
# The host holds the enclave's published answers, not the market: the functions below take the
# dicts of `disclosure.published_network` (summary, "communities", "agents"), of
# `disclosure.published_systemic` and of `tracking.Tracking.to_dict()`, never engine objects.

_PUBLISHED_LABELS: dict[str, dict[str, str]] = {
    "pt": {
        "fig5_note": "{hit} de {n} agentes receberam exposição propagada (cinza: nenhuma)",
        "panel_note_published": (
            "Exposições em % do custo esperado de cada agente, negativas = perda (como no "
            "artigo); VaR e CVaR sobre os {worst} piores cenários de {n}. CVaR médio da rede: "
            "CVaR propagado médio da comunidade; posição 1 = maior exposição. Os volumes (MWh) "
            "não são divulgados, por isso não há coluna de risco sistêmico."
        ),
        "fig5_clipped": "; {k} agentes além dos eixos (percentil {q}), na borda",
        "class_CS": "consumidor (CS)",
        "class_GE": "gerador (GE)",
        "class_CM": "comercializador (CM)",
        "fig6_title": "Comunidades da rede de comercialização e propagadores",
        "fig6_note": (
            "{k} comunidades; cada disco é uma comunidade (área ∝ agentes), cada ponto um "
            "agente; propagadores maiores e contornados. Os contratos não são divulgados, por "
            "isso não há ligações."
        ),
        "evolution_title": "Evolução das comunidades entre semanas",
        "evolution_note": (
            "Barras: comunidades de cada semana (altura ∝ agentes), cor = linhagem; faixas: "
            "agentes que passaram de uma comunidade à outra. Limiar de Jaccard {t}."
        ),
        "evolution_counts": "{w}: {c} continuações, {s} divisões, {m} fusões, {b} nascimentos, {d} mortes",
        "week": "semana",
        "scale_agents": "{n} agentes",
        "debtrank_title": "DebtRank: impacto sistêmico da falha de cada agente ({scenario})",
        "debtrank_axis": "capital do sistema perdido se o agente falhar (%)",
        "debtrank_cover2": "cobertura-2: {a} + {b} → {loss} do capital",
        "debtrank_cover2_bound": " (não certificado: perda de um par ≤ {bound})",
        "debtrank_cover2_uncertified": " (não certificado)",
        "debtrank_system": "Perda de capital no cenário",
        "debtrank_system_axis": "capital do sistema perdido (%)",
        "debtrank_initial": "choque inicial (perda intrínseca)",
        "debtrank_propagated": "propagada (DebtRank)",
        "en_defaults": "Eisenberg–Noe: {d} inadimplentes ({f} fundamentais, {c} por contágio); {u} das obrigações não pagas",
        "scenario_high": "PLD alto, quantil {q}",
        "scenario_low": "PLD baixo, quantil {q}",
        "scenario_other": "cenário {name}",
        "no_data": "sem dados",
    },
    "en": {
        "fig5_note": "{hit} of {n} agents received propagated exposure (grey: none)",
        "panel_note_published": (
            "Exposures in % of each agent's expected cost, negative = loss (as in the paper); "
            "VaR and CVaR over the worst {worst} of {n} scenarios. Network mean CVaR: the "
            "community's mean propagated CVaR; position 1 = most exposed. Volumes (MWh) are not "
            "disclosed, hence no systemic-risk column."
        ),
        "fig5_clipped": "; {k} agents beyond the axes (percentile {q}), on the edge",
        "class_CS": "consumer (CS)",
        "class_GE": "generator (GE)",
        "class_CM": "trader (CM)",
        "fig6_title": "Trade network communities and propagators",
        "fig6_note": (
            "{k} communities; each disc is a community (area ∝ agents), each dot an agent; "
            "propagators larger and outlined. Contracts are not disclosed, hence no links."
        ),
        "evolution_title": "Community evolution across weeks",
        "evolution_note": (
            "Bars: each week's communities (height ∝ agents), colour = lineage; bands: agents "
            "moving from one community to another. Jaccard threshold {t}."
        ),
        "evolution_counts": "{w}: {c} continuations, {s} splits, {m} merges, {b} births, {d} deaths",
        "week": "week",
        "scale_agents": "{n} agents",
        "debtrank_title": "DebtRank: systemic impact of each agent's failure ({scenario})",
        "debtrank_axis": "system capital lost if the agent fails (%)",
        "debtrank_cover2": "cover-2: {a} + {b} → {loss} of capital",
        "debtrank_cover2_bound": " (not certified: a pair's loss ≤ {bound})",
        "debtrank_cover2_uncertified": " (not certified)",
        "debtrank_system": "Capital lost in the scenario",
        "debtrank_system_axis": "system capital lost (%)",
        "debtrank_initial": "initial shock (intrinsic loss)",
        "debtrank_propagated": "propagated (DebtRank)",
        "en_defaults": "Eisenberg–Noe: {d} defaults ({f} fundamental, {c} contagious); {u} of obligations unpaid",
        "scenario_high": "high PLD, quantile {q}",
        "scenario_low": "low PLD, quantile {q}",
        "scenario_other": "scenario {name}",
        "no_data": "no data",
    },
}
for _lang, _extra in _PUBLISHED_LABELS.items():
    LABELS[_lang].update(_extra)

_CLASS_COLOURS = {"CS": "#4c72b0", "GE": "#55a868", "CM": "#c44e52"}
# tab10 without its grey (grey is for the communities without a colour of their own).
_DISTINCT = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
             "#bcbd22", "#17becf", "#393b79")  # fmt: skip
_POSITION_COLOURS = {"long": "#2ca02c", "balanced": "#e6c229", "short": "#d62728"}


def _rows(network: dict) -> list[dict]:
    rows = network.get("agents")
    if not isinstance(rows, list):
        raise ValueError("network.agents must be the list of published agent rows")
    return rows


def _figure(row: dict, name: str) -> float:
    value = row.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def plot_published_exposure(network: dict, *, lang: str = "pt", clip: float = 0.99) -> Figure:
    """Fig. 5 from the published network: intrinsic × propagated CVaR per agent (exposures,
    negative = loss). Coloured by initial position when the rows carry one ("position": long,
    balanced or short), else by class; agents that received no propagated exposure in grey.
    Axes span the `clip` quantile of each exposure (a few extreme agents would otherwise
    squash the rest); agents beyond it are drawn on the edge and counted in the note."""
    text = _labels(lang)
    rows = _rows(network)
    x = np.array([-100 * _figure(r, "cvar_intrinsic") for r in rows])
    y = np.array([-100 * _figure(r, "cvar_propagated") for r in rows])
    clipped = 0
    if rows and 0 < clip < 1:
        lo_x, lo_y = np.quantile(x, 1 - clip), np.quantile(y, 1 - clip)
        hi_x, hi_y = np.quantile(x, clip), np.quantile(y, clip)
        out = (x < lo_x) | (x > hi_x) | (y < lo_y) | (y > hi_y)
        clipped = int(out.sum())
        x, y = np.clip(x, lo_x, hi_x), np.clip(y, lo_y, hi_y)
    hit = np.array([_figure(r, "cvar_propagated") != 0 for r in rows], dtype=bool)
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.scatter(x[~hit], y[~hit], s=6, c="#bbbbbb", label=text["no_exposure"])
    if any("position" in r for r in rows):
        groups = [(k, _POSITION_COLOURS[k], text[k]) for k in ("long", "balanced", "short")]
        key = "position"
    else:
        groups = [(c, _CLASS_COLOURS[c], text[f"class_{c}"]) for c in NETWORK_CLASSES]
        key = "class"
    for value, colour, label in groups:
        m = hit & np.array([r.get(key) == value for r in rows], dtype=bool)
        if m.any():
            ax.scatter(x[m], y[m], s=12, c=colour, label=label)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlabel(text["intrinsic"] + " (%)")
    ax.set_ylabel(text["propagated"] + " (%)")
    ax.xaxis.set_major_formatter(_axis_formatter(lang))
    ax.yaxis.set_major_formatter(_axis_formatter(lang))
    ax.set_title(text["scatter_title"])
    ax.legend(loc="lower left", fontsize=8)
    note = text["fig5_note"].format(hit=_number(int(hit.sum()), 0, lang),
                                    n=_number(len(rows), 0, lang))  # fmt: skip
    if clipped:
        note += text["fig5_clipped"].format(k=_number(clipped, 0, lang),
                                            q=_number(100 * clip, 0, lang))  # fmt: skip
    ax.text(0.0, -0.115, "\n".join(textwrap.wrap(note, 100)), transform=ax.transAxes,
            fontsize=8, va="top")  # fmt: skip
    return fig


def _pack_discs(sizes: dict[Any, int]) -> dict[Any, tuple[float, float, float]]:
    """Discs of radius ∝ √size packed in rows from the largest: {key: (x, y, r)}."""
    order = sorted(sizes, key=lambda c: (-sizes[c], str(c)))
    radius = {c: float(np.sqrt(max(sizes[c], 1))) for c in order}
    gap = 1.0
    row_width = max(
        np.sqrt(sum((2 * r + gap) ** 2 for r in radius.values())) * 1.15,
        2 * max(radius.values(), default=1.0) + gap,
    )
    discs, x, y, row_height = {}, 0.0, 0.0, 0.0
    for c in order:
        r = radius[c]
        if x > 0 and x + 2 * r > row_width:
            x, y, row_height = 0.0, y - row_height - gap, 0.0
        discs[c] = (x + r, y - r, r)
        x += 2 * r + gap
        row_height = max(row_height, 2 * r)
    return discs


def plot_published_communities(network: dict, *, lang: str = "pt", n_legend: int = 10) -> Figure:
    """Fig. 6 from the published network: communities as discs (area ∝ members) with their
    agents inside, the `n_legend` highest mean propagated CVaR in their own colours (rank,
    size, mean in the legend), propagators (failure frequency > 0) larger and outlined. The
    host holds no contracts, so links are not drawn (the enclave-side `plot_trade_network`
    draws them)."""
    text = _labels(lang)
    rows = _rows(network)
    table = {c["community"]: c for c in network.get("communities", [])}
    members: dict[Any, list[dict]] = {}
    for r in rows:
        if r.get("community") is not None:
            members.setdefault(r["community"], []).append(r)
    fig, ax = plt.subplots(figsize=(12, 9))
    if not members:
        ax.text(0.5, 0.5, text["no_data"], ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    discs = _pack_discs({c: len(m) for c, m in members.items()})

    def rank(c):
        return table.get(c, {}).get("rank", len(table) + 1)

    ranked = [c for c in sorted(discs, key=rank) if len(members[c]) > 1][:n_legend]
    colour_of = {c: _DISTINCT[i % len(_DISTINCT)] for i, c in enumerate(ranked)}
    muted = ("#b9c3cc", "#c9bfb3", "#bfc8b8", "#c4b9c9")
    golden = np.pi * (3 - np.sqrt(5))
    for i, (c, (cx, cy, r)) in enumerate(discs.items()):
        group = sorted(members[c], key=lambda row: -_figure(row, "failure_frequency"))
        m = len(group)
        k = np.arange(m)
        rad = 0.9 * r * np.sqrt((k + 0.5) / m)
        px, py = cx + rad * np.cos(k * golden), cy + rad * np.sin(k * golden)
        prop = np.array([_figure(row, "failure_frequency") > 0 for row in group], dtype=bool)
        colour = colour_of.get(c, muted[i % len(muted)])
        ax.add_patch(matplotlib.patches.Circle((cx, cy), r, facecolor=colour, alpha=0.12,
                                               edgecolor="none"))  # fmt: skip
        ax.scatter(px[~prop], py[~prop], s=9, color=colour, linewidths=0)
        ax.scatter(px[prop], py[prop], s=46, color=colour, edgecolors="#222222",
                   linewidths=0.7, zorder=3)  # fmt: skip
        if c in colour_of:
            ax.text(cx, cy + r * 1.02, f"{rank(c)}º" if lang == "pt" else f"#{rank(c)}",
                    ha="center", va="bottom", fontsize=8, weight="bold")  # fmt: skip
    entries = [
        (colour_of[c], rank(c), len(members[c]),
         float(table.get(c, {}).get("mean_cvar_propagated", 0.0)))
        for c in ranked
    ]  # fmt: skip
    _community_legend(ax, entries, muted[0], text, lang)
    ax.set_title(text["fig6_title"])
    note = text["fig6_note"].format(k=_number(network.get("n_communities", len(discs)), 0, lang))
    ax.text(0.0, -0.02, "\n".join(textwrap.wrap(note, 120)), transform=ax.transAxes, fontsize=8,
            va="top")  # fmt: skip
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.autoscale_view()
    ax.margins(0.02, 0.05)
    return fig


def plot_published_panel(network: dict, agents: list[str], *, lang: str = "pt") -> Figure:
    """Fig. 7 from published rows: VaR/CVaR intrinsic, propagated and total (negative =
    loss, as in the paper), the community's mean propagated CVaR and the position "k of K".
    The systemic-risk column (MWh) is shown only when the rows carry it (volumes are not
    published by default)."""
    text = _labels(lang)
    by_id = {r.get("agent"): r for r in _rows(network)}
    missing = [a for a in agents if a not in by_id]
    if missing:
        raise ValueError(f"agents: {missing[0]} is not in the published network")
    with_mwh = any("systemic_received_max_mwh" in by_id[a] for a in agents)
    keys = ["agent", "var_intrinsic", "cvar_intrinsic", "var_propagated", "cvar_propagated",
            "var_total", "cvar_total"] + (["systemic"] if with_mwh else []) + [
            "community_mean", "position"]  # fmt: skip
    columns = [text[k] for k in keys]
    rows = []
    for a in agents:
        r = by_id[a]
        line = [str(a), *(_percent(-_figure(r, k), 0, lang) for k in keys[1:7])]
        if with_mwh:
            line.append(_number(-_figure(r, "systemic_received_max_mwh"), 0, lang))
        line.append(_percent(-_figure(r, "community_mean_cvar_propagated"), 2, lang))
        rank, k = r.get("community_rank"), r.get("n_communities")
        line.append("—" if rank is None else f"{rank} {text['of']} {k}")
        rows.append(line)
    chars = [
        max([1.15 * len(s) for s in header.split("\n")] + [len(row[j]) for row in rows])
        for j, header in enumerate(columns)
    ]
    widths = np.array(chars) + 3.0
    fig_width = max(9.0, 0.085 * float(widths.sum()))
    table_height = 0.55 + 0.34 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(fig_width, table_height + 1.1))
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / (table_height + 1.1),
                        bottom=0.65 / (table_height + 1.1))  # fmt: skip
    ax.set_axis_off()
    table = ax.table(cellText=rows or [[""] * len(columns)], colLabels=columns,
                     colWidths=(widths / widths.sum()).tolist(), cellLoc="center",
                     bbox=[0.0, 0.0, 1.0, 1.0])  # fmt: skip
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    local = 7 + int(with_mwh)
    header_share = 0.55 / table_height
    for (r, c), cell in table.get_celld().items():
        cell.set_height(header_share if r == 0 else (1 - header_share) / max(len(rows), 1))
        if r == 0:
            cell.set_facecolor("#dbe9f6" if c < local else "#f6e3db")
            cell.set_text_props(weight="bold")
    ax.set_title(f"{text['panel_title']}  —  {text['local']}: 1–{local} | "
                 f"{text['global']}: {local + 1}–{len(columns)}")  # fmt: skip
    n = int(network.get("n_scenarios", 0) or 0)
    confidence = float(network.get("confidence", 0.95) or 0.95)
    worst = n - int(np.ceil(confidence * n - 1e-9)) if n else 0
    note = text["panel_note" if with_mwh else "panel_note_published"].format(
        worst=_number(worst, 0, lang), n=_number(n, 0, lang)
    )
    ax.text(0.0, -0.04, "\n".join(textwrap.wrap(note, int(fig_width * 18.5))),
            transform=ax.transAxes, ha="left", va="top", fontsize=7.5, color="#444444")  # fmt: skip
    return fig


def _band(
    ax, x0, x1, y0, y1, height0, height1, colour, alpha: float = 0.35, zorder: float = 1
) -> None:
    """A flow band from (x0, y0..y0+h0) to (x1, y1..y1+h1) with cubic Bézier edges."""
    from matplotlib.path import Path as MplPath

    mid = (x0 + x1) / 2
    verts = [(x0, y0), (mid, y0), (mid, y1), (x1, y1), (x1, y1 + height1), (mid, y1 + height1),
             (mid, y0 + height0), (x0, y0 + height0), (x0, y0)]  # fmt: skip
    codes = [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.LINETO,
             MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.CLOSEPOLY]  # fmt: skip
    ax.add_patch(matplotlib.patches.PathPatch(MplPath(verts, codes), facecolor=colour,
                                              edgecolor="none", alpha=alpha,
                                              zorder=zorder))  # fmt: skip


def _round_step(value: float) -> float:
    """The largest of 1, 2, 5 × 10^k not above `value` (at least 1): a scale bar's length."""
    value = max(float(value), 1.0)
    power = 10.0 ** np.floor(np.log10(value))
    return max(m * power for m in (1, 2, 5) if m * power <= value)


def plot_community_evolution(
    tracking: dict, *, lang: str = "pt", max_lineages: int = 10, min_size: int = 3
) -> Figure:
    """Alluvial chart of `Tracking.to_dict()`: one column of bars per week (a bar per community
    of at least `min_size` agents, height ∝ members, colour = lineage, the `max_lineages`
    largest coloured), bands between consecutive weeks for the agents that moved from one
    community to the other. The counts under the chart cover every community."""
    text = _labels(lang)
    weeks = list(tracking.get("weeks", []))
    communities = tracking.get("communities", {})
    fig, ax = plt.subplots(figsize=(max(8.0, 2.2 * len(weeks) + 3), 7))
    if not weeks:
        ax.text(0.5, 0.5, text["no_data"], ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    total: dict[str, int] = {}
    for w in weeks:
        for c in communities.get(w, []):
            total[c["lineage"]] = total.get(c["lineage"], 0) + int(c["size"])
    by_size = sorted(total, key=lambda lin: (-total[lin], lin))
    order_of = {lin: i for i, lin in enumerate(by_size)}
    colour_of = {lin: _DISTINCT[i % len(_DISTINCT)] for i, lin in enumerate(by_size[:max_lineages])}
    grey = "#b0b0b0"
    gap = max(1.0, 0.02 * max((sum(c["size"] for c in communities.get(w, [])) for w in weeks),
                              default=1))  # fmt: skip
    bar = 0.18
    slots: list[dict[Any, list[float]]] = []  # per week: community → [bottom, out used, in used]
    for i, w in enumerate(weeks):
        shown = [c for c in communities.get(w, []) if int(c["size"]) >= min_size]
        # The same lineage sits at the same rank every week (largest lineage at the bottom).
        shown.sort(key=lambda c: (order_of[c["lineage"]], str(c["community"])))
        y, placed = 0.0, {}
        for c in shown:
            size = float(c["size"])
            colour = colour_of.get(c["lineage"], grey)
            ax.add_patch(matplotlib.patches.Rectangle((i - bar / 2, y), bar, size,
                                                      facecolor=colour, edgecolor="white",
                                                      linewidth=0.5))  # fmt: skip
            if c["lineage"] in colour_of and size >= 0.04 * max(total.values()):
                ax.text(i + bar / 2 + 0.02, y + size / 2, c["lineage"], va="center",
                        fontsize=7)  # fmt: skip
            placed[c["community"]] = [y, 0.0, 0.0, c["lineage"], size]
            y += size + gap
        slots.append(placed)
    for i, t in enumerate(tracking.get("transitions", [])[: len(weeks) - 1]):
        left, right = slots[i], slots[i + 1]
        flows = [f for f in t.get("flows", []) if f["from"] in left and f["to"] in right]
        flows.sort(key=lambda f: (left[f["from"]][0], right[f["to"]][0]))
        for f in flows:
            a, b, n = left[f["from"]], right[f["to"]], float(f["agents"])
            y0 = a[0] + a[1]
            a[1] += n
            b_in = [g for g in flows if g["to"] == f["to"]]
            b_in.sort(key=lambda g: left[g["from"]][0])
            y1 = b[0] + sum(float(g["agents"]) for g in b_in[: b_in.index(f)])
            # Bands of uncoloured lineages opaque, light and underneath (translucent greys
            # stacked by the hundred would not survive the PNG palette), coloured ones above.
            if a[3] in colour_of:
                _band(ax, i + bar / 2, i + 1 - bar / 2, y0, y1, n, n, colour_of[a[3]],
                      alpha=0.4, zorder=2)  # fmt: skip
            else:
                _band(ax, i + bar / 2, i + 1 - bar / 2, y0, y1, n, n, "#e3e3e3", alpha=1.0)
    top_y = max((v[0] + v[4] for placed in slots for v in placed.values()), default=1.0)
    ax.set_ylim(0, top_y * 1.04 + gap)
    ax.set_xticks(range(len(weeks)), weeks)
    ax.set_xlabel(text["week"])
    # Bars are stacked with gaps, so a y axis in agents would overstate the total: a scale
    # bar of a round number of agents instead.
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    largest = max((v[4] for placed in slots for v in placed.values()), default=1.0)
    step = _round_step(largest)
    ax.set_xlim(-0.8, len(weeks) - 0.5)
    ax.plot([-0.72, -0.72], [0, step], color="#333333", linewidth=2, solid_capstyle="butt")
    ax.text(-0.69, step / 2, text["scale_agents"].format(n=_number(step, 0, lang)), va="center",
            ha="left", fontsize=8)  # fmt: skip
    ax.set_title(text["evolution_title"])
    lines = [text["evolution_note"].format(t=_number(float(tracking.get("threshold", 0.3)), 2,
                                                     lang))]  # fmt: skip
    for c in tracking.get("counts", []):
        lines.append(text["evolution_counts"].format(
            w=c["to"], c=c["continuation"], s=c["split"], m=c["merge"], b=c["birth"],
            d=c["death"]))  # fmt: skip
    ax.text(0.0, -0.1, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="top")
    return fig


def _scenario_label(name: str, scenario: dict, text: dict[str, str], lang: str) -> str:
    q = scenario.get("quantile")
    if name in ("high", "low") and isinstance(q, int | float):
        return text[f"scenario_{name}"].format(q=_number(q, 2, lang))
    return text["scenario_other"].format(name=name)


def plot_debtrank(
    systemic: dict, *, scenario: str | None = None, lang: str = "pt", top: int = 15
) -> Figure:
    """DebtRank picture from `published_systemic`: the `top` agents by systemic impact (share
    of the system's capital lost if that agent alone fails; the cover-2 pair highlighted) and,
    per scenario, the capital lost to the scenario's own shock and to its propagation, with
    Eisenberg–Noe's defaults (fundamental and contagious) underneath."""
    text = _labels(lang)
    scenarios = systemic.get("scenarios") or {}
    if not scenarios:
        raise ValueError("systemic.scenarios is empty: nothing to draw")
    name = scenario if scenario is not None else next(iter(scenarios))
    if name not in scenarios:
        raise ValueError(f"scenario {name!r} is not in systemic.scenarios ({', '.join(scenarios)})")
    chosen = scenarios[name]
    impacts = [
        (row["agent"], float(row["scenarios"][name].get("debtrank_impact") or 0.0))
        for row in systemic.get("agents", [])
        if name in row.get("scenarios", {})
    ]
    if not impacts:
        impacts = [(t["agent"], float(t["impact"])) for t in chosen["debtrank"].get("top", [])]
    impacts = sorted(impacts, key=lambda t: (-t[1], t[0]))[:top]
    cover = chosen.get("cover2") or {}
    pair = set(cover.get("agents") or [])
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, max(4.5, 0.32 * len(impacts) + 2)), width_ratios=(3, 2)
    )
    labels = [a for a, _ in impacts][::-1]
    values = [100 * v for _, v in impacts][::-1]
    colours = ["#c44e52" if a in pair else "#4c72b0" for a in labels]
    left.barh(labels, values, color=colours)
    left.xaxis.set_major_formatter(_axis_formatter(lang))
    left.set_xlabel(text["debtrank_axis"])
    left.set_title(text["debtrank_title"].format(scenario=_scenario_label(name, chosen, text,
                                                                          lang)), fontsize=10)  # fmt: skip
    if cover.get("agents"):
        caption = text["debtrank_cover2"].format(
            a=cover["agents"][0], b=cover["agents"][1], loss=_percent(cover["loss"], 1, lang)
        )
        if not cover.get("certified", True):
            # The search's bound adds two agents' impacts, so it can pass 100 %, where it says
            # nothing (no loss does).
            bound = float(cover["bound"])
            caption += (
                text["debtrank_cover2_bound"].format(bound=_percent(bound, 1, lang))
                if bound < 1.0
                else text["debtrank_cover2_uncertified"]
            )
        left.text(0.0, -0.16, caption, transform=left.transAxes, fontsize=8, color="#c44e52")
    names = list(scenarios)
    initial = [100 * float(scenarios[s]["debtrank"]["system_initial"]) for s in names]
    propagated = [100 * float(scenarios[s]["debtrank"]["system_propagated"]) for s in names]
    ticks = [_scenario_label(s, scenarios[s], text, lang) for s in names]
    right.bar(ticks, initial, color="#dd8452", label=text["debtrank_initial"])
    right.bar(ticks, propagated, bottom=initial, color="#8172b3", label=text["debtrank_propagated"])
    right.yaxis.set_major_formatter(_axis_formatter(lang))
    right.set_ylabel(text["debtrank_system_axis"])
    right.set_title(text["debtrank_system"], fontsize=10)
    # Headroom above the tallest bar for the legend, so it never covers a bar.
    tallest = max((a + b for a, b in zip(initial, propagated, strict=True)), default=0.0)
    right.set_ylim(0, max(tallest, 1.0) * 1.3)
    right.set_yticks([t for t in right.get_yticks() if 0 <= t <= max(tallest, 1.0) * 1.05])
    right.legend(fontsize=8, loc="upper left", ncol=1, frameon=False)
    right.tick_params(axis="x", labelsize=8)
    lines = []
    for s in names:
        en = scenarios[s].get("eisenberg_noe") or {}
        if en:
            lines.append(_scenario_label(s, scenarios[s], text, lang) + ": " + text[
                "en_defaults"].format(d=_number(en["defaults"], 0, lang),
                                      f=_number(en["fundamental"], 0, lang),
                                      c=_number(en["contagious"], 0, lang),
                                      u=_percent(en["unpaid_share"], 1, lang)))  # fmt: skip
    right.text(0.0, -0.16, "\n".join("\n".join(textwrap.wrap(line, 85)) for line in lines),
               transform=right.transAxes, fontsize=7.5, va="top")  # fmt: skip
    fig.tight_layout()
    return fig
