"""Profile intervals (mlmhelpers/profile.py) against lme4 1.1-31's confint.merMod and against the
definition (the profiled deviance at the interval ends is min + qchisq(level, 1)).
References: tests/r/inference_reference.R (the arrest models with a tight optimiser, see
tests/test_satterthwaite.py)."""

import numpy as np
import pytest
from inference_refs import dyestuff
from scipy import optimize, stats

import mlmhelpers as mh
from mlmhelpers import confint, lmer, profile

SLOPE = "violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)"


@pytest.fixture(scope="module")
def dye():
    return lmer("Yield ~ 1 + (1 | Batch)", dyestuff())


@pytest.fixture(scope="module")
def slope_profile(arrests):
    return profile(lmer(SLOPE, arrests))


def test_dyestuff_printed_digits(dye):
    ci = confint(dye, method="profile")
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)"]
    # lme4: .sig01 12.19854 84.06305; .sigma 38.22998 67.65770; (Intercept) 1486.45150 1568.54849
    assert np.round(ci.loc[".sig01"].to_numpy(), 5).tolist() == [12.19854, 84.06305]
    assert np.round(ci.loc[".sigma"].to_numpy(), 5).tolist() == [38.22998, 67.65770]
    assert np.round(ci.loc["(Intercept)"].to_numpy(), 5).tolist() == [1486.45150, 1568.54849]
    ml = confint(lmer("Yield ~ 1 + (1 | Batch)", dyestuff(), REML=False), method="profile")
    assert np.allclose(ml.to_numpy(), ci.to_numpy(), rtol=1e-8)  # REML fits are profiled by ML


def test_dyestuff_fine_grid_matches_lme4_fine_grid(dye):
    # confint(profile(m, delta.cutoff = 1/64)) in R
    ci = profile(dye, delta_cutoff=1 / 64).confint()
    assert ci.to_numpy() == pytest.approx(np.array([[12.1965139938, 84.0634107404], [38.2301233105, 67.6576727805],
                                                    [1486.4514877851, 1568.5485122149]]), rel=2e-7)


def test_arrest_slope_model(slope_profile):
    ci = slope_profile.confint()
    assert list(ci.index) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "pop_pct_pov"]
    ref = np.array([[2.4969592757801, 4.264638366053], [-0.8086302940654, -0.381221759220],
                    [0.1718585122255, 0.307360789854], [3.5808135152344, 3.737959012636],
                    [0.4925871359568, 2.600313904266], [0.0924403598408, 0.243212068073]])
    assert ci.to_numpy() == pytest.approx(ref, rel=1e-7)
    ref90 = np.array([[2.604373148277, 4.078369313771], [-0.787417219339, -0.429980882185],
                      [0.180118346235, 0.293107950914], [3.593034511699, 3.724904060889],
                      [0.669018414345, 2.425696360375], [0.104741862520, 0.230236760234]])
    # lme4's profile points come from bobyqa with its default stopping rule; the two implementations
    # agree to 6-7 significant digits (largest difference 1.75e-7 relative, .sig02's upper end)
    assert slope_profile.confint(0.9).to_numpy() == pytest.approx(ref90, rel=2e-7)


def test_arrest_random_intercept(m_ri):
    ci = confint(m_ri, method="profile")
    ref = np.array([[1.920211778969, 3.069207875913], [3.688502045086, 3.849236902142],
                    [1.098799985107, 2.628660834607], [0.113218421076, 0.153546845578]])
    assert ci.to_numpy() == pytest.approx(ref, rel=1e-7)


def test_exact_ends_are_on_the_chi_square_cutoff(slope_profile, arrests):
    """Independent check of the definition: refit with the parameter fixed at an interval end."""
    exact = slope_profile.confint(exact=True)
    ml = lmer(SLOPE, arrests, REML=False)
    target = -2 * ml.loglik + stats.chi2.ppf(0.95, 1)
    for end in exact.loc["pop_pct_pov"]:
        d = arrests.assign(y_off=arrests.violent_arrest_per1000 - end * arrests.pop_pct_pov)
        fixed = lmer("y_off ~ 1 + (1 + pop_pct_pov | stusps)", d, REML=False)
        assert -2 * fixed.loglik == pytest.approx(target, abs=1e-6)
    # .sigma: minimise the deviance over θ with σ fixed (Nelder-Mead, from the definition)
    n = ml.nobs
    for s in exact.loc[".sigma"]:
        def dev(th, s=s):
            sol = ml._pls_at(th)
            return sol.ldL2 + sol.pwrss / s**2 + n * np.log(2 * np.pi * s**2)
        r = optimize.minimize(dev, ml.sol.theta, method="Nelder-Mead",
                              options={"xatol": 1e-10, "fatol": 1e-10, "maxfev": 20000})
        assert r.fun == pytest.approx(target, abs=1e-6)
    # and lme4's spline interpolation is close to the exact ends
    assert np.allclose(slope_profile.confint().to_numpy(), exact.to_numpy(), rtol=1e-3)


def test_profile_table_and_which(dye):
    pr = profile(dye, which=".sigma")
    assert set(pr.table[".par"]) == {".sigma"}
    z = pr.table[".zeta"].to_numpy()
    assert np.all(np.diff(z) > 0) and z.min() < -2.5 and z.max() > 2.5
    assert list(profile(dye, which="beta_").estimates.index) == ["(Intercept)"]
    with pytest.raises(ValueError, match="Unknown parameter"):
        profile(dye, which=[".sig09"])
    with pytest.raises(ValueError, match="method"):
        confint(dye, method="likelihood")
    with pytest.raises(TypeError, match="lmer"):
        profile(mh.lm("Yield ~ 1", dyestuff()))
