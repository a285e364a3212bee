"""Chapter 09, uncertainty and p-values: every number it prints against an independent computation.

The chapter's prose numbers are glued values stored in the notebook and its tables are stored
outputs; both are read here, never recomputed by the chapter's own code path alone. References:

* lmerTest 3.1-3 / pbkrtest 0.5.2 / lme4 1.1-31 values printed by ``tests/r/chapter09_uncertainty.R``
  (its output ``tests/r/chapter09_uncertainty.Rout``): Satterthwaite and Kenward–Roger df,
  standard errors and p-values, profile intervals, the likelihood-ratio statistic;
* closed forms: n − p, t and χ² quantiles, the 50:50 mixture p-value by hand;
* a dense, from-the-definition ML likelihood of the faculty model in (σ_a, σ_b, σ), maximised and
  differentiated here, for the ML estimates and the Wald standard errors;
* Monte-Carlo references (R's ``bootMer`` and ``PBmodcomp`` with 1,000 simulations) with
  tolerances of three combined Monte-Carlo standard errors of the chapter's 200 simulations.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from chapter_tools import notebook_fixtures, output_of
from scipy import optimize, stats

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "09_uncertainty_and_p_values.ipynb"
NSIM = 200  # the chapter's bootstrap size

# ---------------------------------------------------------- pinned R values (chapter09_uncertainty.Rout)
R_INT = {  # (Intercept), pop_pct_pov of violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)
    "sat_df": [56.0780293218, 4283.2748624896],
    "kr_df": [69.8987602305, 4283.4201225876],
    "sat_se": [0.3876885166841, 0.0102869768415],
    "kr_se": [0.3878084428659, 0.0102922939752],
    "est": [1.861116104693, 0.133400903974],
}
R_CTX = {  # (Intercept), pov_within, pov_state
    "est": [2.4834178827111, 0.1339398233437, 0.0922441406424],
    "sat_se": [1.4266295023943, 0.0103537317549, 0.0914687812877],
    "kr_se": [1.4272794179686, 0.0103537317549, 0.0915041610382],
    "sat_df": [40.3858828371, 4222.4527638367, 39.1765142166],
    "kr_df": [50.6497027295, 4234.6993611696, 49.1365397556],
    "sat_p": [8.93407306720e-02, 1.43897346732e-37, 3.19414060799e-01],
    "kr_p": [8.79385660678e-02, 1.43235782887e-37, 3.18351417068e-01],
}
R_CONTEST = {"est": 0.0416956827013, "se": 0.0920529071323, "df": 40.1891359709, "t": 0.452953459051,
             "p": 0.653018258849}
R_PROFILE_FS = {".sig01": (8266.6475796, 30573.389394), ".sig02": (218.3548107, 1365.737131)}
R_PROFILE_INT_90 = (1.9887571202, 2.9468061330)  # .sig01 of the arrest model, 90 %
R_LRT = 8.05498  # anova(m_f, m_fs), printed digits
R_LRT_P = 0.0045379
R_ICC = 0.295049924452
R_BOOT_ICC = {"mean": 0.29432965894, "sd": 0.04437899697, "lo": 0.20753650994, "hi": 0.38126958347}
R_BOOT_NSIM = 1000
R_PB = {"share_zero": 0.692, "q95": 1.732333459}  # PBmodcomp's 1,000 null statistics: share < 1e-6, 95 % quantile
R_FS_ML_SD = [13968.98750355, 560.93156551]  # ML fit of salary ~ experience + (experience || department)


# ------------------------------------------------------------------ fixtures
nb, glued = notebook_fixtures(NOTEBOOK)



def table_of(nb, marker: str) -> pd.DataFrame:
    """A printed DataFrame (pandas' text layout, wrapped blocks included) read back; index = first column."""
    text = output_of(nb, marker)
    blocks, cur = [], []
    for ln in text.splitlines():
        if ln.strip():
            cur.append(ln.rstrip(" \\"))
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    parts = []
    for lines in blocks:
        header = re.split(r"\s{2,}", lines[0].strip())
        rows = {}
        for ln in lines[1:]:
            tok = ln.split()
            rows[" ".join(tok[:-len(header)])] = [float(v) for v in tok[-len(header):]]
        parts.append(pd.DataFrame.from_dict(rows, orient="index", columns=header))
    return pd.concat(parts, axis=1)


def series_of(nb, marker: str) -> pd.Series:
    text = output_of(nb, marker)
    out = {}
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) >= 2 and not ln.startswith("Name:"):
            out[" ".join(parts[:-1])] = float(parts[-1])
    return pd.Series(out)


