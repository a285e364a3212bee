"""simulate, bootstrap, intervals and pb_test (mlmhelpers/bootstrap.py).

Random results are checked against what they must converge to, with fixed seeds and tolerances
taken from the Monte Carlo error (stated at each assertion); the one deterministic number of
PBmodcomp, the LRT statistic, is lme4's (tests/r/inference_reference.R)."""

import numpy as np
import pandas as pd
import pytest
from inference_refs import sleepstudy

import mlmhelpers as mh
from mlmhelpers import bootstrap, confint, lmer, pb_test, simulate
from mlmhelpers.bootstrap import _norm_inter, boot_intervals

SLOPE = "violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)"


@pytest.fixture(scope="module")
def slope(arrests):
    return lmer(SLOPE, arrests)


def test_simulate_shape_seed_and_index(m_ri):
    a = simulate(m_ri, nsim=3, seed=5)
    assert a.shape == (m_ri.nobs, 3) and list(a.columns) == ["sim_1", "sim_2", "sim_3"]
    assert a.index.equals(m_ri.design.row_index)
    pd.testing.assert_frame_equal(a, simulate(m_ri, nsim=3, seed=5))
    assert not a.equals(simulate(m_ri, nsim=3, seed=6))


def test_simulate_marginal_moments(slope):
    """Mean Xβ̂ and variance z_iᵀΣz_i + σ² per row, within-state covariance z_iᵀΣz_j."""
    nsim = 4000
    y = simulate(slope, nsim=nsim, seed=11).to_numpy()
    d = slope.design
    mu = d.X @ slope.fixef.to_numpy()
    Sigma = slope.sigma**2 * slope.sol.Lambda @ slope.sol.Lambda.T
    var = np.einsum("ni,ij,nj->n", d.Z, Sigma, d.Z) + slope.sigma**2
    z = (y - mu[:, None]) / np.sqrt(var)[:, None]
    # per simulation: mean of the standardised values and of their squares over the rows; these nsim
    # values are independent, so their standard errors give the Monte Carlo tolerance (4 SE).
    m1, m2 = z.mean(axis=0), (z**2).mean(axis=0)
    assert abs(m1.mean()) < 4 * m1.std(ddof=1) / np.sqrt(nsim)
    assert abs(m2.mean() - 1) < 4 * m2.std(ddof=1) / np.sqrt(nsim)
    # covariance of two counties of one state
    g = d.groups
    i, j = np.flatnonzero(g == g[0])[:2]
    prod = (y[i] - mu[i]) * (y[j] - mu[j])
    assert abs(prod.mean() - d.Z[i] @ Sigma @ d.Z[j]) < 4 * prod.std(ddof=1) / np.sqrt(nsim)
    # two states: independent
    k = np.flatnonzero(g != g[0])[0]
    prod = (y[i] - mu[i]) * (y[k] - mu[k])
    assert abs(prod.mean()) < 4 * prod.std(ddof=1) / np.sqrt(nsim)


def test_simulate_conditional(m_ri):
    nsim = 2000
    y = simulate(m_ri, nsim=nsim, seed=3, re_form=None).to_numpy()
    r = (y - m_ri.fitted.to_numpy()[:, None]) / m_ri.sigma
    m1, m2 = r.mean(axis=0), (r**2).mean(axis=0)
    assert abs(m1.mean()) < 4 * m1.std(ddof=1) / np.sqrt(nsim)
    assert abs(m2.mean() - 1) < 4 * m2.std(ddof=1) / np.sqrt(nsim)


def test_bootstrap_se_equals_model_se():
    """Balanced random-intercept design: β̂_Days is the within-subject OLS slope, whose sampling SD
    under the fitted model is exactly the model SE. The sample SD of nsim replicates has relative
    standard error 1/sqrt(2(nsim - 1)); we allow 3.5 of them."""
    m = lmer("Reaction ~ Days + (1 | Subject)", sleepstudy())
    nsim = 2000
    b = bootstrap(m, lambda fit: fit.fixef, nsim=nsim, seed=2024)
    se = m.se_fixef["Days"]
    assert b["Days"].std(ddof=1) == pytest.approx(se, rel=3.5 / np.sqrt(2 * (nsim - 1)))
    assert abs(b["Days"].mean() - m.fixef["Days"]) < 3.5 * se / np.sqrt(nsim)
    assert b.attrs["t0"]["Days"] == m.fixef["Days"]


