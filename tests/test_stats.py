"""bot.stats against published table values (scipy is not a dependency, so the tables are the oracle)."""

import math

import pytest

from bot.stats import f_sf, normal_cdf, t_cdf, t_quantile

INF = math.inf


@pytest.mark.parametrize(
    "p, df, expected",
    [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 10, 2.228), (0.95, 5, 2.015), (0.95, 30, 1.697),
     (0.975, INF, 1.960), (0.9772498680518208, INF, 2.0)],
    ids=["t1", "t2", "t10", "t5-95", "t30-95", "normal", "normal-z2"],
)
def test_t_quantile_matches_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("t, df", [(2.0, 3), (-2.0, 3), (0.5, 1), (3.0, 50)])
def test_t_cdf_is_symmetric_and_inverts_the_quantile(t, df):
    assert t_cdf(t, df) + t_cdf(-t, df) == pytest.approx(1.0)
    if t > 0:
        assert t_quantile(t_cdf(t, df), df) == pytest.approx(t, rel=1e-6)


@pytest.mark.parametrize(
    "f, df1, df2, expected",
    [(19.0, 2, 2, 0.05), (4.1028, 2, 10, 0.05), (3.0, 2, INF, math.exp(-3.0)),  # χ²₂/2 tail
     (0.0, 2, 5, 1.0), (161.45, 1, 1, 0.05)],
    ids=["f22", "f2-10", "f2-inf", "zero", "f11"],
)
def test_f_tail_matches_tables(f, df1, df2, expected):
    assert f_sf(f, df1, df2) == pytest.approx(expected, abs=2e-4)


def test_normal_cdf():
    assert normal_cdf(0.0) == 0.5 and normal_cdf(1.959963985) == pytest.approx(0.975)
