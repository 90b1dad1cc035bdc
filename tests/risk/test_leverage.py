import json
import math

import numpy as np
import pytest

from prudencial.risk import RiskParameters, leverage_factor, leverage_stress, validate_correlation

Z = 1.6448536269514722


def test_worked_example_all_ones(worked_portfolio, worked_parameters):
    result = leverage_factor(worked_portfolio, worked_parameters)
    # MtM = NET·F·h: 10·150·744, −5·160·720, 3·170·744
    assert result.mtm_by_bucket[:3] == pytest.approx((1_116_000, -576_000, 379_440), abs=1e-6)
    assert result.var_by_bucket[:3] == pytest.approx((205_232.65, 127_111.84, 97_690.74), abs=0.01)
    assert result.var_by_bucket[3:] == (0.0, 0.0, 0.0, 0.0)
    assert result.var_total == pytest.approx(430_035.23, abs=0.01)
    assert result.res_fin == 0.0
    assert round(result.fa, 4) == 0.0430
    assert result.fa == pytest.approx(430_035.23 / 10_000_000, rel=1e-8)
    assert result.z == pytest.approx(1.6448536, abs=1e-7)
    assert result.reason is None


def test_worked_example_identity(worked_portfolio, worked_parameters):
    worked_parameters["correlation"] = np.eye(7).tolist()
    result = leverage_factor(worked_portfolio, worked_parameters)
    assert result.var_total == pytest.approx(260_425.31, abs=0.01)


def test_result_is_json_able(worked_portfolio, worked_parameters):
    data = json.loads(json.dumps(leverage_factor(worked_portfolio, worked_parameters).to_dict()))
    assert data["buckets"][0]["mtm"] == {"SE/conventional": pytest.approx(1_116_000)}
    assert data["fa"] == pytest.approx(0.0430035, abs=1e-7)


def _two_sources(portfolio):
    portfolio["positions"] = [
        {"bucket": 0, "submarket": "SE", "energy_type": "conventional",
         "resource_mwm": 10.0, "requirement_mwm": 0.0},
        {"bucket": 0, "submarket": "S", "energy_type": "incentivized_50",
         "resource_mwm": 0.0, "requirement_mwm": 4.0},
    ]  # fmt: skip
    return portfolio


def test_netting_conventions(worked_portfolio, worked_parameters):
    portfolio = _two_sources(worked_portfolio)
    # MtM = +10·150·744 = 1,116,000 and −4·150·744 = −446,400
    absolute = leverage_factor(portfolio, worked_parameters)
    assert absolute.buckets[0].exposure == pytest.approx(1_562_400)
    worked_parameters["netting"] = "net_per_bucket"
    net = leverage_factor(portfolio, worked_parameters)
    assert net.buckets[0].exposure == pytest.approx(669_600)
    assert net.var_total == pytest.approx(669_600 * Z * 0.05 * math.sqrt(5), rel=1e-12)


def test_sigma_for_the_horizon_drops_sqrt_d(worked_portfolio, worked_parameters):
    daily = leverage_factor(worked_portfolio, worked_parameters)
    worked_parameters["sigma_period"] = "horizon"
    horizon = leverage_factor(worked_portfolio, worked_parameters)
    assert horizon.var_total == pytest.approx(daily.var_total / math.sqrt(5), rel=1e-12)


def test_extra_risk_k_theta_and_financial_result(worked_portfolio, worked_parameters):
    worked_portfolio["positions"][0]["avg_purchase_price"] = 140.0  # resource 10 MWm at 140
    worked_portfolio["positions"][1]["avg_sale_price"] = 180.0  # requirement 5 MWm at 180
    worked_portfolio["regulated_market_revenue"] = 1000.0
    worked_parameters["k"] = 1.5
    worked_parameters["theta"] = 0.5
    r = leverage_factor(worked_portfolio, worked_parameters)
    # Stress: long 10 MWm (M0) falls 150 → 61.07; short 5 MWm (M1) rises 160 → 716.80;
    # long 3 MWm (M2) falls 170 → 61.07.
    extra = 10 * 744 * (150 - 61.07) + 5 * 720 * (716.80 - 160) + 3 * 744 * (170 - 61.07)
    assert r.extra_risk == pytest.approx(extra, rel=1e-12)
    assert r.rwa == pytest.approx(1.5 * 430_035.2336 + 0.5 * 1.5 * extra, rel=1e-8)
    # RES_FIN = 5·180·720 − 10·140·744 + 1000
    res_fin = 5 * 180 * 720 - 10 * 140 * 744 + 1000
    assert r.res_fin == pytest.approx(res_fin)
    assert r.fa == pytest.approx((r.rwa - res_fin) / 1e7, rel=1e-12)
    assert r.fa_risk == pytest.approx(r.rwa / 1e7, rel=1e-12)


def test_fa_is_never_negative(worked_portfolio, worked_parameters):
    worked_portfolio["regulated_market_revenue"] = 1e9
    assert leverage_factor(worked_portfolio, worked_parameters).fa == 0.0