# --------------------------------------------------------------- 1. degrees of freedom
def test_arrest_model_df_table(nb, glued):
    tab = table_of(nb, "tab_int = df_table(m_int)")
    np.testing.assert_allclose(tab["estimate"], np.round(R_INT["est"], 4), atol=1e-12)
    np.testing.assert_allclose(tab["SE"], np.round(R_INT["sat_se"], 4), atol=1e-12)
    np.testing.assert_allclose(tab["SE (KR)"], np.round(R_INT["kr_se"], 4), atol=1e-12)
    np.testing.assert_allclose(tab["df Satterthwaite"], np.round(R_INT["sat_df"], 4), atol=1.5e-4)
    np.testing.assert_allclose(tab["df Kenward-Roger"], np.round(R_INT["kr_df"], 4), atol=1.5e-4)
    assert (tab["df n - p"] == 4286 - 2).all()
    assert glued["int_df_naive"] == 4284
    np.testing.assert_allclose([glued["int_df_sat_icpt"], glued["int_df_kr_icpt"], glued["int_df_sat_pov"]],
                               [R_INT["sat_df"][0], R_INT["kr_df"][0], R_INT["sat_df"][1]], atol=1.5e-4)


def test_summary_prints_lmertest_table(nb):
    text = output_of(nb, 'print(m_int.summary(ddf="Satterthwaite"))')
    assert "(Intercept) 1.861e+00  3.877e-01 5.608e+01   4.801 1.22e-05 ***" in text  # R's printCoefmat
    assert f"{R_INT['sat_df'][1]:.3e}".replace("e+03", "e+03") in text


def test_state_level_predictor_df(nb, glued):
    tab = table_of(nb, "tab_ctx = df_table(m_ctx)")
    for col, key, atol in (("estimate", "est", 1e-12), ("SE", "sat_se", 1e-12), ("SE (KR)", "kr_se", 1e-12),
                           ("df Satterthwaite", "sat_df", 1.5e-4), ("df Kenward-Roger", "kr_df", 1.5e-4)):
        np.testing.assert_allclose(tab[col], np.round(R_CTX[key], 4), atol=atol, err_msg=col)
    assert (tab["df n - p"] == 4286 - 3).all()
    expect = {"ctx_within": R_CTX["est"][1], "ctx_state": R_CTX["est"][2], "ctx_state_se": R_CTX["sat_se"][2],
              "ctx_df_within": R_CTX["sat_df"][1], "ctx_df_sat": R_CTX["sat_df"][2],
              "ctx_df_kr": R_CTX["kr_df"][2], "ctx_df_naive": 4283}
    for k, v in expect.items():
        assert glued[k] == pytest.approx(v, abs=1.5e-4), k
    # the state-level df are near the number of states, far below n - p
    assert 30 < glued["ctx_df_sat"] < 51 < glued["ctx_df_kr"] + 5 and glued["ctx_df_naive"] > 4000


