"""Chapter 03, varying slopes: the chapter's key numbers against independent computations.

The chapter's prose numbers are glued values stored in the notebook; these tests read them
from the stored outputs and check them against the model refitted here and against
statsmodels' MixedLM log-likelihood evaluated at our optimum (an independent implementation
of the same likelihood), closed forms (centring, rescaling, boundary mixtures) and brute force.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from chapter_tools import notebook_fixtures
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLMParams

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "03_varying_slopes.ipynb"

Y = "violent_arrest_per1000"
F_INT = f"{Y} ~ pop_pct_pov + (1 | stusps)"
F_SLOPE = f"{Y} ~ pop_pct_pov + (1 + pop_pct_pov | stusps)"
F_UNCORR = f"{Y} ~ pop_pct_pov + (pop_pct_pov || stusps)"
F_SLOPE_C = f"{Y} ~ pov_c + (1 + pov_c | stusps)"
F_UNCORR_C = f"{Y} ~ pov_c + (pov_c || stusps)"


# ------------------------------------------------------------------ fixtures
nb, glued = notebook_fixtures(NOTEBOOK)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    d = mh.load_arrests()
    return d.assign(pov_c=d.pop_pct_pov - d.pop_pct_pov.mean(),
                    y2016=(d.year == 2016).astype(int))


@pytest.fixture(scope="module")
def fits(data) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of the chapter's poverty models may warn
        return {
            "int": mh.lmer(F_INT, data),
            "slope": mh.lmer(F_SLOPE, data),
            "uncorr": mh.lmer(F_UNCORR, data),
            "slope_c": mh.lmer(F_SLOPE_C, data),
            "uncorr_c": mh.lmer(F_UNCORR_C, data),
            "int_ml": mh.lmer(F_INT, data, REML=False),
            "slope_ml": mh.lmer(F_SLOPE, data, REML=False),
            "uncorr_ml": mh.lmer(F_UNCORR, data, REML=False),
        }


def statsmodels_loglik(m: mh.LmerResult, reml: bool) -> tuple[float, float]:
    """statsmodels' log-likelihood at OUR optimum, and the best optimum statsmodels finds itself.

    Only for models with one correlated random-effects block (cov_re = Λ Λᵀ, relative to σ²).
    """
    d = m.design
    md = sm.MixedLM(d.y, d.X, groups=d.groups, exog_re=d.Z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = md.fit(reml=reml)  # also sets statsmodels' internal state needed by loglike()
    assert md.reml == reml
    params = MixedLMParams.from_components(fe_params=m.sol.beta, cov_re=m.sol.Lambda @ m.sol.Lambda.T)
    return float(md.loglike(params, profile_fe=False)), float(own.llf)


# ------------------------------------------------------------- notebook form


def test_figures_have_caption_name_and_alt_text(nb):
    figures = [c for c in nb.cells if c.cell_type == "code"
               and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert len(figures) >= 3
    for c in figures:
        meta = c.metadata.get("mystnb", {})
        assert meta.get("figure", {}).get("caption") and meta["figure"].get("name", "").startswith("fig-slopes-")
        assert meta.get("image", {}).get("alt")


def test_exercises_have_gated_solutions(nb):
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    labels = re.findall(r"```\{exercise\}\n:label: (slopes-ex-\d+)", text)
    assert 4 <= len(labels) <= 6
    for label in labels:
        assert f"```{{solution-start}} {label}\n:class: dropdown\n```" in text
    assert text.count("```{solution-end}") == len(labels)


def test_execution_counts_are_in_order(nb):
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))


# ------------------------------------------------- glued numbers vs the model
def test_glued_variance_components_match_the_model(glued, fits):
    m, mi = fits["slope"], fits["int"]
    # Σ = σ² Λ Λᵀ from the model's internals, not via varcorr()
    cov = m.sigma**2 * m.sol.Lambda @ m.sol.Lambda.T
    expected = {
        "sl_var_int": cov[0, 0], "sl_sd_int": np.sqrt(cov[0, 0]),
        "sl_var_slope": cov[1, 1], "sl_sd_slope": np.sqrt(cov[1, 1]),
        "sl_corr": cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]),
        "sl_var_resid": m.sigma**2, "sl_mu_slope": m.sol.beta[1],
        "sl_slope_se": np.sqrt(m.vcov.iloc[1, 1]), "sl_reml": m.reml_criterion,
        "se_ratio": np.sqrt(m.vcov.iloc[1, 1] / mi.vcov.iloc[1, 1]),
        "int_sd_state": mi.sigma * mi.sol.Lambda[0, 0], "int_sigma": mi.sigma,
        "int_slope": mi.sol.beta[1], "int_reml": mi.reml_criterion,
        "x_star": -cov[0, 1] / cov[1, 1],
        "sd_at_x_star": np.sqrt(cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]),
        "share_negative_pct": 100 * stats.norm.cdf(-m.sol.beta[1] / np.sqrt(cov[1, 1])),
    }
    for key, value in expected.items():
        assert glued[key] == pytest.approx(value, rel=2e-4, abs=1e-4), key
    # the printed values that matter most, to the digits a reader sees
    assert f"{glued['sl_sd_slope']:.3f}" == "0.234"
    assert f"{glued['sl_corr']:.2f}" == "-0.64"
    assert f"{glued['sl_reml']:.1f}" == "23549.4"


def test_glued_state_slopes_match_the_model(glued, fits, data):
    m = fits["slope"]
    slopes = m.sol.beta[1] + m.sol.b.reshape(-1, 2)[:, 1]  # fixed slope + conditional mode (sol.b is flat, level by level)
    se = np.sqrt(m.condvar[:, 1, 1])
    levels = list(m.design.levels)
    assert glued["steepest"] == levels[int(np.argmax(slopes))] == "AK"
    assert glued["flattest"] == levels[int(np.argmin(slopes))] == "KY"
    assert glued["steepest_slope"] == pytest.approx(slopes.max(), abs=1e-4)
    assert glued["dc_slope"] == pytest.approx(slopes[levels.index("DC")], abs=1e-4)
    assert glued["n_slopes_positive"] == int(np.sum(slopes - 2 * se > 0))
    assert glued["n_slopes_negative"] == int(np.sum(slopes + 2 * se < 0))
    assert glued["n_estimates_negative"] == int(np.sum(slopes < 0))
    # the figure caption's count of county-years above the cut-off of the y axis
    assert int((data[Y] > 30).sum()) == 13


def test_between_state_sd_is_smallest_at_x_star(glued, fits):
    m = fits["slope"]
    cov = m.sigma**2 * m.sol.Lambda @ m.sol.Lambda.T
    grid = np.linspace(0, 50, 500_001)
    sd = np.sqrt(cov[0, 0] + 2 * grid * cov[0, 1] + grid**2 * cov[1, 1])
    assert grid[np.argmin(sd)] == pytest.approx(glued["x_star"], abs=1e-3)
    assert sd.min() == pytest.approx(glued["sd_at_x_star"], abs=1e-4)


# ------------------------------------------------- likelihood-ratio tests
def test_lrt_is_twice_the_ml_loglik_difference(glued, fits):
    lrt = mh.anova(random_intercept=fits["int"], uncorrelated=fits["uncorr"], correlated=fits["slope"])
    ll = {k: fits[k].loglik for k in ("int_ml", "uncorr_ml", "slope_ml")}
    assert lrt.loc["uncorrelated", "Chisq"] == pytest.approx(2 * (ll["uncorr_ml"] - ll["int_ml"]), rel=1e-8)
    assert lrt.loc["correlated", "Chisq"] == pytest.approx(2 * (ll["slope_ml"] - ll["uncorr_ml"]), rel=1e-8)
    lr = 2 * (ll["slope_ml"] - ll["int_ml"])
    assert glued["lr_slope"] == pytest.approx(lr, abs=1e-3)
    assert glued["lr_uncorr"] == pytest.approx(lrt.loc["uncorrelated", "Chisq"], abs=1e-3)
    assert glued["lr_corr"] == pytest.approx(lrt.loc["correlated", "Chisq"], abs=1e-3)
    assert lrt.loc["correlated", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(lrt.loc["correlated", "Chisq"], 1))
    assert list(lrt.npar) == [4, 5, 6]


@pytest.mark.parametrize("key", ["int_ml", "slope_ml"])
def test_ml_deviance_agrees_with_statsmodels(fits, key):
    m = fits[key]
    at_ours, statsmodels_best = statsmodels_loglik(m, reml=False)
    assert m.deviance == pytest.approx(-2 * at_ours, rel=1e-9)
    assert m.loglik >= statsmodels_best - 1e-7 * abs(statsmodels_best)  # ours is the ML optimum


def test_boundary_mixture_critical_values(nb):
    def mixture_sf(s, df):
        lower = stats.chi2.sf(s, df - 1) if df > 1 else 0.0
        return 0.5 * lower + 0.5 * stats.chi2.sf(s, df)

    # brute force: the smallest statistic on a fine grid whose mixture p-value is <= 0.05
    grid = np.arange(0.5, 10, 1e-5)
    crit = {df: grid[np.argmax(mixture_sf(grid, df) <= 0.05)] for df in (1, 2)}
    assert crit[1] == pytest.approx(stats.chi2.ppf(0.90, 1), abs=1e-4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []) if "brentq" in c.source)
    assert f"df = 2: naive critical value 5.991, mixture critical value {crit[2]:.3f}" in printed
    assert f"df = 1: naive critical value 3.841, mixture critical value {crit[1]:.3f}" in printed


# ------------------------------------------------------------------ centring
def test_centring_leaves_the_correlated_model_unchanged(glued, fits):
    m, mc = fits["slope"], fits["slope_c"]
    assert mc.reml_criterion == pytest.approx(m.reml_criterion, rel=1e-6)
    cov = m.sigma**2 * m.sol.Lambda @ m.sol.Lambda.T
    cov_c = mc.sigma**2 * mc.sol.Lambda @ mc.sol.Lambda.T
    x_bar = mh.load_arrests().pop_pct_pov.mean()
    A = np.array([[1.0, x_bar], [0.0, 1.0]])  # (α + β x̄, β) = A (α, β)
    np.testing.assert_allclose(cov_c, A @ cov @ A.T, rtol=2e-5)
    assert cov_c[1, 1] == pytest.approx(cov[1, 1], rel=2e-5)
    assert mc.sigma == pytest.approx(m.sigma, rel=1e-6)
    np.testing.assert_allclose(mc.fitted, m.fitted, rtol=1e-6, atol=1e-6)
    assert glued["c_var_int"] == pytest.approx(cov_c[0, 0], abs=1e-4)
    assert glued["c_corr"] == pytest.approx(cov_c[0, 1] / np.sqrt(cov_c[0, 0] * cov_c[1, 1]), abs=1e-4)
    assert glued["c_mu_int"] == pytest.approx(m.sol.beta[0] + x_bar * m.sol.beta[1], abs=1e-4)
    assert np.sign(glued["c_corr"]) == -np.sign(glued["sl_corr"])


def test_centring_invariance_with_statsmodels_reml(fits):
    """statsmodels' REML log-likelihood, an independent implementation, is the same at both optima."""
    ll_raw, _ = statsmodels_loglik(fits["slope"], reml=True)
    ll_c, _ = statsmodels_loglik(fits["slope_c"], reml=True)
    assert ll_c == pytest.approx(ll_raw, rel=1e-6)
    assert -2 * ll_raw == pytest.approx(fits["slope"].reml_criterion, rel=1e-9)