@pytest.mark.parametrize("pla", [0.0, -5_000_000.0])
def test_no_fa_without_equity(worked_portfolio, worked_parameters, pla):
    worked_portfolio["adjusted_equity"] = pla
    r = leverage_factor(worked_portfolio, worked_parameters)
    assert r.fa is None and r.fa_risk is None
    assert "PLA" in r.reason and "≤ 0" in r.reason
    assert r.var_total == pytest.approx(430_035.23, abs=0.01)


def test_stress_scenarios(worked_portfolio, worked_parameters):
    results = leverage_stress(worked_portfolio, worked_parameters, shifts=(-50.0, 50.0))
    assert set(results) == {"base", "pld_floor", "pld_cap", "shift_-50", "shift_+50"}
    # VaR scales with |MtM| ∝ F: every bucket at the cap multiplies each bucket's VaR by 716.8/F.
    base = results["base"]
    cap = results["pld_cap"]
    for i, f in enumerate((150.0, 160.0, 170.0)):
        assert cap.buckets[i].var == pytest.approx(base.buckets[i].var * 716.80 / f, rel=1e-12)
    assert results["pld_floor"].var_total < base.var_total < results["shift_+50"].var_total


def _bad(params, path, value):
    target = params
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return params


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("confidence",), 1.2, "parameters.confidence"),
        (("liquidation_days",), 0, "parameters.liquidation_days"),
        (("buckets", 2, "hours"), 0, "parameters.buckets[2].hours"),
        (("buckets", 3, "volatility"), -0.1, "parameters.buckets[3].volatility"),
        (("buckets", 4, "index"), 5, "parameters.buckets[4].index"),
        (("netting",), "gross", "parameters.netting"),
        (("sigma_period",), "weekly", "parameters.sigma_period"),
        (("forward_prices", "SE"), [1.0] * 6, "parameters.forward_prices.SE"),
        (("week",), "2023-03", "parameters.week"),
        (("pld_floor",), 900.0, "parameters.pld_floor"),
        (("k",), -1, "parameters.k"),
    ],
)
def test_parameter_errors_name_the_field(worked_parameters, path, value, field):
    with pytest.raises(ValueError, match=r"^" + field.replace("[", r"\[").replace("]", r"\]")):
        RiskParameters.from_dict(_bad(worked_parameters, path, value))


def test_six_buckets_rejected(worked_parameters):
    worked_parameters["buckets"] = worked_parameters["buckets"][:6]
    with pytest.raises(ValueError, match="parameters.buckets must list 7"):
        RiskParameters.from_dict(worked_parameters)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("positions", 0, "bucket"), 7, r"portfolio.positions\[0\].bucket"),
        (("positions", 1, "submarket"), "SUL", r"portfolio.positions\[1\].submarket"),
        (("positions", 2, "energy_type"), "solar", r"portfolio.positions\[2\].energy_type"),
        (("positions", 0, "resource_mwm"), -1.0, r"portfolio.positions\[0\].resource_mwm"),
        (("positions", 0, "avg_sale_price"), "10", r"portfolio.positions\[0\].avg_sale_price"),
        (("adjusted_equity",), None, "portfolio.adjusted_equity"),
        (("schema",), "prudencial/portfolio/v0", "portfolio.schema"),
        (("agent", "acronym"), "", "portfolio.agent.acronym"),
    ],
)
def test_portfolio_errors_name_the_field(worked_portfolio, worked_parameters, path, value, field):
    with pytest.raises(ValueError, match=field):
        leverage_factor(_bad(worked_portfolio, path, value), worked_parameters)


def test_duplicate_rows_rejected(worked_portfolio, worked_parameters):
    worked_portfolio["positions"].append(dict(worked_portfolio["positions"][0]))
    with pytest.raises(ValueError, match=r"portfolio.positions\[3\] repeats"):
        leverage_factor(worked_portfolio, worked_parameters)


def test_missing_forward_curve(worked_portfolio, worked_parameters):
    del worked_parameters["forward_prices"]["SE"]
    with pytest.raises(ValueError, match="parameters.forward_prices.SE is required"):
        leverage_factor(worked_portfolio, worked_parameters)


def test_validate_correlation():
    assert validate_correlation(np.eye(7)).shape == (7, 7)
    rho = np.eye(7)
    rho[0, 1] = 0.5
    with pytest.raises(ValueError, match="symmetric"):
        validate_correlation(rho)
    rho = np.eye(7)
    rho[0, 1] = rho[1, 0] = rho[1, 2] = rho[2, 1] = 0.9
    rho[0, 2] = rho[2, 0] = -0.9
    with pytest.raises(ValueError, match="positive semi-definite"):
        validate_correlation(rho)
    rho = np.eye(7)
    rho[3, 3] = 0.99
    with pytest.raises(ValueError, match=r"correlation\[3\]\[3\] must be 1"):
        validate_correlation(rho)
    rho = np.eye(7)
    rho[0, 1] = rho[1, 0] = 1.2
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        validate_correlation(rho)
    with pytest.raises(ValueError, match="7×7"):
        validate_correlation(np.eye(6))


