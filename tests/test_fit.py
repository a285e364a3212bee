"""lmer(): lecture B's printed numbers, statsmodels cross-checks, and input validation."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.regression.mixed_linear_model import MixedLMParams

import mlmhelpers as mh

ARRESTS_RI = "violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)"


# ----------------------------------------------------------------- lecture B
def test_lecture_b_reml_criterion(m_ri):
    assert f"{m_ri.reml_criterion:.1f}" == "23701.8"


def test_lecture_b_variance_components(m_ri):
    vc = m_ri.varcorr
    assert f"{vc.vcov.iloc[0]:.3f}" == "5.942"
    assert f"{vc.vcov.iloc[1]:.3f}" == "14.196"
    assert f"{vc.sdcor.iloc[0]:.3f}" == "2.438"
    assert f"{vc.sdcor.iloc[1]:.3f}" == "3.768"


def test_lecture_b_fixed_effects(m_ri):
    fe, se = m_ri.fixef, m_ri.se_fixef
    assert [f"{v:.5f}" for v in fe] == ["1.86112", "0.13340"]
    assert [f"{v:.5f}" for v in se] == ["0.38769", "0.01029"]
    assert [f"{v:.3f}" for v in fe / se] == ["4.801", "12.968"]
    corr = m_ri.vcov.iloc[0, 1] / (se.iloc[0] * se.iloc[1])
    assert f"{corr:.3f}" == "-0.401"


def test_lecture_b_scaled_residuals_and_counts(m_ri):
    q = np.quantile(m_ri.residuals(scaled=True), [0, 0.25, 0.5, 0.75, 1])
    assert [f"{v:.4f}" for v in q] == ["-2.8999", "-0.4908", "-0.1751", "0.2522", "15.7779"]
    assert m_ri.nobs == 4286
    assert m_ri.ngroups["stusps"] == 51


def test_lecture_b_summary_text(m_ri, arrests):
    text = str(mh.lmer(ARRESTS_RI, arrests, data_name="dat").summary())
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for expected in [
        "Linear mixed model fit by REML ['lmerMod']",
        "Formula: violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)",
        "Data: dat",
        "REML criterion at convergence: 23701.8",
        "Min 1Q Median 3Q Max",
        "-2.8999 -0.4908 -0.1751 0.2522 15.7779",
        "Groups Name Variance Std.Dev.",
        "stusps (Intercept) 5.942 2.438",
        "Residual 14.196 3.768",
        "Number of obs: 4286, groups: stusps, 51",
        "Estimate Std. Error t value",
        "(Intercept) 1.86112 0.38769 4.801",
        "pop_pct_pov 0.13340 0.01029 12.968",
        "(Intr)",
        "pop_pct_pov -0.401",
    ]:
        assert expected in lines, f"missing line: {expected!r}"


def test_loglik_aic_bic_follow_r(m_ri):
    # R: logLik(m) = -REML/2 with df = 2 fixed + 1 theta + 1 sigma = 4
    assert m_ri.npar == 4
    assert m_ri.loglik == pytest.approx(-m_ri.reml_criterion / 2)
    assert m_ri.aic == pytest.approx(m_ri.reml_criterion + 8)
    assert m_ri.bic == pytest.approx(m_ri.reml_criterion + np.log(4286) * 4)


# ------------------------------------------------------- statsmodels cross-check
@pytest.mark.parametrize("formula,data_name", [
    (ARRESTS_RI, "arrests"),
    ("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", "arrests"),
    ("salary ~ experience + (1 | department)", "faculty"),
    ("salary ~ experience + (1 + experience | department)", "faculty"),
])
@pytest.mark.parametrize("reml", [True, False])
def test_at_least_as_good_as_statsmodels(formula, data_name, reml):
    data = mh.load_arrests() if data_name == "arrests" else mh.load_faculty()
    m = mh.lmer(formula, data, REML=reml)
    d = m.design
    md = sm.MixedLM(d.y, d.X, groups=d.groups, exog_re=d.Z)
    # statsmodels' best optimum over several methods is no better than ours ...
    best = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("lbfgs", "bfgs", "powell", "nm"):
            try:
                r = md.fit(reml=reml, method=[method])
            except Exception:  # statsmodels fails on some starts; that is its problem, not ours
                continue
            if np.isfinite(r.llf):
                best = max(best, r.llf)
    # ... and its log-likelihood evaluated at OUR optimum equals ours (same definition).
    params = MixedLMParams.from_components(fe_params=m.sol.beta, cov_re=m.sol.Lambda @ m.sol.Lambda.T)
    assert md.reml == reml
    assert md.loglike(params, profile_fe=False) == pytest.approx(m.loglik, rel=1e-9)
    assert np.isfinite(best)
    assert m.loglik >= best - 1e-7 * abs(best)


def test_ml_fit_deviance_and_reml_variances_are_larger(arrests):
    ml = mh.lmer(ARRESTS_RI, arrests, REML=False)
    reml = mh.lmer(ARRESTS_RI, arrests)
    assert ml.deviance == pytest.approx(-2 * ml.loglik)
    with pytest.raises(ValueError, match="ML fits only.*reml_criterion"):
        _ = reml.deviance
    assert reml.varcorr.vcov.iloc[0] > ml.varcorr.vcov.iloc[0]
    assert "AIC" in str(ml.summary()) and "maximum likelihood" in str(ml.summary())


# ------------------------------------------------------------ accessors
def test_coef_is_fixef_plus_ranef(m_ri):
    co = m_ri.coef
    assert list(co.columns) == ["(Intercept)", "pop_pct_pov"]
    np.testing.assert_allclose(co["(Intercept)"], m_ri.fixef["(Intercept)"] + m_ri.ranef["(Intercept)"])
    assert np.all(co["pop_pct_pov"] == m_ri.fixef["pop_pct_pov"])
    assert list(co.index) == sorted(co.index)


def test_coef_with_random_term_without_fixed_counterpart():
    f = mh.load_faculty()
    m = mh.lmer("salary ~ 1 + (0 + experience | department)", f)
    assert list(m.coef.columns) == ["(Intercept)", "experience"]
    np.testing.assert_allclose(m.coef["experience"], m.ranef["experience"])


def test_fitted_and_residuals(m_ri, arrests):
    np.testing.assert_allclose(m_ri.fitted + m_ri.residuals(), arrests.violent_arrest_per1000)
    np.testing.assert_allclose(m_ri.residuals(scaled=True), m_ri.residuals() / m_ri.sigma)


def test_predict(m_ri, arrests):
    np.testing.assert_allclose(m_ri.predict(arrests), m_ri.fitted)
    pop = m_ri.predict(arrests, re_form="~0")
    np.testing.assert_allclose(pop, m_ri.fixef.iloc[0] + m_ri.fixef.iloc[1] * arrests.pop_pct_pov)
    new = pd.DataFrame({"pop_pct_pov": [10.0, 10.0], "stusps": ["AK", "ZZ"]})
    with pytest.raises(ValueError, match="New level.*ZZ.*allow_new_levels"):
        m_ri.predict(new)
    p = m_ri.predict(new, allow_new_levels=True)
    assert p.iloc[1] == pytest.approx(m_ri.fixef.iloc[0] + 10 * m_ri.fixef.iloc[1])
    assert p.iloc[0] == pytest.approx(m_ri.coef.loc["AK", "(Intercept)"] + 10 * m_ri.fixef.iloc[1])
    # A formula of random terms keeps only the factors it names (here: the only one).
    np.testing.assert_allclose(m_ri.predict(new, re_form="~(1|stusps)", allow_new_levels=True), p)
    with pytest.raises(ValueError, match="re_form names grouping factor"):
        m_ri.predict(new, re_form="~(1|county)")
    with pytest.raises(ValueError, match="re_form"):
        m_ri.predict(new, re_form="~x")


def test_repr_is_short_and_names_the_formula(m_ri):
    text = repr(m_ri)
    assert "REML criterion at convergence: 23701.8" in text
    assert "Fixed Effects:" in text and "Scaled residuals" not in text


# ------------------------------------------------------------ singular fits
def test_singular_fit_warns_once_and_is_flagged():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat(list("abcdef"), 10), "x": rng.normal(size=60)})
    df["y"] = 1 + 2 * df.x + rng.normal(size=60)  # no group effect at all
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m = mh.lmer("y ~ x + (1 | g)", df)
    msgs = [str(w.message) for w in rec]
    assert msgs == ["boundary (singular) fit: see help('isSingular')"]
    assert m.is_singular and m.theta.iloc[0] == 0.0
    assert "boundary (singular) fit" in str(m.summary())


def test_lecture_models_are_not_singular():
    f = mh.load_faculty()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rhs in ["(1 | department)", "(1 + experience | department)"]:
            assert not mh.lmer(f"salary ~ experience + {rhs}", f).is_singular


# ------------------------------------------------------------ bad input
@pytest.fixture
def toy():
    return pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0], "x": [1.0, 2, 3, 4, 5, 6],
                         "g": list("aabbcc"), "h": list("abcabc")})


def test_unknown_column(toy):
    with pytest.raises(ValueError, match="'zz'.*not in the data"):
        mh.lmer("y ~ zz + (1 | g)", toy)
    with pytest.raises(ValueError, match="'gg'.*not in the data"):
        mh.lmer("y ~ x + (1 | gg)", toy)


def test_no_random_term(toy):
    with pytest.raises(ValueError, match="no random-effect term.*lm\\(\\)"):
        mh.lmer("y ~ x", toy)


def test_bad_bar_syntax(toy):
    with pytest.raises(ValueError, match="Malformed"):
        mh.lmer("y ~ x + (1 | )", toy)
    with pytest.raises(ValueError, match="parentheses"):
        mh.lmer("y ~ x + 1 | g", toy)
    with pytest.raises(ValueError, match="Malformed"):
        mh.lmer("y ~ x + (1 | g", toy)


def test_non_numeric_response(toy):
    with pytest.raises(TypeError, match="response 'g' must be numeric"):
        mh.lmer("g ~ x + (1 | h)", toy)


def test_missing_values_dropped_with_count(toy):
    bad = toy.copy()
    bad.loc[0, "x"] = np.nan
    before = bad.copy()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        m = mh.lmer("y ~ x + (1 | g)", bad)
    assert "Dropped 1 of 6 rows with missing values (in x), as R's na.omit does." in [str(w.message) for w in rec]
    assert m.nobs == 5
    pd.testing.assert_frame_equal(bad, before)


def test_infinite_values_rejected(toy):
    bad = toy.copy()
    bad.loc[2, "y"] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        mh.lmer("y ~ x + (1 | g)", bad)


def test_single_level_grouping_factor(toy):
    one = toy.assign(g="a")
    with pytest.raises(ValueError, match="single level"):
        mh.lmer("y ~ x + (1 | g)", one)


def test_empty_data(toy):
    with pytest.raises(ValueError, match="empty"):
        mh.lmer("y ~ x + (1 | g)", toy.iloc[:0])


def test_data_must_be_a_dataframe():
    with pytest.raises(TypeError, match="DataFrame"):
        mh.lmer("y ~ x + (1 | g)", {"y": [1, 2]})


def test_rank_deficient_design_drops_columns_like_lme4(arrests):
    df = arrests.assign(pov2=arrests.pop_pct_pov * 2)
    with pytest.warns(UserWarning, match="rank deficient so dropping 1 column.*pov2"):
        m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + pov2 + (1 | stusps)", df)
    assert list(m.fixef.index) == ["(Intercept)", "pop_pct_pov"]
    assert f"{m.reml_criterion:.1f}" == "23701.8"


def test_caller_dataframe_is_not_modified(arrests):
    before = arrests.copy()
    mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + factor(year) + (1 + pop_pct_pov | stusps)", arrests)
    pd.testing.assert_frame_equal(arrests, before)


def test_fixed_part_formula_features(arrests):
    m = mh.lmer("violent_arrest_per1000 ~ 0 + factor(year) + pop_pct_pov + (1 | stusps)", arrests)
    assert list(m.fixef.index) == ["factor(year)2011", "factor(year)2016", "pop_pct_pov"]
    m2 = mh.lmer("violent_arrest_per1000 ~ np.log(pop_tot) * pop_pct_pov + (1 | stusps)", arrests)
    assert "np.log(pop_tot):pop_pct_pov" in m2.fixef.index


def test_predict_newdata_errors(arrests):
    m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + factor(year) + (1 | stusps)", arrests)
    with pytest.raises(ValueError, match="lacks the column.*'pop_pct_pov'"):
        m.predict(pd.DataFrame({"stusps": ["AK"], "year": [2011]}))
    with pytest.raises(ValueError, match="missing values"):
        m.predict(pd.DataFrame({"pop_pct_pov": [np.nan], "stusps": ["AK"], "year": [2011]}))
    with pytest.raises(ValueError, match="factor levels the model was not fitted with"):
        m.predict(pd.DataFrame({"pop_pct_pov": [3.0], "stusps": ["AK"], "year": [2012]}))
    ok = m.predict(pd.DataFrame({"pop_pct_pov": [3.0], "stusps": ["AK"], "year": [2016]}))
    b = m.fixef
    assert ok.iloc[0] == pytest.approx(b["(Intercept)"] + 3 * b["pop_pct_pov"] + b["factor(year)2016"]
                                       + m.ranef.loc["AK", "(Intercept)"])


def test_criterion_method_and_deviance_availability(m_ri):
    assert m_ri.criterion(m_ri.theta.to_numpy()) == pytest.approx(m_ri.reml_criterion, rel=1e-12)
    assert m_ri.criterion(0.5) > m_ri.reml_criterion and m_ri.criterion(0.8) > m_ri.reml_criterion
    assert not hasattr(m_ri, "deviance")  # a REML fit has no deviance; hasattr must not raise
    with pytest.raises(ValueError, match="theta must have 1"):
        m_ri.criterion([0.1, 0.2])
