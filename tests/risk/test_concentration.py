import pytest

from prudencial.risk import counterparty_concentration


def test_largest_and_top_five(counterparties_payload):
    r = counterparty_concentration(counterparties_payload, 10_000_000.0)
    # GE12: 1.2M + 0.8M + 0.5M − 0.2M = 2.3M; CM03: 0.3M + 0.15M + 0.05M = 0.5M
    assert r.largest_counterparty == "GE12"
    assert r.largest_exposure == pytest.approx(2_300_000)
    assert r.largest_ratio == pytest.approx(0.23)
    assert r.top_five_ratio == pytest.approx(0.28)
    assert r.to_dict()["exposures"][1]["net_exposure"] == pytest.approx(500_000)


def test_mitigants_never_make_exposure_negative(counterparties_payload):
    counterparties_payload["counterparties"][1]["mitigation_brl"] = 9e9
    r = counterparty_concentration(counterparties_payload, 1e7)
    assert r.exposures[1]["net_exposure"] == 0.0
    assert r.top_five_exposure == pytest.approx(2_300_000)


def test_no_ratio_without_equity(counterparties_payload):
    r = counterparty_concentration(counterparties_payload, 0.0)
    assert r.largest_ratio is None and r.top_five_ratio is None
    assert "PLA" in r.reason


def test_at_most_five(counterparties_payload):
    row = counterparties_payload["counterparties"][0]
    counterparties_payload["counterparties"] = [dict(row) for _ in range(6)]
    with pytest.raises(ValueError, match="at most 5"):
        counterparty_concentration(counterparties_payload, 1e7)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("mtm_m1_brl", "x", r"counterparties.counterparties\[0\].mtm_m1_brl"),
        ("mitigation_brl", -1.0, r"counterparties.counterparties\[0\].mitigation_brl"),
        ("volume_mwm", [1.0], r"counterparties.counterparties\[0\].volume_mwm"),
        ("cnpj", "", r"counterparties.counterparties\[0\].cnpj"),
    ],
)
def test_errors_name_the_field(counterparties_payload, key, value, field):
    counterparties_payload["counterparties"][0][key] = value
    with pytest.raises(ValueError, match=field):
        counterparty_concentration(counterparties_payload, 1e7)
