"""lm(): lecture B's complete-pooling and state fixed-effects tables, BIC, and OLS by hand."""

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mh


@pytest.fixture(scope="module")
def pooled(arrests):
    return mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)


@pytest.fixture(scope="module")
def state_fe(arrests):
    return mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", arrests)


def _r3(x):  # R's tibble print: 3 significant digits
    return float(f"{x:.3g}")


def test_complete_pooling_matches_lecture(pooled):
    t = mh.tidy(pooled)
    assert list(t.term) == ["(Intercept)", "pop_pct_pov"]
    assert [_r3(v) for v in t.estimate] == [2.21, 0.109]
    assert [_r3(v) for v in t.std_error] == [0.171, 0.00963]
    assert [_r3(v) for v in t.statistic] == [12.9, 11.3]
    assert [_r3(v) for v in t.p_value] == [1.74e-37, 4.28e-29]


def test_state_fixed_effects_match_lecture(state_fe):
    t = mh.tidy(state_fe).head(10)
    expected = [
        ("(Intercept)", 11.6, 0.808, 14.3, 2.78e-45),
        ("pop_pct_pov", 0.134, 0.0103, 12.9, 1.24e-37),
        ("factor(stusps)AL", -9.07, 0.909, -9.98, 3.35e-23),
        ("factor(stusps)AR", -9.62, 0.903, -10.7, 3.58e-26),
        ("factor(stusps)AZ", -11.9, 1.11, -10.8, 7.64e-27),
        ("factor(stusps)CA", -10.2, 0.888, -11.4, 7.76e-30),
        ("factor(stusps)CO", -10.5, 0.898, -11.7, 3.56e-31),
        ("factor(stusps)CT", -11.2, 1.55, -7.22, 6.30e-13),
        ("factor(stusps)DC", 2.09, 2.78, 0.751, 4.53e-1),
        ("factor(stusps)DE", -12.3, 2.32, -5.29, 1.30e-7),
    ]
    for row, (term, est, se, stat, p) in zip(t.itertuples(), expected, strict=True):
        assert row.term == term
        assert (_r3(row.estimate), _r3(row.std_error), _r3(row.statistic), _r3(row.p_value)) == (est, se, stat, p)
    assert len(mh.tidy(state_fe)) == 52


def test_bic_table_matches_lecture(pooled, state_fe):
    tab = mh.bic(m_complete_pooling=pooled, m_state_fe=state_fe)
    assert list(tab.index) == ["m_complete_pooling", "m_state_fe"]
    assert list(tab.df) == [3, 53]
    assert [f"{v:.2f}" for v in tab.BIC] == ["24507.84", "23917.00"]


def test_ols_by_hand(arrests, pooled):
    X = np.column_stack([np.ones(len(arrests)), arrests.pop_pct_pov])
    y = arrests.violent_arrest_per1000.to_numpy()
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(pooled.coef, beta, rtol=1e-10)
    resid = y - X @ beta
    n = len(y)
    s2 = resid @ resid / (n - 2)
    np.testing.assert_allclose(pooled.se_coef, np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X))), rtol=1e-10)
    sigma_ml2 = resid @ resid / n
    loglik = -n / 2 * (np.log(2 * np.pi * sigma_ml2) + 1)
    assert pooled.loglik == pytest.approx(loglik, rel=1e-12)
    assert pooled.bic == pytest.approx(-2 * loglik + np.log(n) * 3, rel=1e-12)
    assert pooled.aic == pytest.approx(-2 * loglik + 2 * 3, rel=1e-12)


def test_predict_and_residuals(arrests, state_fe):
    np.testing.assert_allclose(state_fe.predict(arrests), state_fe.fitted)
    np.testing.assert_allclose(state_fe.fitted + state_fe.residuals(), arrests.violent_arrest_per1000)
    new = pd.DataFrame({"pop_pct_pov": [0.0], "stusps": ["AK"]})
    assert state_fe.predict(new).iloc[0] == pytest.approx(state_fe.coef["(Intercept)"])


def test_lm_rejects_random_terms(arrests):
    with pytest.raises(ValueError, match="use mlmhelpers.lmer"):
        mh.lm("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", arrests)


def test_lm_summary_text(pooled):
    s = pooled.summary()
    assert "Pr(>|t|)" in s and "(Intercept)" in s and "1.74e-37" in s
