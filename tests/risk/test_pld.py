import numpy as np
import pytest

from prudencial.risk import PldHistory, bootstrap_pld, load_pld_csv, pld_history_2017
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