def test_bootstrap_default_stats_and_reproducible(m_ri):
    b = bootstrap(m_ri, nsim=30, seed=7)
    assert list(b.columns) == [".sig01", ".sigma", "(Intercept)", "pop_pct_pov"]
    assert b.attrs["t0"][".sig01"] == pytest.approx(np.sqrt(m_ri.varcorr.vcov.iloc[0]), rel=1e-12)
    pd.testing.assert_frame_equal(b, bootstrap(m_ri, nsim=30, seed=7))
    scalar = bootstrap(m_ri, lambda fit: fit.sigma, nsim=5, seed=1)
    assert list(scalar.columns) == ["t1"]


def test_norm_inter_matches_boot_package():
    # R: boot:::norm.inter(1:99, c(.025, .975)) -> 2.54224949883976, 97.45775050116025 (rank 2.5 lies
    # between order statistics: interpolated on the normal scale); extreme ranks use the ends.
    out = _norm_inter(np.arange(1.0, 100.0), np.array([0.025, 0.975]))
    assert out == pytest.approx([2.54224949883976, 97.45775050116025], rel=1e-14)
    t = np.array([3.1, 0.2, 5.5, 1.7, 2.2, 9.9, 4.4, 6.1, 0.9, 7.3, 8.8, 2.9])
    assert _norm_inter(t, np.array([0.05, 0.95])) == pytest.approx([0.2, 9.9])


def test_boot_intervals_perc_and_basic(m_ri):
    b = bootstrap(m_ri, lambda fit: fit.fixef, nsim=199, seed=3)
    perc = boot_intervals(b, 0.9)
    basic = boot_intervals(b, 0.9, "basic")
    t0 = m_ri.fixef
    assert np.allclose(basic["lower"], 2 * t0 - perc["upper"]) and np.allclose(basic["upper"], 2 * t0 - perc["lower"])
    # with 199 replicates the 5% and 95% points are the 10th and 190th order statistics
    s = np.sort(b["pop_pct_pov"])
    assert perc.loc["pop_pct_pov"].tolist() == pytest.approx([s[9], s[189]])


def test_confint_boot_close_to_profile(m_ri):
    boot = confint(m_ri, method="boot", nsim=400, seed=1)
    prof = confint(m_ri, method="profile")
    assert list(boot.index) == list(prof.index)
    width = (prof["upper"] - prof["lower"]).to_numpy()
    # both estimate the same 95% interval; with 400 replicates the ends are within ~15% of the width
    assert np.all(np.abs(boot.to_numpy() - prof.to_numpy()) < 0.15 * width[:, None])
    assert list(confint(m_ri, method="boot", nsim=20, parm="beta_").index) == ["(Intercept)", "pop_pct_pov"]


def test_pb_test_lrt_and_p_value(m_ri, slope):
    res = pb_test(m_ri, slope, nsim=40, seed=1)
    assert round(res.table.loc["LRT", "stat"], 4) == 149.6914  # lme4's anova(): Chisq 149.69141
    assert res.table.loc["LRT", "df"] == 2
    assert res.n_extreme == 0 and res.table.loc["PBtest", "p_value"] == pytest.approx(1 / 41)


def test_pb_test_null_reference_is_chi_square(arrests):
    """A fixed effect that is pure noise: the LRT's reference distribution is close to χ²₁, whose
    mean is 1 and variance 2; with 300 replicates the mean's standard error is sqrt(2/300)."""
    d = arrests.assign(noise=np.random.default_rng(0).normal(size=len(arrests)))
    m0 = lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d, REML=False)
    m1 = lmer("violent_arrest_per1000 ~ pop_pct_pov + noise + (1 | stusps)", d, REML=False)
    res = pb_test(m0, m1, nsim=300, seed=4)
    assert abs(res.ref.mean() - 1) < 4 * np.sqrt(2 / 300)
    assert 0 < res.table.loc["PBtest", "p_value"] <= 1