def test_critical_values_and_p_values(nb, glued):
    crit = table_of(nb, "crit = pd.DataFrame(")
    t_sat = R_CTX["est"][2] / R_CTX["sat_se"][2]
    t_kr = R_CTX["est"][2] / R_CTX["kr_se"][2]
    expect = {  # row: (df, critical value, t, p), from R's df and closed-form t quantiles
        "normal": (np.inf, stats.norm.ppf(0.975), t_sat, 2 * stats.norm.sf(t_sat)),
        "t, n - p": (4283, stats.t.ppf(0.975, 4283), t_sat, 2 * stats.t.sf(t_sat, 4283)),
        "t, Satterthwaite": (R_CTX["sat_df"][2], stats.t.ppf(0.975, R_CTX["sat_df"][2]), t_sat, R_CTX["sat_p"][2]),
        "t, Kenward-Roger": (R_CTX["kr_df"][2], stats.t.ppf(0.975, R_CTX["kr_df"][2]), t_kr, R_CTX["kr_p"][2]),
    }
    for row, vals in expect.items():
        np.testing.assert_allclose(crit.loc[row].to_numpy(), np.round(vals, 4), atol=1.5e-4, err_msg=row)
    assert glued["crit_naive"] == pytest.approx(stats.t.ppf(0.975, 4283), abs=1e-4)
    assert glued["crit_sat"] == pytest.approx(stats.t.ppf(0.975, R_CTX["sat_df"][2]), abs=1e-4)
    assert glued["p_state_sat"] == pytest.approx(R_CTX["sat_p"][2], abs=1e-4)
    assert glued["p_state_naive"] == pytest.approx(2 * stats.t.sf(t_sat, 4283), abs=1e-4)
    # the prose: with 10 or 15 groups (df below the number of groups) the critical value passes 2.1
    assert stats.t.ppf(0.975, 15) > 2.1 and stats.t.ppf(0.975, 10) > 2.1


# ---------------------------------------------- 2. intervals for the faculty standard deviations
def dense_ml_deviance(sds: np.ndarray, y, X, Za, Zb) -> float:
    """−2 log L of y ~ N(Xβ̂, σa² Za Zaᵀ + σb² Zb Zbᵀ + σ² I), β̂ by GLS: from the definition."""
    sa, sb, s = sds
    V = sa**2 * Za @ Za.T + sb**2 * Zb @ Zb.T + s**2 * np.eye(len(y))
    c = np.linalg.cholesky(V)
    Xw, yw = np.linalg.solve(c, X), np.linalg.solve(c, y)
    beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]
    r = yw - Xw @ beta
    return float(2 * np.sum(np.log(np.diag(c))) + r @ r + len(y) * np.log(2 * np.pi))


@pytest.fixture(scope="module")
def faculty_dense():
    f = mh.load_faculty()
    y = f.salary.to_numpy(float)
    X = np.column_stack([np.ones(len(f)), f.experience.to_numpy(float)])
    Za = pd.get_dummies(f.department).to_numpy(float)
    Zb = Za * f.experience.to_numpy(float)[:, None]
    dev = lambda v: dense_ml_deviance(v, y, X, Za, Zb)  # noqa: E731
    res = optimize.minimize(dev, x0=[15000.0, 600.0, 3800.0], method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 20000, "maxfev": 40000})
    est = res.x
    # Hessian of the deviance by central differences (steps relative to each parameter)
    h = 1e-3 * est
    H = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            ei, ej = np.eye(3)[i] * h[i], np.eye(3)[j] * h[j]
            H[i, j] = (dev(est + ei + ej) - dev(est + ei - ej) - dev(est - ei + ej) + dev(est - ei - ej)) / (
                4 * h[i] * h[j])
    cov = 2 * np.linalg.inv(H)  # deviance = −2 log L
    return {"est": est, "se": np.sqrt(np.diag(cov)), "dev": res.fun}


