import csv
import json

import numpy as np
import pytest

from prudencial.risk import bootstrap_pld, network_risk, pld_history_2017
from prudencial.risk_tools.cli import main
from prudencial.risk_tools.synthetic import synthetic_market
from tests.risk.conftest import EXAMPLES


@pytest.mark.parametrize("command", ["simulate", "systemic", "pictures", "leverage"])
def test_every_command_prints_its_help(command, capsys):
    """argparse formats help with %: a bare "%" in a help text broke --help."""
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_leverage_command_json(capsys):
    code = main(
        [
            "leverage",
            str(EXAMPLES / "worked_example_portfolio.json"),
            str(EXAMPLES / "worked_example_parameters.json"),
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert round(data["fa"], 4) == 0.0430
    assert data["var_total"] == pytest.approx(430_035.23, abs=0.01)


def test_leverage_command_table_and_errors(capsys, tmp_path):
    portfolio = EXAMPLES / "worked_example_portfolio.json"
    parameters = EXAMPLES / "worked_example_parameters.json"
    assert main(["leverage", str(portfolio), str(parameters), "--stress"]) == 0
    out = capsys.readouterr().out
    assert "== pld_cap" in out and "0.0430" in out
    bad = json.loads(parameters.read_text())
    bad["confidence"] = 2
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main(["leverage", str(portfolio), str(path)]) == 2
    assert "parameters.confidence" in capsys.readouterr().err


def test_simulate_writes_tables_and_pictures(tmp_path):
    out = tmp_path / "run"
    code = main(
        ["simulate", "--cs", "40", "--ge", "20", "--cm", "6", "--scenarios", "200",
         "--seed", "3", "--cascade", "--community", "louvain", "--lang", "en", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    for name in ("agents.csv", "agents.xlsx", "communities.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    for picture in ("network", "exposure", "loss_distribution", "panel"):
        assert (out / f"{picture}.png").read_bytes()[:4] == b"\x89PNG"
        assert b"<svg" in (out / f"{picture}.svg").read_bytes()[:400]
    rows = list(csv.DictReader((out / "agents.csv").open()))
    assert len(rows) == 66
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cascade"] is True and summary["n_agents"] == 66
    # The paper's scenario model by default: contract prices drawn per scenario.
    assert summary["scenario_model"]["contract_prices"]["draw"] == "history"
    assert summary["risk_convention"] == {"quantile": "inverse_cdf", "cvar": "acerbi_tasche"}
    assert (
        summary["stress"]["pld_cap"]["mean_total_loss"]
        >= summary["stress"]["pld_floor"]["mean_total_loss"]
    )


def test_plot_labels_follow_language():
    from prudencial.risk_tools import plots

    market = synthetic_market(20, 10, 4, seed=1)
    result = network_risk(market, bootstrap_pld(pld_history_2017(), 100, seed=1))
    fig = plots.plot_exposure_scatter(result, lang="pt")
    assert "intrínseca" in fig.axes[0].get_title()
    fig = plots.plot_exposure_scatter(result, lang="en")
    assert "Intrinsic" in fig.axes[0].get_title()
    fig = plots.plot_loss_distribution(np.arange(100) / 100, 0.9, agent="CM01", lang="en")
    assert "CM01" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="lang"):
        plots.plot_exposure_scatter(result, lang="fr")


def test_loss_distribution_picture_uses_the_runs_failure_model(tmp_path):
    """With --failure-probability (and --cascade) the picture must show the Monte Carlo losses
    the table was computed from, not the worst case in which every short seller fails."""
    from prudencial.risk_tools.cli import _agent_losses, _parser

    market = synthetic_market(40, 20, 6, seed=4)
    prices = bootstrap_pld(pld_history_2017(), 300, seed=4)
    for extra, cascade in (([], False), (["--cascade"], True)):
        args = _parser().parse_args(
            ["simulate", "--seed", "4", "--failure-probability", "0.3", "--out", str(tmp_path),
             *extra]
        )  # fmt: skip
        result = network_risk(market, prices, failure_probability=0.3, seed=4, cascade=cascade)
        a = int(np.argmax(result.cvar_propagated))  # an agent hit by propagation
        assert result.cvar_propagated[a] > 0
        kept = network_risk(
            market, prices, failure_probability=0.3, seed=4, cascade=cascade, keep_agents=[a]
        ).kept_losses[a]["total"]
        np.testing.assert_allclose(_agent_losses(market, prices, args, a), kept, rtol=1e-12)
    # With the paper's drawn contract prices too: the picture is the table's scenarios.
    from prudencial.risk.pld import paper_scenarios

    drawn = paper_scenarios(pld_history_2017(), 300, seed=4)
    result = network_risk(
        market, drawn, failure_probability=0.3, seed=4, cascade=True, keep_agents=[a]
    )  # args: the --cascade run above
    np.testing.assert_allclose(
        _agent_losses(market, drawn, args, a), result.kept_losses[a]["total"], rtol=1e-12
    )


def test_numbers_follow_the_language():
    from prudencial.risk_tools.plots import _number, _percent

    assert _number(-1163.4, 0, "pt") == "\u22121.163"
    assert _number(-1163.4, 0, "en") == "\u22121,163"
    assert _number(1234567.891, 2, "pt") == "1.234.567,89"
    assert _percent(-0.02544, 2, "pt") == "\u22122,54\u00a0%"
    assert _percent(-0.02544, 2, "en") == "\u22122.54%"
    assert _percent(-0.0004, 0, "pt") == "0\u00a0%"  # no "−0 %"
    assert _number(-0.2, 0, "pt") == "0"


def _panel_texts(fig):
    table = fig.axes[0].tables[0]
    return {(r, c): cell.get_text().get_text() for (r, c), cell in table.get_celld().items()}


def test_panel_in_portuguese_and_headers_fit():
    from prudencial.risk_tools import plots

    market = synthetic_market(60, 30, 10, seed=6)
    result = network_risk(market, bootstrap_pld(pld_history_2017(), 400, seed=6))
    hit = int(np.argmax(result.received_max_mwh))
    fig = plots.plot_agent_panel(result, [hit, 0], lang="pt")
    texts = _panel_texts(fig)
    mwh = texts[(1, 7)]
    assert mwh.startswith("\u2212") and "," not in mwh  # thousands with ".", no decimals
    assert texts[(1, 8)].endswith("\u00a0%") and "," in texts[(1, 8)]
    assert texts[(1, 9)].endswith(f" de {result.n_communities}")
    assert texts[(1, 5)] == plots._percent(-result.var_total[hit], 0, "pt")
    # Every header line fits in its column once drawn (no clipped header).
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    table = fig.axes[0].tables[0]
    for (r, _c), cell in table.get_celld().items():
        if r == 0:
            text_box = cell.get_text().get_window_extent(renderer)
            cell_box = cell.get_window_extent(renderer)
            assert text_box.width <= cell_box.width, cell.get_text().get_text()
            assert text_box.height <= cell_box.height, cell.get_text().get_text()
    english = _panel_texts(plots.plot_agent_panel(result, [hit], lang="en"))
    assert "," in english[(1, 7)] or abs(result.received_max_mwh[hit]) < 1000
    assert english[(1, 8)].endswith("%") and "." in english[(1, 8)]


def test_network_picture_groups_communities(tmp_path):
    from prudencial.risk_tools import plots

    market = synthetic_market(seed=1)
    result = network_risk(market, bootstrap_pld(pld_history_2017(), 500, seed=1))
    fig = plots.plot_trade_network(market, result, lang="pt", n_legend=8)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    ranked = sorted((c for c in result.community_table if c.size > 1), key=lambda c: c.rank)
    assert legend[0] == f"1º: {ranked[0].size} agentes, " + plots._percent(
        -ranked[0].mean_cvar_propagated, 2, "pt"
    )
    assert len(legend) == 8 + 2
    # Agents of one community sit together: each community's spread is far smaller than the
    # picture's (a hairball would mix them).
    xy = ax.collections[-1].get_offsets()
    order = np.argsort(result.propagators, kind="stable")
    coords = np.empty_like(xy)
    coords[order] = xy
    span = np.ptp(coords, axis=0).max()
    big = np.bincount(result.community).argmax()
    assert np.ptp(coords[result.community == big], axis=0).max() < 0.35 * span
    paths = plots.save_figure(fig, tmp_path / "network", formats=("png",), max_colours=256)
    assert paths[0].stat().st_size < 200_000


def test_simulate_agents_splits_as_table_1_with_class_failures_and_shifts(tmp_path):
    import json as _json

    from prudencial.risk_tools.cli import main as cli_main

    out = tmp_path / "sim"
    code = cli_main(
        [
            "simulate", "--agents", "200", "--scenarios", "200", "--seed", "3",
            "--failure-probability", "CS=0.2,GE=0.3,CM=0.5", "--stress-shift", "50",
            "--no-plots", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    summary = _json.loads((out / "summary.json").read_text())
    assert (summary["market"]["n_cs"], summary["market"]["n_ge"], summary["market"]["n_cm"]) == (
        120,
        70,
        10,
    )
    assert summary["probabilistic"] is True
    assert set(summary["stress"]) == {"pld_floor", "pld_cap", "shift_+50"}


def test_simulate_refuses_a_bad_failure_probability(tmp_path, capsys):
    import pytest as _pytest

    from prudencial.risk_tools.cli import main as cli_main

    with _pytest.raises(SystemExit):
        cli_main(["simulate", "--failure-probability", "CS=high", "--out", str(tmp_path)])
    assert "CLASS=probability" in capsys.readouterr().err


def test_simulate_xlsx_holds_the_agent_table(tmp_path):
    from openpyxl import load_workbook

    from prudencial.risk.network import AGENT_COLUMNS

    out = tmp_path / "x"
    assert main(["simulate", "--agents", "40", "--scenarios", "100", "--no-plots",
                 "--out", str(out)]) == 0  # fmt: skip
    sheet = load_workbook(out / "agents.xlsx").active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == AGENT_COLUMNS
    with (out / "agents.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(rows) == len(table) + 1 == 41
    assert rows[1][0] == table[0]["agent"]
    assert rows[1][AGENT_COLUMNS.index("cvar_total")] == pytest.approx(
        float(table[0]["cvar_total"]), rel=1e-12
    )


def test_failure_probability_per_agent_csv(tmp_path):
    market = synthetic_market(24, 14, 2, seed=5)  # what --agents 40 --seed 5 builds
    path = tmp_path / "p.csv"
    lines = ["agent,probability"] + [f"{a},0" for a in market.agent_ids if a[:2] != "CS"]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main(["simulate", "--agents", "40", "--scenarios", "100", "--seed", "5",
                 "--failure-probability", str(path), "--no-plots", "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["probabilistic"] is True and summary["n_propagators"] == 0
    with (out / "agents.csv").open() as handle:
        assert all(float(r["cvar_propagated"]) == 0.0 for r in csv.DictReader(handle))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("agent,p\nGE01,0.5\n", "columns agent and probability are required"),
        ("agent,probability\nGE01,0.5\nGE02,high\n", "line 3, probability: 'high' is not"),
        ("agent,probability\nGE01,1.5\n", "line 2, probability: probability must be in"),
        ("agent,probability\nGE01,0.5\nGE01,0.2\n", "line 3: agent GE01 is listed twice"),
    ],
)
def test_failure_probability_csv_errors_name_the_line(tmp_path, capsys, content, message):
    path = tmp_path / "p.csv"
    path.write_text(content)
    with pytest.raises(SystemExit):
        main(["simulate", "--failure-probability", str(path), "--out", str(tmp_path)])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "message"),
    [("XX=0.3", "CLASS in CS, GE, CM"), ("GE=1.5", "probability must be in [0, 1]"),
     ("-0.1", "probability must be in [0, 1]")],
)  # fmt: skip
def test_failure_probability_values_are_checked(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit):
        main(["simulate", "--failure-probability", value, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_pld_bounds_bound_the_scenarios_and_the_stress(tmp_path, capsys):
    out = tmp_path / "regulatory"
    args = ["simulate", "--agents", "40", "--scenarios", "300", "--no-plots"]
    assert main([*args, "--pld-year", "2018", "--out", str(out)]) == 0
    market = json.loads((out / "summary.json").read_text())["market"]
    assert (market["pld_floor"], market["pld_cap"]) == (40.16, 505.18)
    assert market["pld_bounds_source"] == "regulatory 2018"
    stress = json.loads((out / "summary.json").read_text())["stress"]
    assert (stress["pld_floor"]["pld"], stress["pld_cap"]["pld"]) == (40.16, 505.18)

    history = tmp_path / "pld.csv"
    history.write_text("semana;pld\n1;20,0\n2;300,0\n3;900,0\n")
    out = tmp_path / "user"
    code = main([*args, "--pld-csv", str(history), "--pld-floor", "58.60", "--pld-cap",
                 "751.73", "--out", str(out)])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["market"]["pld_bounds_source"] == "given"
    assert summary["stress"]["pld_cap"]["pld"] == 751.73
    # The scenarios are drawn from the history bounded to [58.60, 751.73] (seed 1 by default).
    bounded = bootstrap_pld(np.array([58.60, 300.0, 751.73]), 300, seed=1)
    unbounded = bootstrap_pld(np.array([20.0, 300.0, 900.0]), 300, seed=1)
    assert summary["pld_mean"] == pytest.approx(bounded.mean(), rel=1e-12)
    assert summary["pld_mean"] != pytest.approx(unbounded.mean(), rel=1e-3)
    out = tmp_path / "history"
    assert main([*args, "--pld-csv", str(history), "--out", str(out)]) == 0
    market = json.loads((out / "summary.json").read_text())["market"]
    assert (market["pld_floor"], market["pld_cap"], market["pld_bounds_source"]) == (
        20.0,
        900.0,
        "history range",
    )

    assert main([*args, "--pld-year", "2019", "--out", str(tmp_path / "none")]) == 2
    assert "give --pld-floor and --pld-cap" in capsys.readouterr().err


def test_loss_picture_of_a_large_market_reruns_the_chunked_engine(tmp_path, monkeypatch):
    """Past FULL_MATRIX_CELLS the picture's losses come from the chunked engine, not skipped."""
    from prudencial.risk_tools import cli

    market = synthetic_market(40, 20, 6, seed=4)
    prices = bootstrap_pld(pld_history_2017(), 300, seed=4)
    args = cli._parser().parse_args(
        ["simulate", "--seed", "4", "--failure-probability", "0.4", "--cascade",
         "--out", str(tmp_path)]
    )  # fmt: skip
    result = network_risk(market, prices, failure_probability=0.4, seed=4, cascade=True)
    a = int(np.argmax(result.cvar_total))
    full = cli._agent_losses(market, prices, args, a)
    monkeypatch.setattr(cli, "FULL_MATRIX_CELLS", 0)
    chunked = cli._agent_losses(market, prices, args, a, result.communities)
    np.testing.assert_allclose(chunked, full, rtol=1e-12, atol=1e-15)
    from prudencial.risk import cvar

    assert cvar(chunked, 0.95) == pytest.approx(result.cvar_total[a], rel=1e-12)