def test_bad_input(m_ri, slope, arrests):
    with pytest.raises(ValueError, match="nsim"):
        simulate(m_ri, nsim=0)
    with pytest.raises(ValueError, match="re_form"):
        simulate(m_ri, re_form="~1")
    with pytest.raises(TypeError, match="func"):
        bootstrap(m_ri, func="fixef", nsim=2)
    with pytest.raises(ValueError, match="smaller model first"):
        pb_test(slope, m_ri, nsim=2)
    other = lmer("pop_pct_pov ~ 1 + (1 | stusps)", arrests)
    with pytest.raises(ValueError, match="same rows"):
        pb_test(other, slope, nsim=2)
    with pytest.raises(ValueError, match="perc"):
        confint(m_ri, method="boot", nsim=2, boot_type="norm")
    with pytest.raises(TypeError, match="lmer"):
        simulate(mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests))


def test_progress_bar_on_request(m_ri, capsys):
    b = bootstrap(m_ri, lambda fit: fit.sigma, nsim=3, seed=1, progress=True)  # shown after 1 s, if it lasts
    assert b.shape == (3, 1)
    capsys.readouterr()
    bootstrap(m_ri, lambda fit: fit.sigma, nsim=3, seed=1)  # default: no bar outside a terminal
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- simulate for glmer fits
def _poisson_fit():
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(20), 15)
    x = rng.normal(size=g.size)
    expo = rng.uniform(1, 5, size=g.size)
    lam = expo * np.exp(0.3 + 0.4 * x + rng.normal(scale=0.6, size=20)[g])
    d = pd.DataFrame({"n": rng.poisson(lam), "x": x, "expo": expo, "g": [f"g{k}" for k in g]})
    return mh.glmer("n ~ x + offset(np.log(expo)) + (1 | g)", d, family="poisson"), d


def test_simulate_glmer_poisson_marginal_mean_by_quadrature():
    """E[y] = exp(offset + xβ) E[exp(b)], b ~ N(0, θ²): exp(θ²/2) for a log link."""
    m, d = _poisson_fit()
    nsim = 4000
    sims = mh.simulate(m, nsim=nsim, seed=3).to_numpy()
    assert sims.shape == (len(d), nsim) and np.all(sims == np.round(sims)) and sims.min() >= 0
    theta = float(m.fit.theta[0])
    mean = np.log(d["expo"]).to_numpy() + m.fixef.iloc[0] + m.fixef.iloc[1] * d["x"].to_numpy()
    expected = np.exp(mean + theta**2 / 2)
    # The mean over all rows and simulations; Monte Carlo SE from the simulated totals.
    totals = sims.sum(axis=0)
    se = totals.std(ddof=1) / np.sqrt(nsim)
    assert abs(totals.mean() - expected.sum()) < 4 * se


def test_simulate_glmer_conditional_and_binomial_proportions():
    m, _ = _poisson_fit()
    cond = mh.simulate(m, nsim=3000, seed=4, re_form=None).to_numpy()
    mu = m.fitted.to_numpy()
    np.testing.assert_allclose(cond.mean(axis=1), mu, atol=5 * np.sqrt(mu.max() / 3000))
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(15), 4)
    p = 1 / (1 + np.exp(-(-0.4 + rng.normal(scale=1.0, size=15)[g])))
    d = pd.DataFrame({"s": rng.binomial(10, p), "g": [f"g{k}" for k in g]}).assign(f=lambda t: 10 - t.s)
    mb = mh.glmer("cbind(s, f) ~ 1 + (1 | g)", d, family="binomial")
    sims = mh.simulate(mb, nsim=5, seed=1).to_numpy()
    assert np.all((sims >= 0) & (sims <= 1)) and np.allclose(sims * 10, np.round(sims * 10))
    assert np.array_equal(sims, mh.simulate(mb, nsim=5, seed=1).to_numpy())  # seeded
