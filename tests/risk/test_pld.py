import numpy as np
import pytest

from prudencial.risk import (
    PldHistory,
    bootstrap_pld,
    load_pld_csv,
    pld_history,
    pld_history_2017,
)
from prudencial.risk.pld import weekly_cmo_history


def test_shipped_history():
    history = weekly_cmo_history()
    assert history.values.size == 262
    assert history.week_end[0].isoformat() == "2016-01-01"
    series = pld_history_2017()
    assert series.size == 52
    assert series.min() >= 33.68 and series.max() == pytest.approx(533.82)


def test_csv_with_semicolons_and_decimal_commas(tmp_path):
    path = tmp_path / "pld.csv"
    path.write_text("inicio;fim;pld\n01/01/2024;07/01/2024;61,07\n08/01/2024;14/01/2024;100,5\n")
    history = load_pld_csv(path)
    np.testing.assert_allclose(history.values, [61.07, 100.5])
    assert history.week_end[1].isoformat() == "2024-01-14"


def test_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("week,price\n1,10\n2,abc\n")
    with pytest.raises(ValueError, match="line 3"):
        load_pld_csv(path)
    with pytest.raises(ValueError, match="no column 'pld'"):
        load_pld_csv(path, value_column="pld")


def test_bootstrap_draws_from_the_history():
    history = np.array([10.0, 20.0, 30.0])
    draws = bootstrap_pld(history, 1000, seed=1)
    assert set(np.unique(draws)) <= set(history)
    assert len(np.unique(draws)) == 3
    monthly = bootstrap_pld(PldHistory(history), 500, seed=1, weeks_per_scenario=4, block_length=2)
    assert monthly.shape == (500,) and monthly.min() >= 10 and monthly.max() <= 30
    clipped = bootstrap_pld(history, 100, seed=1, floor=15.0, cap=25.0)
    assert clipped.min() == 15.0 and clipped.max() == 25.0


def test_bootstrap_validation():
    with pytest.raises(ValueError, match="n_scenarios"):
        bootstrap_pld([1.0], 0)


@pytest.mark.parametrize("year", [2016, 2017, 2018])
def test_each_years_series_is_bounded_by_that_years_floor_and_cap(year):
    from prudencial.risk.pld import PLD_LIMITS

    floor, cap = PLD_LIMITS[year]
    raw = weekly_cmo_history().year(year)
    series = pld_history(year)
    np.testing.assert_array_equal(series, np.clip(raw, floor, cap))
    assert series.min() >= floor and series.max() <= cap
    # The raw CMO leaves the band every one of these years (2016 falls to 0.08, 2017 and 2018
    # reach 860.84 and 784.90), so the bounding is not a no-op.
    assert raw.min() < floor or raw.max() > cap


def test_years_without_limits_on_record_need_them_given():
    with pytest.raises(ValueError, match="floor and cap of 2019 are not on record"):
        pld_history(2019)
    series = pld_history(2019, floor=40.0, cap=500.0)
    assert series.min() == 40.0 and series.max() == 500.0
    with pytest.raises(ValueError, match="year must be one of"):
        pld_history(2015)
    with pytest.raises(ValueError, match="floor must be < cap"):
        pld_history(2017, floor=600.0)