def test_wald_and_profile_intervals_of_the_faculty_sds(nb, glued, faculty_dense):
    tab = table_of(nb, "sd_intervals = pd.DataFrame(")
    est, se = faculty_dense["est"], faculty_dense["se"]
    z = stats.norm.ppf(0.975)
    # ML estimates and Wald SEs against the dense likelihood (SEs: finite differences, 0.5 %)
    assert np.all(np.abs(tab["estimate"].to_numpy() - est[:2]) <= 0.51 + 1e-4 * est[:2])  # printed rounded
    np.testing.assert_allclose(tab["estimate"], np.round(R_FS_ML_SD), atol=0.51)
    assert np.all(np.abs(tab["SE"].to_numpy() - se[:2]) <= 0.51 + 5e-3 * se[:2])
    assert glued["sd_slope"] == pytest.approx(est[1], rel=1e-4)
    assert glued["sd_icpt"] == pytest.approx(est[0], rel=1e-4)
    assert glued["sd_slope_se"] == pytest.approx(se[1], rel=5e-3)
    for key, k, sign in (("wald_slope_lo", 1, -1), ("wald_slope_hi", 1, 1), ("wald_icpt_lo", 0, -1),
                         ("wald_icpt_hi", 0, 1)):
        assert glued[key] == pytest.approx(est[k] + sign * z * se[k], rel=5e-3), key
    np.testing.assert_allclose(tab["Wald lower"], tab["estimate"] - z * tab["SE"], atol=1.5)
    # profile intervals: lme4's printed values
    for row, name in (("intercept SD", ".sig01"), ("slope SD", ".sig02")):
        r = [ix for ix in tab.index if row in ix][0]
        np.testing.assert_allclose(tab.loc[r, ["profile lower", "profile upper"]], R_PROFILE_FS[name], atol=0.6)
    np.testing.assert_allclose([glued["prof_slope_lo"], glued["prof_slope_hi"]], R_PROFILE_FS[".sig02"], atol=0.01)
    np.testing.assert_allclose([glued["prof_icpt_lo"], glued["prof_icpt_hi"]], R_PROFILE_FS[".sig01"], atol=0.01)
    # the claim of the prose: the profile interval lies above the Wald one at both ends
    assert glued["prof_slope_lo"] > glued["wald_slope_lo"] and glued["prof_slope_hi"] > glued["wald_slope_hi"]


def test_profile_ends_have_the_chisq_deviance(faculty_dense):
    """Independent of lme4: at the ends of the profile interval the profiled dense deviance is χ²₁(0.95) above
    its minimum."""
    f = mh.load_faculty()
    y = f.salary.to_numpy(float)
    X = np.column_stack([np.ones(len(f)), f.experience.to_numpy(float)])
    Za = pd.get_dummies(f.department).to_numpy(float)
    Zb = Za * f.experience.to_numpy(float)[:, None]
    for end in R_PROFILE_FS[".sig02"]:
        prof = optimize.minimize(lambda v, end=end: dense_ml_deviance([v[0], end, v[1]], y, X, Za, Zb),
                                 x0=faculty_dense["est"][[0, 2]], method="Nelder-Mead",
                                 options={"xatol": 1e-4, "fatol": 1e-9, "maxiter": 5000})
        assert prof.fun - faculty_dense["dev"] == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-3)


# ------------------------------------------------------------------ 3. the ICC bootstrap
def mc_tol(sd: float, p: float | None = None) -> float:
    """Three combined Monte-Carlo standard errors (chapter: NSIM, R: R_BOOT_NSIM) of a mean, or of a
    p-quantile of a normal-shaped distribution with standard deviation ``sd``."""
    if p is None:
        return 3 * sd * np.sqrt(1 / NSIM + 1 / R_BOOT_NSIM)
    dens = stats.norm.pdf(stats.norm.ppf(p)) / sd
    return 3 * np.sqrt(p * (1 - p) * (1 / NSIM + 1 / R_BOOT_NSIM)) / dens