def test_uncorrelated_model_is_not_invariant(glued, fits):
    gap = fits["uncorr"].reml_criterion - fits["uncorr_c"].reml_criterion
    assert gap > 1
    assert glued["unc_gap"] == pytest.approx(gap, abs=1e-3)
    assert fits["uncorr_c"].reml_criterion > fits["slope"].reml_criterion
    assert glued["un_reml_gap"] == pytest.approx(fits["uncorr"].reml_criterion - fits["slope"].reml_criterion,
                                                 abs=1e-3)


def test_rescaling_shifts_the_reml_criterion_by_2_log_100(data, fits):
    """Exercise 2: poverty as a proportion; closed form log det(AᵀX'V⁻¹XA) = log det(X'V⁻¹X) + 2 log|det A|."""
    d = data.assign(pov_prop=data.pop_pct_pov / 100)
    f = f"{Y} ~ pov_prop + (1 + pov_prop | stusps)"
    reml, ml = mh.lmer(f, d), mh.lmer(f, d, REML=False)
    assert fits["slope"].reml_criterion - reml.reml_criterion == pytest.approx(2 * np.log(100), abs=1e-5)
    assert ml.deviance == pytest.approx(fits["slope_ml"].deviance, rel=1e-9)


# --------------------------------------------------------------- singular fit
def test_the_year_example_is_singular_and_the_poverty_models_are_not(data, fits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mh.lmer(f"{Y} ~ pop_pct_pov + y2016 + (1 + y2016 | stusps)", data)
    assert [w.category for w in caught] == [mh.SingularFitWarning]
    assert mh.is_singular(m)
    assert abs(m.varcorr.sdcor.iloc[2]) > 0.999
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not mh.is_singular(mh.lmer(f"{Y} ~ pop_pct_pov + y2016 + (y2016 || stusps)", data))
    assert not any(mh.is_singular(m) for m in fits.values())


# ------------------------------------------------------ claims of the prose
def test_qualitative_claims_of_the_prose(glued, fits, data):
    # "the slope SD is larger than the average slope"
    assert glued["sl_sd_slope"] > glued["sl_mu_slope"] > 0
    # the average slope's SE grows several-fold once slopes vary
    assert glued["se_ratio"] > 3
    # shrunken conditional modes: fewer negative slopes than the fitted distribution implies
    assert glued["n_estimates_negative"] / 51 < glued["share_negative_pct"] / 100
    # the sign flip: x* lies between 0 and the mean poverty rate, and the centred
    # correlation is smaller in size than the uncentred one
    assert 0 < glued["x_star"] < glued["pov_mean"]
    assert abs(glued["c_corr"]) < abs(glued["sl_corr"])
    # dropping the correlation costs fit: uncorrelated REML criterion is higher
    assert glued["un_sd_int"] < glued["sl_sd_int"] and glued["un_sd_slope"] < glued["sl_sd_slope"]
    # all information criteria rank the correlated model first
    lrt = mh.anova(a=fits["int"], b=fits["uncorr"], c=fits["slope"])
    assert lrt.AIC.idxmin() == "c" and lrt.BIC.idxmin() == "c"
    # exercise 5: a fixed effect for 2016; AIC prefers it, BIC is nearly indifferent, p < 0.01
    with_year = mh.lmer(f"{Y} ~ pop_pct_pov + y2016 + (1 + pop_pct_pov | stusps)", data)
    year = mh.anova(without=fits["slope"], with_year=with_year)
    assert year.loc["with_year", "AIC"] < year.loc["without", "AIC"]
    assert abs(year.loc["with_year", "BIC"] - year.loc["without", "BIC"]) < 2
    assert year.loc["with_year", "Pr(>Chisq)"] < 0.01
    assert glued["ex5_chisq"] == pytest.approx(year.loc["with_year", "Chisq"], abs=1e-3)
    assert glued["ex5_year"] < 0


# ------------------------------------------- corrections of issue 16 (exercise 5, prose)
# lme4's year effect with and without a county term: tests/r/chapter03_year_county_term.R
LME4_YEAR_SE_NO_COUNTY = 0.11421922  # (1 + pop_pct_pov | stusps)
LME4_YEAR_SE_COUNTY = 0.05675248  # (1 + pop_pct_pov | stusps) + (1 | stusps:county)
LME4_YEAR_SE_NESTED = 0.05617033  # (1 | stusps/county)
LME4_COUNTY_MODEL = {"county_year": -0.3738842, "county_year_se": 0.05675248,
                     "county_sd": 3.19217618, "county_sigma": 1.60985485}


def test_year_effect_within_counties_is_the_county_fixed_effects_estimate(glued, data):
    """County fixed effects by the within transformation (numpy), on every row: the glued
    first-difference estimate is the same number, with the same standard error up to the one
    degree of freedom of the duplicated county-year."""
    d = data.assign(county=data.stusps + " " + data.fips.astype(str))
    cols = ["violent_arrest_per1000", "pop_pct_pov", "y2016"]
    demeaned = d[cols] - d.groupby("county")[cols].transform("mean")
    Xw = demeaned[["pop_pct_pov", "y2016"]].to_numpy()
    yw = demeaned["violent_arrest_per1000"].to_numpy()
    beta, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
    resid = yw - Xw @ beta
    df = len(d) - d.county.nunique() - 2
    se = np.sqrt(np.diag(resid @ resid / df * np.linalg.inv(Xw.T @ Xw)))
    assert glued["within_year"] == pytest.approx(beta[1], abs=1e-5)
    assert glued["within_pov"] == pytest.approx(beta[0], abs=1e-5)
    assert glued["within_se"] == pytest.approx(se[1], rel=1e-3)
    years = d.groupby("county").year.nunique()
    assert glued["n_both"] == int((years == 2).sum())
    assert glued["n_counties"] == len(years)


def test_ignoring_counties_makes_the_year_se_too_large(glued):
    """The direction of exercise 5's argument, against lme4 with a county term (pinned)."""
    assert glued["ex5_year_se"] == pytest.approx(LME4_YEAR_SE_NO_COUNTY, abs=1e-5)
    assert glued["ex5_year_se"] > 1.9 * LME4_YEAR_SE_COUNTY
    assert glued["ex5_year_se"] > 1.9 * LME4_YEAR_SE_NESTED
    # the within-county SE is of the size of lme4's with a county term
    assert glued["within_se"] == pytest.approx(LME4_YEAR_SE_COUNTY, rel=0.1)
    assert glued["se_ratio_within"] == pytest.approx(glued["within_se"] / glued["ex5_year_se"], abs=1e-4)
    assert glued["se_ratio_within"] < 0.6


def test_prose_corrections_of_issue_16(nb):
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "somewhat optimistic" not in text and "too\n*large*" in text
    assert "do not suffer from the bias" not in text and "*reduces* that bias" in text
    assert "the boundary problem does not arise" not in text and "Greven and Kneib" in text
    assert "In this lecture" not in text and "previous chapter" not in text
    assert "chapter 2" not in text and "{doc}`notation`" in text


def test_aic_difference_quoted_with_the_boundary_caveat(glued, fits):
    """AIC = deviance + 2k of the ML fits (k = 5 and 6 parameters)."""
    aic_uncorr = fits["uncorr_ml"].deviance + 2 * 5
    aic_slope = fits["slope_ml"].deviance + 2 * 6
    assert glued["daic_uncorr"] == pytest.approx(aic_uncorr - aic_slope, abs=1e-3)
    assert glued["daic_uncorr"] > 10


def test_year_effect_with_a_county_term_matches_lme4(glued):
    """The chapter's m_county, (1 + pop_pct_pov | stusps) + (1 | county), against lme4."""
    assert glued["county_year"] == pytest.approx(LME4_COUNTY_MODEL["county_year"], abs=2e-5)
    assert glued["county_year_se"] == pytest.approx(LME4_COUNTY_MODEL["county_year_se"], rel=1e-4)
    assert glued["county_sd"] == pytest.approx(LME4_COUNTY_MODEL["county_sd"], rel=1e-4)
    assert glued["county_sigma"] == pytest.approx(LME4_COUNTY_MODEL["county_sigma"], rel=1e-4)
    assert glued["county_se_ratio"] == pytest.approx(LME4_YEAR_SE_COUNTY / LME4_YEAR_SE_NO_COUNTY, rel=1e-3)
    assert glued["county_se_ratio"] < 0.5
    assert glued["slope_year_sigma"] > 2 * glued["county_sigma"]
