"""R-style accessors, intervals, ICC and group intercepts."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mlmhelpers as mh


@pytest.fixture(scope="module")
def faculty_models():
    f = mh.load_faculty()
    return f, mh.lmer("salary ~ experience + (1 | department)", f), mh.lmer(
        "salary ~ experience + (1 + experience | department)", f)


def test_functions_mirror_attributes(m_ri):
    pd.testing.assert_series_equal(mh.fixef(m_ri), m_ri.fixef)
    pd.testing.assert_frame_equal(mh.ranef(m_ri), m_ri.ranef)
    pd.testing.assert_frame_equal(mh.coef(m_ri), m_ri.coef)
    pd.testing.assert_series_equal(mh.se_fixef(m_ri), m_ri.se_fixef)
    pd.testing.assert_frame_equal(mh.se_ranef(m_ri), m_ri.se_ranef)
    pd.testing.assert_frame_equal(mh.varcorr(m_ri), m_ri.varcorr)
    assert mh.sigma(m_ri) == m_ri.sigma and mh.is_singular(m_ri) is False


def test_wrong_model_type_is_named(arrests):
    pooled = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)
    with pytest.raises(TypeError, match="fixef\\(\\) needs a model fitted by lmer\\(\\) or glmer\\(\\), got LmResult"):
        mh.fixef(pooled)
    with pytest.raises(TypeError, match="se_coef"):
        mh.se_coef(mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", arrests))
    with pytest.raises(TypeError):
        mh.coef("not a model")


def test_icc_uses_variances_not_sds(m_ri):
    vc = m_ri.varcorr.vcov.to_numpy()
    assert mh.icc(m_ri) == pytest.approx(vc[0] / (vc[0] + vc[1]), rel=1e-12)
    assert f"{mh.icc(m_ri):.3f}" == "0.295"
    sd = m_ri.varcorr.sdcor.to_numpy()
    assert abs(sd[0] / (sd[0] + sd[1]) - mh.icc(m_ri)) > 0.08  # the lecture's 0.39 is something else


def test_icc_random_slopes_is_average_group_variance(faculty_models):
    f, _, m3 = faculty_models
    cov = m3.sigma**2 * m3.sol.Lambda @ m3.sol.Lambda.T
    x = f.experience.to_numpy()
    var_rows = cov[0, 0] + 2 * cov[0, 1] * x + cov[1, 1] * x**2  # brute force, row by row
    v = var_rows.mean()
    assert mh.icc(m3) == pytest.approx(v / (v + m3.sigma**2), rel=1e-12)


def test_coef_intervals_are_coef_plus_minus_k_se(faculty_models):
    _, m1, m3 = faculty_models
    tab = mh.coef_intervals(m1)
    np.testing.assert_allclose(tab.lower, m1.coef["(Intercept)"] - 2 * m1.se_ranef["(Intercept)"])
    np.testing.assert_allclose(tab.upper, m1.coef["(Intercept)"] + 2 * m1.se_ranef["(Intercept)"])
    slope = mh.coef_intervals(m3, term="experience", k=1.96)
    np.testing.assert_allclose(slope.upper - slope.lower, 2 * 1.96 * m3.se_ranef["experience"])
    with pytest.raises(ValueError, match="not a random-effect term.*\\(Intercept\\)"):
        mh.coef_intervals(m1, term="experience")
    with pytest.raises(ValueError, match="positive"):
        mh.coef_intervals(m1, k=-1)


def test_balanced_groups_share_se_ranef(faculty_models):
    # lecture A: with 20 faculty per department every intercept has the same SE
    _, m1, _ = faculty_models
    se = m1.se_ranef["(Intercept)"].to_numpy()
    np.testing.assert_allclose(se, se[0], rtol=1e-12)


def test_confint(arrests, m_ri):
    pooled = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)
    ci = mh.confint(pooled)
    crit = stats.t.ppf(0.975, pooled.df_resid)
    np.testing.assert_allclose(ci.upper - pooled.coef, crit * pooled.se_coef)
    ci2 = mh.confint(m_ri, level=0.9)
    np.testing.assert_allclose(ci2.upper - m_ri.fixef, stats.norm.ppf(0.95) * m_ri.se_fixef)
    with pytest.raises(ValueError, match="level"):
        mh.confint(m_ri, level=95)


def test_group_intercepts_equal_group_wise_sums(arrests):
    fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", arrests)
    gi = mh.group_intercepts(fe, "stusps")
    assert gi.index[0] == "AK" and len(gi) == 51
    b = fe.coef
    assert gi.loc["AK", "estimate"] == pytest.approx(b["(Intercept)"])
    assert gi.loc["DC", "estimate"] == pytest.approx(b["(Intercept)"] + b["factor(stusps)DC"])
    assert gi.loc["DC", "n"] == 2 and gi.n.sum() == 4286
    # Independent check: the same model without an intercept estimates each state's intercept directly.
    direct = mh.lm("violent_arrest_per1000 ~ 0 + factor(stusps) + pop_pct_pov", arrests)
    np.testing.assert_allclose(gi.estimate.to_numpy(), direct.coef.iloc[:51].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(gi.std_error.to_numpy(), direct.se_coef.iloc[:51].to_numpy(), rtol=1e-8)
    with pytest.raises(ValueError, match="No coefficients for factor\\(year\\)"):
        mh.group_intercepts(fe, "year")


def test_predict_interval_matches_analytic_normal_interval(arrests, m_ri):
    new = pd.DataFrame({"pop_pct_pov": [15.0, 15.0], "stusps": ["CA", "ZZ"]})
    n_sims = 40_000
    tab = mh.predict_interval(m_ri, new, allow_new_levels=True, n_sims=n_sims, seed=1)
    np.testing.assert_allclose(tab.fit, m_ri.predict(new, allow_new_levels=True))
    x = np.array([1.0, 15.0])
    var_beta = x @ m_ri.vcov.to_numpy() @ x
    ca = list(m_ri.ranef.index).index("CA")
    var_known = var_beta + m_ri.condvar[ca, 0, 0] + m_ri.sigma**2
    var_new = var_beta + m_ri.varcorr.vcov.iloc[0] + m_ri.sigma**2
    z = stats.norm.ppf(0.975)
    # Monte Carlo error of a 2.5 % quantile with 40,000 draws is about 1 % of the half-width.
    assert (tab.upper.iloc[0] - tab.lower.iloc[0]) / 2 == pytest.approx(z * np.sqrt(var_known), rel=0.03)
    assert (tab.upper.iloc[1] - tab.lower.iloc[1]) / 2 == pytest.approx(z * np.sqrt(var_new), rel=0.03)
    again = mh.predict_interval(m_ri, new, allow_new_levels=True, n_sims=n_sims, seed=1)
    pd.testing.assert_frame_equal(tab, again)  # seeded: identical
    with pytest.raises(ValueError, match="New level"):
        mh.predict_interval(m_ri, new)