def test_icc_bootstrap(nb, glued):
    summ = series_of(nb, "icc_summary = pd.Series(")
    sd = R_BOOT_ICC["sd"]
    assert summ["estimate"] == pytest.approx(R_ICC, abs=6e-4)
    assert glued["icc_hat"] == pytest.approx(R_ICC, abs=1e-4)
    assert summ["bootstrap mean"] == pytest.approx(R_BOOT_ICC["mean"], abs=mc_tol(sd) + 5e-4)
    assert summ["bootstrap SD"] == pytest.approx(sd, abs=3 * sd * np.sqrt(1 / (2 * NSIM) + 1 / (2 * R_BOOT_NSIM)))
    assert glued["icc_lo"] == pytest.approx(R_BOOT_ICC["lo"], abs=mc_tol(sd, 0.025))
    assert glued["icc_hi"] == pytest.approx(R_BOOT_ICC["hi"], abs=mc_tol(sd, 0.975))
    assert summ["2.5 % (percentile)"] == pytest.approx(glued["icc_lo"], abs=6e-4)
    assert summ["97.5 % (percentile)"] == pytest.approx(glued["icc_hi"], abs=6e-4)
    assert glued["icc_lo_gap"] == pytest.approx(glued["icc_hat"] - glued["icc_lo"], abs=2e-4)
    assert glued["icc_hi_gap"] == pytest.approx(glued["icc_hi"] - glued["icc_hat"], abs=2e-4)


def test_icc_bootstrap_is_reproducible_and_seed_stable():
    """The chapter's seed gives its numbers; another seed agrees within Monte-Carlo error."""
    m = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", mh.load_arrests())
    other = mh.bootstrap(m, lambda fit: mh.icc(fit), nsim=NSIM, seed=12345).iloc[:, 0]
    assert other.std() == pytest.approx(R_BOOT_ICC["sd"], rel=0.25)
    assert other.mean() == pytest.approx(R_BOOT_ICC["mean"], abs=mc_tol(R_BOOT_ICC["sd"]) + 5e-4)


# ----------------------------------------------------------- 4. testing the slope variance
def test_lrt_naive_and_mixture(nb, glued):
    text = output_of(nb, "p_mixture = 0.5 * stats.chi2.sf(lrt, 1)")
    lrt = R_LRT
    p_naive = stats.chi2.sf(lrt, 1)
    p_mix = 0.5 * 0.0 + 0.5 * stats.chi2.sf(lrt, 1)  # P(chi2_0 >= lrt) = 0 for lrt > 0
    assert f"LRT = {lrt:.3f}, naive p = {R_LRT_P:.4f}, mixture p = {p_mix:.4f}" in text
    assert glued["lrt"] == pytest.approx(lrt, abs=1e-4)
    assert glued["p_naive"] == pytest.approx(p_naive, abs=1e-4) and glued["p_naive"] == pytest.approx(R_LRT_P, abs=1e-4)
    assert glued["p_mixture"] == pytest.approx(p_mix, abs=1e-4)


def test_parametric_bootstrap_test(nb, glued):
    tab = table_of(nb, "pb = pb_test(m_f, m_fs, nsim=200, seed=1)")
    assert tab.loc["LRT", "stat"] == pytest.approx(R_LRT, abs=1e-4)
    assert tab.loc["LRT", "p_value"] == pytest.approx(R_LRT_P, abs=1e-4)
    n_ext = glued["n_extreme"]
    assert n_ext == 0  # the prose writes the p-value as (1 + 0)/(1 + 200), the smallest 200 simulations give
    assert glued["p_pb"] == pytest.approx((1 + n_ext) / (1 + NSIM), abs=1e-4)
    assert tab.loc["PBtest", "p_value"] == pytest.approx((1 + n_ext) / (1 + NSIM), abs=1e-4)
    # PBmodcomp: 1 of 1,000 simulated statistics reached 8.05; the chapter's count must be plausible
    assert n_ext <= stats.binom.ppf(0.999, NSIM, 2 / 1001)


