"""tidy/glance tables, AIC/BIC tables, anova and the shrinkage table."""

import numpy as np
import pytest
from scipy import stats

import mlmhelpers as mh


def test_tidy_lmer_default_effects(m_ri):
    t = mh.tidy(m_ri)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic"]
    assert list(t.term) == ["(Intercept)", "pop_pct_pov", "sd__(Intercept)", "sd__Observation"]
    assert list(t.effect) == ["fixed", "fixed", "ran_pars", "ran_pars"]
    assert t.estimate.iloc[2] == pytest.approx(m_ri.varcorr.sdcor.iloc[0])


def test_tidy_ran_vals_and_coefs(m_ri):
    rv = mh.tidy(m_ri, effects="ran_vals", conf_int=True)
    assert len(rv) == 51 and set(rv.level) == set(m_ri.ranef.index)
    ak = rv[rv.level == "AK"].iloc[0]
    assert ak.estimate == pytest.approx(m_ri.ranef.loc["AK", "(Intercept)"])
    assert ak.std_error == pytest.approx(m_ri.se_ranef.loc["AK", "(Intercept)"])
    assert ak.conf_high - ak.estimate == pytest.approx(stats.norm.ppf(0.975) * ak.std_error)
    rc = mh.tidy(m_ri, effects=["ran_coefs"])
    assert len(rc) == 102
    with pytest.raises(ValueError, match="Unknown effects"):
        mh.tidy(m_ri, effects="random")


def test_tidy_correlation_term(arrests):
    m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests)
    t = mh.tidy(m, effects="ran_pars")
    assert list(t.term) == ["sd__(Intercept)", "sd__pop_pct_pov", "cor__(Intercept).pop_pct_pov", "sd__Observation"]
    cov = m.sigma**2 * m.sol.Lambda @ m.sol.Lambda.T
    assert t.estimate.iloc[2] == pytest.approx(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]))


def test_glance(arrests, m_ri):
    g = mh.glance(m_ri)
    assert g.nobs.iloc[0] == 4286 and g.reml_criterion.iloc[0] == pytest.approx(m_ri.reml_criterion)
    g2 = mh.glance(mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests))
    assert "r_squared" in g2.columns


def test_aic_bic_single_and_table(arrests, m_ri):
    pooled = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)
    assert mh.bic(pooled) == pytest.approx(pooled.bic)
    tab = mh.aic(pooled, multilevel=m_ri)
    assert list(tab.index) == ["model1", "multilevel"] and list(tab.df) == [3, 4]
    with pytest.raises(ValueError, match="different numbers of observations"):
        mh.bic(pooled, mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests.iloc[:100]))
    with pytest.raises(TypeError):
        mh.bic(pooled, "model")


def test_anova_refits_with_ml_and_matches_manual_lrt(arrests, m_ri):
    slope = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests)
    tab = mh.anova(intercept=m_ri, slope=slope)
    ml0 = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", arrests, REML=False)
    ml1 = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", arrests, REML=False)
    chisq = 2 * (ml1.loglik - ml0.loglik)
    assert tab.loc["slope", "Chisq"] == pytest.approx(chisq, rel=1e-8)
    assert tab.loc["slope", "Df"] == 2
    assert tab.loc["slope", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(chisq, 2), rel=1e-6)
    assert tab.loc["intercept", "deviance"] == pytest.approx(ml0.deviance, rel=1e-10)


def test_shrinkage_table(arrests, m_ri):
    fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", arrests)
    tab = mh.shrinkage_table(fe, m_ri)
    assert len(tab) == 51 and tab.n.sum() == 4286
    np.testing.assert_allclose(tab.partial_pooling, m_ri.coef["(Intercept)"].reindex(tab.index))
    s2a, s2 = m_ri.varcorr.vcov.iloc[0], m_ri.sigma**2
    assert tab.loc["DC", "shrinkage_factor"] == pytest.approx(2 * s2a / (2 * s2a + s2))
    # Smaller states are pulled harder toward the mean.
    assert tab.sort_values("n").shrinkage_factor.is_monotonic_increasing
    with pytest.raises(ValueError, match="random-intercept-only"):
        mh.shrinkage_table(fe, mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (pop_pct_pov | stusps)", arrests))


def test_uncorrelated_blocks_are_labelled_like_lme4():
    f = mh.load_faculty()
    m = mh.lmer("salary ~ experience + (experience || department)", f)
    assert list(m.varcorr.grp) == ["department", "department.1", "Residual"]
    t = mh.tidy(m, effects="ran_pars")
    assert list(zip(t.group, t.term, strict=True)) == [("department", "sd__(Intercept)"), ("department.1", "sd__experience"),
                                          ("Residual", "sd__Observation")]
