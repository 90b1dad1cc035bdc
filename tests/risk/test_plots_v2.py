"""Pictures drawn from published answers only (Figs. 5–7, community evolution, DebtRank)."""

import json

import pytest

from enclave_bridge.enclave.disclosure import published_network, published_systemic
from prudencial.risk import bootstrap_pld, network_risk, pld_history_2017
from prudencial.risk.systemic import systemic_measures
from prudencial.risk.tracking import track_communities
from prudencial.risk_tools import plots
from prudencial.risk_tools.cli import main
from prudencial.risk_tools.synthetic import synthetic_market

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