def test_null_distribution_summary(nb, glued):
    summ = series_of(nb, "ref_summary = pd.Series(")
    assert summ["95 % quantile, mixture"] == pytest.approx(stats.chi2.ppf(0.90, 1), abs=1e-3)
    assert summ["95 % quantile, naive chi2(1)"] == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-3)
    assert summ["share of LRT* at zero"] == pytest.approx(glued["share_zero_pct"] / 100, abs=6e-4)
    assert summ["95 % quantile of LRT*"] == pytest.approx(glued["q95_boot"], abs=6e-4)
    # against PBmodcomp's 1,000 simulations: the share at zero is binomial; the 95 % quantile of so skewed a
    # distribution is poorly determined by 200 draws, so only the prose's claim about it is checked, for both
    share, q95 = R_PB["share_zero"], R_PB["q95"]
    tol = 3 * np.sqrt(share * (1 - share) * (1 / NSIM + 1 / R_BOOT_NSIM))
    assert glued["share_zero_pct"] / 100 == pytest.approx(share, abs=tol)
    assert glued["share_zero_pct"] > 60  # the prose: well above the mixture's one half
    assert glued["q95_boot"] < stats.chi2.ppf(0.90, 1) and q95 < stats.chi2.ppf(0.90, 1)  # below the mixture's


def test_exercise_outputs(nb):
    ex1 = output_of(nb, "ex1 = pd.concat(")
    nums = {ln.split()[0]: [float(v) for v in ln.split()[-5:]] for ln in ex1.splitlines()[1:] if ln.strip()}
    z_sat, z_kr = stats.t.ppf(0.975, R_CTX["sat_df"][2]), stats.t.ppf(0.975, R_CTX["kr_df"][2])
    b, s_sat, s_kr = R_CTX["est"][2], R_CTX["sat_se"][2], R_CTX["kr_se"][2]
    q = stats.t.ppf(0.975, 4283)
    np.testing.assert_allclose(nums["Satterthwaite"], np.round([b, s_sat, R_CTX["sat_df"][2], b - z_sat * s_sat,
                                                                b + z_sat * s_sat], 4), atol=1.5e-4)
    np.testing.assert_allclose(nums["Kenward-Roger"], np.round([b, s_kr, R_CTX["kr_df"][2], b - z_kr * s_kr,
                                                                b + z_kr * s_kr], 4), atol=1.5e-4)
    np.testing.assert_allclose(nums["n"], np.round([b, s_sat, 4283, b - q * s_sat, b + q * s_sat], 4), atol=1.5e-4)
    ex2 = table_of(nb, "ex2 = pd.DataFrame(")
    np.testing.assert_allclose(ex2.loc["profile"], R_PROFILE_INT_90, atol=6e-4)
    # Wald from the ML fit: centred on the ML estimate of σ_α (statsmodels' MixedLM, an independent fit), and,
    # as the prose says, within a few hundredths of the profile interval at both ends
    d = mh.load_arrests()
    sm_fit = sm.MixedLM.from_formula("violent_arrest_per1000 ~ pop_pct_pov", d, groups=d["stusps"]).fit(reml=False)
    sd_ml = float(np.sqrt(sm_fit.cov_re.iloc[0, 0]))
    lo, hi = ex2.loc["Wald"]
    assert (lo + hi) / 2 == pytest.approx(sd_ml, abs=2e-3)
    assert np.all(np.abs(ex2.loc["Wald"].to_numpy() - np.array(R_PROFILE_INT_90)) < 0.1)
    ex3 = output_of(nb, "contest(m_ctx, [0, 1, -1], joint=False)")
    vals = [float(v) for v in ex3.splitlines()[-1].split()[1:]]
    np.testing.assert_allclose(vals, np.round([R_CONTEST[k] for k in ("est", "se", "df", "t", "p")], 4),
                               atol=1.5e-4)
    ex4 = output_of(nb, "x = 3.0")
    assert f"naive {stats.chi2.ppf(0.95, 1):.3f}, mixture {stats.chi2.ppf(0.90, 1):.3f}" in ex4
    assert f"x = 3: naive p = {stats.chi2.sf(3, 1):.4f}, mixture p = {0.5 * stats.chi2.sf(3, 1):.4f}" in ex4
