"""Pictures drawn from published answers only (Figs. 5–7, community evolution, DebtRank)."""

import json

import pytest

from enclave_bridge.enclave.disclosure import published_network, published_systemic
from prudencial.risk import bootstrap_pld, network_risk, pld_history_2017
from prudencial.risk.systemic import systemic_measures
from prudencial.risk.tracking import track_communities
from prudencial.risk_tools import plots
from prudencial.risk_tools.cli import DOCS_PICTURES, _week_market, main
from prudencial.risk_tools.synthetic import paper_market, synthetic_market

NAMES = ("fig5_exposure", "fig6_communities", "fig7_panel", "community_evolution", "debtrank")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The demo's published files (what the host holds), written by the CLI."""
    out = tmp_path_factory.mktemp("published")
    code = main(["systemic", "--agents", "120", "--weeks", "3", "--scenarios", "300",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def test_systemic_demo_writes_only_published_answers(published):
    weeks = sorted(published.glob("network.*.json"))
    assert len(weeks) == 3
    network = json.loads(weeks[0].read_text())
    assert {"agents", "communities", "week"} <= set(network)
    assert "net_mwh" not in network["agents"][0] and "expected_cost" not in network["agents"][0]
    systemic = json.loads((published / "systemic.json").read_text())
    assert systemic["schema"] == "prudencial/systemic/v1"
    tracking = json.loads((published / "tracking.json").read_text())
    assert len(tracking["transitions"]) == 2


def test_pictures_command_writes_png_and_svg_in_both_languages(published, tmp_path, capsys):
    weeks = [str(p) for p in sorted(published.glob("network.*.json"))]
    code = main(["pictures", "--weeks", *weeks, "--systemic", str(published / "systemic.json"),
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for name in NAMES:
        for lang in ("pt", "en"):
            for ext in ("png", "svg"):
                path = tmp_path / f"{name}_{lang}.{ext}"
                assert path.exists() and path.stat().st_size > 2_000, path
    pt = (tmp_path / "community_evolution_pt.svg").read_text()
    en = (tmp_path / "community_evolution_en.svg").read_text()
    assert "Evolução das comunidades" in pt and "Community evolution" in en
    assert "capital do sistema" in (tmp_path / "debtrank_pt.svg").read_text()
    assert "system capital" in (tmp_path / "debtrank_en.svg").read_text()


def test_pictures_from_a_tracking_file_and_one_language(published, tmp_path):
    code = main(["pictures", "--tracking", str(published / "tracking.json"), "--lang", "en",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "community_evolution_en.png", "community_evolution_en.svg"]  # fmt: skip


def test_pictures_command_refuses_bad_input(published, tmp_path, capsys):
    assert main(["pictures", "--out", str(tmp_path)]) == 2
    assert "at least one of" in capsys.readouterr().err
    network = str(sorted(published.glob("network.*.json"))[0])
    assert main(["pictures", "--network", network, "--panel-agents", "NOPE",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "NOPE is not in the published network" in capsys.readouterr().err
    code = main(["pictures", "--systemic", str(published / "systemic.json"), "--scenario", "x",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 2 and "scenario 'x'" in capsys.readouterr().err


def test_functions_take_json_round_tripped_dicts(tmp_path):
    """The host holds JSON, not engine objects: every picture is drawn from json.loads output."""
    market = synthetic_market(40, 20, 5, seed=4)
    prices = bootstrap_pld(pld_history_2017(), 300, seed=4)
    result = network_risk(market, prices)
    network = json.loads(json.dumps(published_network(result)))
    systemic = json.loads(json.dumps(published_systemic(systemic_measures(market, prices))))
    memberships = {r["agent"]: r["community"] for r in network["agents"]}
    shifted = {a: (c + 1) % 3 if i % 5 == 0 else c for i, (a, c) in enumerate(memberships.items())}
    tracking = json.loads(json.dumps(
        track_communities([("W1", memberships), ("W2", shifted)]).to_dict()))  # fmt: skip
    agents = [r["agent"] for r in network["agents"][:3]]
    for lang in ("pt", "en"):
        figures = {
            "f5": plots.plot_published_exposure(network, lang=lang),
            "f6": plots.plot_published_communities(network, lang=lang),
            "f7": plots.plot_published_panel(network, agents, lang=lang),
            "ev": plots.plot_community_evolution(tracking, lang=lang),
            "dr": plots.plot_debtrank(systemic, scenario="low", lang=lang),
        }
        for name, fig in figures.items():
            for path in plots.save_figure(fig, tmp_path / f"{name}_{lang}"):
                assert path.stat().st_size > 2_000
    with pytest.raises(ValueError, match="lang"):
        plots.plot_debtrank(systemic, lang="fr")


def test_empty_inputs_draw_a_no_data_picture(tmp_path):
    fig = plots.plot_community_evolution({"weeks": []}, lang="en")
    assert plots.save_figure(fig, tmp_path / "empty")[0].stat().st_size > 0
    with pytest.raises(ValueError, match="systemic.scenarios is empty"):
        plots.plot_debtrank({"scenarios": {}})


@pytest.fixture(scope="module")
def paper_case(tmp_path_factory):
    """The demo at the paper's size (1,000 agents): the calibrated market, two weeks."""
    out = tmp_path_factory.mktemp("paper")
    assert main(["systemic", "--weeks", "2", "--scenarios", "200", "--out", str(out)]) == 0
    return out


def test_systemic_demo_of_the_papers_case_is_calibrated(paper_case, capsys):
    summary = json.loads((paper_case / "summary.json").read_text())
    assert summary["market"]["calibrated"] is True
    assert summary["market"]["generator"] == "paper_market"
    assert (summary["market"]["n_cs"], summary["market"]["n_ge"], summary["market"]["n_cm"]) == (
        600, 350, 50)  # fmt: skip
    # The paper's scenario model: contract prices drawn per scenario within the PLD bounds.
    assert summary["contract_prices"] == "paper"
    assert summary["scenario_model"]["contract_prices"] == {
        "draw": "history", "lower": 0.5, "upper": 1.0}  # fmt: skip
    weeks = sorted(paper_case.glob("network.*.json"))
    assert [w["week"] for w in summary["weeks"]] == [p.name.split(".")[1] for p in weeks]
    for path, row in zip(weeks, summary["weeks"], strict=True):
        network = json.loads(path.read_text())
        assert network["scenario_model"]["contract_prices"]["draw"] == "history"
        # docs/risk.md, "Calibrated market": 18–23 communities on seeds 1–8, none isolated; the
        # churned week (contracts of paper_market(1002)) stays in that range and keeps every
        # agent trading.
        assert 15 <= network["n_communities"] <= 26
        assert network["n_isolated"] == 0 == row["n_isolated"]
        assert network["n_communities"] == row["n_communities"]
    assert summary["weeks"][1]["replacements_seed"] == 1002
    # About five contracts per agent in both weeks (the churn replaces, it does not add).
    assert all(4_500 <= row["n_contracts"] <= 5_500 for row in summary["weeks"])
    systemic = json.loads((paper_case / "systemic.json").read_text())
    assert set(systemic["scenarios"]) == {"high", "low"}
    assert systemic["scenarios"]["high"]["quantile"] == 0.95


def test_systemic_demo_escapes_are_recorded(tmp_path, capsys):
    code = main(["systemic", "--weeks", "1", "--scenarios", "100", "--uncalibrated",
                 "--contract-prices", "fixed", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert "synthetic_market, contract prices fixed" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["market"]["calibrated"] is False
    assert summary["market"]["generator"] == "synthetic_market"
    assert summary["contract_prices"] == "fixed"
    network = json.loads(next(tmp_path.glob("network.*.json")).read_text())
    assert network["scenario_model"]["contract_prices"] == "fixed"


def test_systemic_demo_of_another_size_is_not_calibrated(published):
    """paper_market is the paper's case only: 120 agents draw synthetic_market."""
    summary = json.loads((published / "summary.json").read_text())
    assert summary["market"]["calibrated"] is False
    assert summary["market"]["n_cs"] + summary["market"]["n_ge"] + summary["market"]["n_cm"] == 120
    assert summary["contract_prices"] == "paper"


def test_week_market_keeps_the_calibration():
    """Every agent keeps trading and keeps the first week's cover, week after week."""
    import numpy as np

    from prudencial.risk_tools.cli import _covers

    first = paper_market(1)
    cover = _covers(first)
    rng = np.random.default_rng(0)
    for churn in (1.0, 0.15, 0.15):
        base = _week_market(first, paper_market(2), churn, rng, cover)
        trades = np.zeros(base.n_agents, bool)
        trades[base.seller] = trades[base.buyer] = True
        assert trades.all(), churn
        assert base.agent_ids == first.agent_ids
        assert base.n_contracts == pytest.approx(first.n_contracts, rel=0.1)
        now = _covers(base)
        for cls in ("CS", "GE"):
            mask = base.classes == cls
            assert now[mask] == pytest.approx(cover[mask], rel=1e-9), cls
        # Traders' purchases are scaled to their cover before the generators' are capped,
        # which trims a few traders' sales afterwards (as in synthetic_market).
        cm = base.classes == "CM"
        assert np.median(np.abs(now[cm] - cover[cm])) < 0.01
        assert now[cm].min() >= 0.6 and now[cm].max() <= 1.2
        first = base
    # Without `cover`, the base's own.
    again = _week_market(first, paper_market(3), 0.15, np.random.default_rng(1))
    assert _covers(again)[again.classes == "CS"] == pytest.approx(
        _covers(first)[first.classes == "CS"], rel=1e-9)  # fmt: skip


def test_pictures_for_the_docs_have_stable_names_and_small_palette_pngs(paper_case, tmp_path):
    from PIL import Image

    weeks = [str(p) for p in sorted(paper_case.glob("network.*.json"))]
    code = main(["pictures", "--weeks", *weeks, "--systemic", str(paper_case / "systemic.json"),
                 "--docs", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    expected = {f"{stem}-{lang}.png" for stem in DOCS_PICTURES.values() for lang in ("pt", "en")}
    expected |= {"risk-debtrank-pt.svg", "risk-debtrank-en.svg"}
    assert {p.name for p in tmp_path.iterdir()} == expected
    for name in expected - {"risk-debtrank-pt.svg", "risk-debtrank-en.svg"}:
        with Image.open(tmp_path / name) as image:
            assert image.mode == "P", name
            # White stays white (the palette is median cut, not the octree that greyed it).
            assert image.convert("RGB").getpixel((1, 1)) == (255, 255, 255), name
        assert (tmp_path / name).stat().st_size < 250_000, name
    pt = (tmp_path / "risk-debtrank-pt.svg").read_text()
    en = (tmp_path / "risk-debtrank-en.svg").read_text()
    assert "PLD alto, quantil 0,95" in pt and "high PLD, quantile 0.95" in en
    assert "dc:date" not in pt  # regenerated pictures differ only where the picture does
    assert main(["pictures", "--systemic", str(paper_case / "systemic.json"), "--max-colours",
                 "300", "--out", str(tmp_path)]) == 2  # fmt: skip


def test_published_panel_note_does_not_name_a_column_it_lacks(published, tmp_path):
    network = json.loads(sorted(published.glob("network.*.json"))[-1].read_text())
    agents = [r["agent"] for r in network["agents"][:2]]
    for lang, absent, present in (("en", "Systemic risk:", "not disclosed"),
                                  ("pt", "Risco sistêmico:", "não são divulgados")):  # fmt: skip
        svg = tmp_path / f"panel_{lang}"
        plots.save_figure(plots.plot_published_panel(network, agents, lang=lang), svg, ("svg",))
        text = svg.with_suffix(".svg").read_text()
        assert absent not in text and present in text


def test_evolution_has_a_scale_bar_not_an_agent_axis(published, tmp_path):
    tracking = json.loads((published / "tracking.json").read_text())
    fig = plots.plot_community_evolution(tracking, lang="pt")
    ax = fig.axes[0]
    assert list(ax.get_yticks()) == []
    assert any(t.get_text().endswith(" agentes") for t in ax.texts)
    plots.save_figure(fig, tmp_path / "ev", ("png",))


def test_debtrank_legend_sits_above_the_bars(published):
    systemic = json.loads((published / "systemic.json").read_text())
    fig = plots.plot_debtrank(systemic, lang="en")
    right = fig.axes[1]
    tallest = max(p.get_y() + p.get_height() for p in right.patches)
    assert right.get_ylim()[1] >= 1.25 * tallest
    assert right.get_ylabel() == "system capital lost (%)"
