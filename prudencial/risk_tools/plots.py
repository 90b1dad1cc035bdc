"""Pictures of the network model (paper Figs. 5–7) and of an agent's loss distribution.

Matplotlib with the Agg backend (no display in the enclave or on servers). Labels are in
Portuguese by default (`lang="pt"`), English with `lang="en"`. Figures show losses as
percentages of the expected cost, negative as in the paper (an exposure).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import igraph as ig  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

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

    `max_colours` (≤ 256) stores the PNG with a palette of that many colours (octree, no
    dithering): a network picture drops to a third of its size with no visible change, which
    keeps the pictures committed to the docs small.
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        fig.savefig(target, dpi=110, bbox_inches="tight")
        if fmt == "png" and max_colours is not None:
            from PIL import Image

            with Image.open(target) as image:
                rgb = image.convert("RGB")
            rgb.quantize(
                colors=max(2, min(int(max_colours), 256)), method=Image.Quantize.FASTOCTREE,
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

    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=7, color=colour_of[c],
               label=text["legend_community"].format(
                   rank=rank[c], n=_number(size[c], 0, lang),
                   cvar=_percent(-mean_prop[c], 2, lang)))
        for c in ranked
    ]  # fmt: skip
    handles += [
        Line2D([], [], marker="o", linestyle="", markersize=7, color=muted[0],
               label=text["legend_other"]),
        Line2D([], [], marker="o", linestyle="", markersize=8, color="white",
               markeredgecolor="#222222", label=text["legend_propagator"]),
    ]  # fmt: skip
    ax.legend(handles=handles, title=text["legend_title"], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, title_fontsize=9, frameon=False)  # fmt: skip
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
                f"{result.community_rank[a]} {text['of']} {result.n_communities}",
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