def test_missing_stress_prices_give_no_stress_parcel_never_a_zero_price(
    worked_portfolio, worked_parameters
):
    """A bucket without stress prices is not stressed to R$ 0: it has no stress parcel."""
    for bucket in worked_parameters["buckets"]:
        bucket.pop("stress_price_long", None)
        bucket.pop("stress_price_short", None)
    r = leverage_factor(worked_portfolio, worked_parameters)
    assert r.extra_risk == 0.0
    assert r.fa == pytest.approx(0.0430, abs=5e-5)


def test_theta_needs_every_stress_price(worked_portfolio, worked_parameters):
    worked_parameters["theta"] = 0.5
    worked_parameters["buckets"][3].pop("stress_price_short", None)
    with pytest.raises(ValueError, match=r"buckets\[3\]\.stress_price_short is required"):
        leverage_factor(worked_portfolio, worked_parameters)


def test_portfolio_of_another_week_is_refused(worked_portfolio, worked_parameters):
    """Another week's prices and volatilities would give a plausible but wrong FA."""
    other = {**worked_portfolio, "week": "209901001"}
    with pytest.raises(ValueError, match=r"portfolio\.week 209901001 must be the parameters' week"):
        leverage_factor(other, worked_parameters)


# --- v2 payloads (docs/formats.md) --------------------------------------------------------------


@pytest.fixture
def worked_v2() -> dict:
    from tests.risk.conftest import _load

    return _load("worked_example_portfolio_v2.json")


def test_worked_example_holds_on_the_v2_payload(worked_v2, worked_parameters):
    result = leverage_factor(worked_v2, worked_parameters)
    assert result.mtm_by_bucket[:3] == pytest.approx((1_116_000, -576_000, 379_440), abs=1e-6)
    assert result.var_total == pytest.approx(430_035.23, abs=0.01)
    assert round(result.fa, 4) == 0.0430 and result.pla == 10_000_000.0


def _contract(bucket, side, contract_type, volume, amount, energy="conventional", sm="SE"):
    return {"bucket": bucket, "side": side, "contract_type": contract_type,
            "energy_type": energy, "submarket": sm, "volume_mwm": volume, "amount_brl": amount}  # fmt: skip


def test_each_row_has_its_own_price_and_the_source_nets(worked_v2, worked_parameters):
    worked_v2["forecasts"] = []
    worked_v2["contracts"] = [
        _contract(0, "purchase", "fixed_price", 10.0, 1_000_000.0, "incentivized_50"),
        _contract(0, "sale", "derivative", 4.0, 500_000.0, "incentivized_50"),
    ]
    worked_parameters["energy_spreads"] = {
        t: [20.0] * 7 if t == "incentivized_50" else [0.0] * 7
        for t in ("conventional", "conventional_special", "incentivized_50", "incentivized_80",
                  "incentivized_100", "qualified_cogeneration")
    }  # fmt: skip
    worked_parameters["contract_spreads"] = {
        "fixed_price": [0.0] * 7, "variable_price": [0.0] * 7, "derivative": [0.0] * 7
    }  # fmt: skip
    worked_parameters["forward_curves"] = {"SE/incentivized_50/derivative": [200.0] * 7}
    r = leverage_factor(worked_v2, worked_parameters)
    # purchase at F_base = 150 + 20; sale at the derivative curve 200: one source, netted
    mtm = 10 * 170 * 744 - 4 * 200 * 744
    assert r.buckets[0].mtm == {"SE/incentivized_50": pytest.approx(mtm)}
    assert r.buckets[0].net_mwm == {"SE/incentivized_50": pytest.approx(6.0)}
    assert r.buckets[0].forward_price == {"SE/incentivized_50": pytest.approx(170.0)}
    # RES_FIN from the declared R$: sales − purchases
    assert r.res_fin == pytest.approx(500_000.0 - 1_000_000.0)
    assert r.pla == 10_000_000.0


def test_pla_is_equity_minus_the_deductions(worked_v2, worked_parameters):
    worked_v2["equity"]["intangibles_brl"] = 2_000_000.0
    worked_v2["equity"]["tax_credits_brl"] = 500_000.0
    r = leverage_factor(worked_v2, worked_parameters)
    assert r.pla == 7_500_000.0
    assert r.fa == pytest.approx(430_035.23122 / 7_500_000.0, rel=1e-9)


def test_an_unpriced_energy_type_is_refused_naming_the_field(worked_v2, worked_parameters):
    worked_v2["forecasts"][0]["energy_type"] = "incentivized_80"
    worked_parameters["energy_spreads"] = {"conventional": [0.0] * 7}
    with pytest.raises(ValueError, match=r"parameters\.energy_spreads\.incentivized_80"):
        leverage_factor(worked_v2, worked_parameters)


def test_stress_at_the_floor_prices_every_source_at_the_floor(worked_v2, worked_parameters):
    worked_parameters["forward_curves"] = {"SE/conventional": [300.0] * 7}
    results = leverage_stress(worked_v2, worked_parameters)
    assert results["base"].buckets[0].forward_price["SE/conventional"] == 300.0
    assert results["pld_floor"].buckets[0].forward_price["SE/conventional"] == 61.07
    assert results["shift_+100"].buckets[0].forward_price["SE/conventional"] == 400.0
