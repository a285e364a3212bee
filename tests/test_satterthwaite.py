"""Satterthwaite df (mlmhelpers/satterthwaite.py) against lmerTest 3.1-3 and exact balanced-design answers.

Reference values: tests/r/inference_reference.R. lme4's default optimiser stops with θ about 1e-4
from the optimum, which moves the df in the 4th–5th digit; mlmhelpers polishes the optimum. So the
full-precision references come from the same fits with a tight optimiser ("TIGHT" in the script),
where R's θ agrees with ours to ~1e-7, and lmerTest's published default-fit figures are checked at
their printed digits.
"""

import dataclasses

import numpy as np
import pytest
from inference_refs import sleepstudy, with_state_poverty

from mlmhelpers import lmer
from mlmhelpers.lmertest import coef_table
from mlmhelpers.satterthwaite import richardson_hessian, richardson_jacobian, satterthwaite_df_1d


@pytest.fixture(scope="module")
def sleep():
    return lmer("Reaction ~ Days + (Days | Subject)", sleepstudy())


@pytest.fixture(scope="module")
def arr(arrests):
    return with_state_poverty(arrests)


def test_sleepstudy_published_digits(sleep):
    # lmerTest's documentation: df 17, t = 6.771, p = 3.26e-06 for Days.
    ct = coef_table(sleep, "Satterthwaite")
    assert round(ct.loc["Days", "df"], 3) == 17.000
    assert round(ct.loc["Days", "t value"], 3) == 6.771
    assert f"{ct.loc['Days', 'Pr(>|t|)']:.3g}" == "3.26e-06"


def test_sleepstudy_tight_reference(sleep):
    ct = coef_table(sleep, "Satterthwaite")
    assert ct["df"].to_numpy() == pytest.approx([17.0000017392, 17.0000001668], rel=1e-6)
    assert ct["Std. Error"].to_numpy() == pytest.approx([6.82455626155, 1.54578889289], rel=1e-6)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([1.17088323711e-17, 3.26378781183e-06], rel=1e-5)


def test_algorithm_at_lmers_own_theta(sleep):
    # At exactly R's (default-fit) θ the numbers must be lmerTest's to ~7 digits: this checks the
    # numerical derivatives independently of the optimiser.
    at_r = dataclasses.replace(sleep, sol=sleep._pls_at(np.array([0.966741773967, 0.015169058896, 0.230909953208])))
    _, df0 = satterthwaite_df_1d(at_r, np.array([1.0, 0.0]))
    _, df1 = satterthwaite_df_1d(at_r, np.array([0.0, 1.0]))
    assert [df0, df1] == pytest.approx([16.9997262885, 16.9999837256], rel=2e-7)


def test_balanced_design_exact_df():
    # Balanced random intercept: the within-subject slope has the classical df N - J - 1 = 161.
    m = lmer("Reaction ~ Days + (1 | Subject)", sleepstudy())
    ct = coef_table(m, "Satterthwaite")
    assert ct.loc["Days", "df"] == pytest.approx(161.0, rel=1e-7)
    assert ct.loc["(Intercept)", "df"] == pytest.approx(22.8101989553, rel=1e-6)


def test_arrests_random_intercept(m_ri):
    ct = coef_table(m_ri, "Satterthwaite")
    assert ct["df"].to_numpy() == pytest.approx([56.0780277311, 4283.2748629504], rel=1e-6)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([1.21526229346e-05, 9.47080010386e-38], rel=1e-5)
    # printed digits of the default fit (lmerTest summary): 56.08 and 4283
    assert round(ct["df"].iloc[0], 2) == 56.08 and round(ct["df"].iloc[1]) == 4283


def test_arrests_state_level_predictor_has_state_df(arr):
    m = lmer("violent_arrest_per1000 ~ pop_pct_pov + pov_state + (1 | stusps)", arr)
    ct = coef_table(m, "Satterthwaite")
    assert ct["df"].to_numpy() == pytest.approx([40.3859129819, 4222.4527505701, 40.1891658295], rel=1e-5)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([8.93406229194e-02, 1.43897426194e-37, 6.53018094455e-01],
                                                      rel=1e-5)
    assert ct.loc["pov_state", "df"] < 51  # about the number of states, not of counties


def test_arrests_random_slope(arrests):
    m = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests)
    ct = coef_table(m, "Satterthwaite")
    assert ct["df"].to_numpy() == pytest.approx([40.4015916264, 32.7001557507], rel=2e-6)
    assert ct["Pr(>|t|)"].to_numpy() == pytest.approx([0.005773199851769, 0.000106276454261], rel=2e-5)


def test_richardson_derivatives_exact_on_known_functions():
    def f(x):
        return np.exp(x[0]) * np.sin(x[1]) + x[0] ** 3 * x[1]

    x = np.array([0.3, 1.2])
    H = richardson_hessian(f, x)
    exact = np.array([[np.exp(0.3) * np.sin(1.2) + 6 * 0.3 * 1.2, np.exp(0.3) * np.cos(1.2) + 3 * 0.09],
                      [np.exp(0.3) * np.cos(1.2) + 3 * 0.09, -np.exp(0.3) * np.sin(1.2)]])
    assert np.allclose(H, exact, rtol=1e-8)
    J = richardson_jacobian(lambda v: np.array([v[0] * v[1], v[1] ** 2]), x)
    assert np.allclose(J, [[1.2, 0.3], [0.0, 2.4]], rtol=1e-10)
