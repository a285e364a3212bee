"""Chapter 07, "Checking a multilevel model": its numbers, independently.

The numbers the chapter prints in its prose are stored in the notebook as glue outputs. Here
they are recomputed WITHOUT mlmhelpers' fitting, residual, QQ or simulation code:

* the random-intercept models (rates and log rates) are refitted by REML with statsmodels'
  MixedLM; fitted values are its fixed part plus its predicted state effects;
* the QQ band is checked through the binomial identity P(U_(i) <= p) = P(Binom(n, p) >= i)
  instead of the Beta quantiles the package uses;
* the county and state conditional modes of ``(1 | stusps/county)`` are lme4 1.1-31's own
  (pinned in tests/r/engine_v2_reference.json by tests/r/engine_v2_reference.R);
* the Brown-Forsythe test is a one-way ANOVA of |residual - state median| written out in numpy;
* the simulation checks are repeated with an independent simulation (numpy's generator, another
  seed, 2,000 data sets) from the statsmodels variance estimates; simulated summaries must agree
  within four Monte Carlo standard errors of the difference, stated where used.

Run with ``.venv/bin/python -m pytest tests/test_chapter_model_checking.py -o addopts="" -q``.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from mlmhelpers import load_arrests

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "07_model_checking.ipynb"
REF = json.loads((ROOT / "tests" / "r" / "engine_v2_reference.json").read_text())["county_reml"]
Y, X, G = "violent_arrest_per1000", "pop_pct_pov", "stusps"
C = 0.1  # the chapter's constant in log(y + c)
N_SIMS_CHAPTER, N_SIMS_HERE = 500, 2000


# ------------------------------------------------------------------------------ the notebook


@lru_cache(maxsize=1)
def notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


@lru_cache(maxsize=1)
def glued() -> dict:
    out = {}
    for cell in notebook().cells:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            if "name" in book:
                text = o["data"][book.get("mime_prefix", "") + "text/plain"]
                try:
                    out[book["name"]] = float(text)
                except ValueError:
                    out[book["name"]] = text.strip("'\"")
    return out


def g(name: str):
    return glued()[name]


# ------------------------------------------------------------------ independent computations


@lru_cache(maxsize=1)
def data() -> pd.DataFrame:
    return load_arrests()


@lru_cache(maxsize=2)
def sm_fit(log: bool):
    """statsmodels REML fit: (fixed effects, their t values, sigma2, state var, fitted, state effects)."""
    d = data().copy()
    d["yy"] = np.log(d[Y] + C) if log else d[Y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.mixedlm(f"yy ~ {X}", d, groups=d[G]).fit(reml=True, method=["lbfgs"])
    re = pd.Series({k: float(v.iloc[0]) for k, v in res.random_effects.items()})
    fe = res.fe_params
    fitted = fe["Intercept"] + fe[X] * d[X] + d[G].map(re)
    return {"fe": fe, "t": res.tvalues, "s2": float(res.scale), "v_state": float(res.cov_re.iloc[0, 0]),
            "fitted": fitted, "re": re, "y": d["yy"]}


def scaled_resid(log: bool = False) -> pd.Series:
    f = sm_fit(log)
    return (f["y"] - f["fitted"]) / np.sqrt(f["s2"])


def outside_band(values, loc: float = 0.0, scale: float = 1.0, level: float = 0.95) -> np.ndarray:
    """Whether each sorted value lies outside the pointwise band, via the binomial identity."""
    v = np.sort(np.asarray(values, dtype=float))
    n = v.size
    i = np.arange(1, n + 1)
    p = stats.norm.cdf((v - loc) / scale)
    prob = stats.binom.sf(i - 1, n, p)  # P(U_(i) <= p) = P(Binom(n, p) >= i)
    a = (1 - level) / 2
    return (prob < a) | (prob > 1 - a)


def independent_sims(log: bool) -> np.ndarray:
    """N_SIMS_HERE responses (n x nsim) from the fitted model, new state effects each time."""
    f = sm_fit(log)
    d = data()
    codes, levels = pd.factorize(d[G])
    rng = np.random.default_rng(20261203)
    b = rng.normal(0.0, np.sqrt(f["v_state"]), (len(levels), N_SIMS_HERE))
    eps = rng.normal(0.0, np.sqrt(f["s2"]), (len(d), N_SIMS_HERE))
    mean = (f["fe"]["Intercept"] + f["fe"][X] * d[X]).to_numpy()
    sims = mean[:, None] + b[codes] + eps
    return np.exp(sims) - C if log else sims


def statistics(sims: np.ndarray) -> pd.DataFrame:
    d = data()
    codes = pd.factorize(d[G])[0]
    counts = np.bincount(codes)
    means = np.stack([np.bincount(codes, weights=sims[:, j]) / counts for j in range(sims.shape[1])], axis=1)
    return pd.DataFrame({"skew": stats.skew(sims, axis=0), "max": sims.max(axis=0),
                         "le0": (sims <= 0).mean(axis=0), "sdmeans": means.std(axis=0, ddof=1)})


@lru_cache(maxsize=2)
def sim_stats(log: bool) -> pd.DataFrame:
    return statistics(independent_sims(log))


def observed_stats() -> pd.Series:
    return statistics(data()[Y].to_numpy()[:, None]).iloc[0]


def mc_tol(sd: float) -> float:
    """Four standard errors of the difference of two simulated means (500 vs 2,000 draws)."""
    return 4 * sd * np.sqrt(1 / N_SIMS_CHAPTER + 1 / N_SIMS_HERE)


def share_tol(p: float) -> float:
    p = min(max(p, 0.01), 0.99)
    return 4 * np.sqrt(p * (1 - p) * (1 / N_SIMS_CHAPTER + 1 / N_SIMS_HERE))


def quantile_tol(sims: pd.Series, q: float) -> float:
    """Four standard errors (asymptotic, density from a normal fit) of the difference of two quantiles."""
    sd = sims.std()
    dens = stats.norm.pdf(stats.norm.ppf(q)) / sd
    return 4 * np.sqrt(q * (1 - q) * (1 / N_SIMS_CHAPTER + 1 / N_SIMS_HERE)) / dens


# ---------------------------------------------------------------------------------- tests


def test_notebook_uses_the_package_simulate_and_states_its_settings():
    src = "\n".join(c.source for c in notebook().cells if c.cell_type == "code")
    assert "sims = simulate(m, nsim=n_sims, seed=seed)" in src
    assert "sims_log = simulate(m_log, nsim=n_sims, seed=seed)" in src
    assert "c = 0.1" in src
    assert g("n_sims") == N_SIMS_CHAPTER


def test_data_summary():
    y = data()[Y]
    assert g("n_rows") == len(y) == 4286
    assert g("y_mean") == pytest.approx(np.mean(y), abs=5e-3)
    assert g("y_median") == pytest.approx(np.median(y), abs=5e-3)
    assert g("y_max") == pytest.approx(np.max(y), abs=0.05)
    m3 = np.mean((y - y.mean()) ** 3) / np.mean((y - y.mean()) ** 2) ** 1.5
    assert g("y_skew") == pytest.approx(m3, abs=5e-3)
    assert g("n_zero") == int(np.sum(y.to_numpy() == 0)) == 8
    assert g("pct_zero") == pytest.approx(100 * 8 / 4286, abs=5e-3)
    assert g("n_below_c") == int(np.sum((y > 0) & (y < C)))


def test_model_and_residual_numbers():
    f = sm_fit(False)
    sigma = np.sqrt(f["s2"])
    assert g("sigma_hat") == pytest.approx(sigma, abs=5e-4)
    assert g("slope_hat") == pytest.approx(f["fe"][X], abs=5e-5)
    r = scaled_resid(False)
    assert g("resid_skew") == pytest.approx(stats.skew(r), abs=5e-3)
    assert g("pct_above3") == pytest.approx(100 * np.mean(r > 3), abs=5e-3)
    assert g("pct_below3") == pytest.approx(100 * np.mean(r < -3), abs=5e-3)
    assert g("pct_normal3") == pytest.approx(100 * 2 * (1 - stats.norm.cdf(3)), abs=5e-3)
    assert g("floor_at_4") == pytest.approx(-4 / sigma, abs=5e-3)
    assert g("resid_median") == pytest.approx(np.median(r), abs=5e-3)
    # binned by poverty quintiles
    q = pd.qcut(data()[X], 5)
    by = r.groupby(q, observed=True).agg(["mean", "std"])
    assert g("bin_mean_maxabs") == pytest.approx(by["mean"].abs().max(), abs=5e-3)
    assert g("bin_sd_low") == pytest.approx(by["std"].iloc[0], abs=5e-3)
    assert g("bin_sd_high") == pytest.approx(by["std"].iloc[-1], abs=5e-3)


def test_qq_band_counts():
    r = scaled_resid(False)
    out = outside_band(r)
    # a point exactly at a band edge could flip between two fits that agree to ~1e-6
    assert abs(g("qq_out") - out.sum()) <= 2
    assert g("qq_pct_out") == pytest.approx(100 * out.mean(), abs=0.5)
    assert g("qq_expected") == pytest.approx(0.05 * 4286)
    assert abs(g("log_qq_out") - outside_band(scaled_resid(True)).sum()) <= 2
    assert g("log_resid_skew") == pytest.approx(stats.skew(scaled_resid(True)), abs=5e-3)


def test_conditional_modes_against_lme4():
    vc = dict(zip(REF["varcorr"]["grp"], REF["varcorr"]["sdcor"], strict=True))
    ran = pd.DataFrame(REF["ranef"])
    county = ran.loc[ran["grpvar"] == "county:stusps", "condval"].to_numpy()
    state = ran.loc[ran["grpvar"] == "stusps", "condval"].to_numpy()
    assert g("n_counties") == county.size == REF["ngrps"]["county:stusps"]
    assert g("county_sd") == pytest.approx(vc["county:stusps"], abs=5e-3)
    assert g("state_sd") == pytest.approx(vc["stusps"], abs=5e-3)
    assert g("county_mode_sd") == pytest.approx(np.std(county, ddof=1), abs=5e-3)
    assert g("state_mode_sd") == pytest.approx(np.std(state, ddof=1), abs=5e-3)
    assert g("county_mode_skew") == pytest.approx(stats.skew(county), abs=5e-3)
    assert g("state_mode_skew") == pytest.approx(stats.skew(state), abs=5e-3)
    assert g("state_out") == outside_band(state, scale=vc["stusps"]).sum()


def test_variance_by_state():
    f = sm_fit(False)
    d = data()
    r = f["y"] - f["fitted"]
    sd = r.groupby(d[G]).std()
    n = d.groupby(G).size()
    big = n >= 10
    assert g("n_larger") == big.sum()
    assert g("sd_max_state") == sd[big].idxmax() and g("sd_min_state") == sd[big].idxmin()
    assert g("sd_max") == pytest.approx(sd[big].max(), abs=5e-3)
    assert g("sd_min") == pytest.approx(sd[big].min(), abs=5e-3)
    assert g("sd_ratio") == pytest.approx(sd[big].max() / sd[big].min(), abs=0.05)
    # Brown-Forsythe by hand: one-way ANOVA of absolute deviations from the state medians
    z = (r - r.groupby(d[G]).transform("median")).abs()
    zbar_g, n_g = z.groupby(d[G]).mean(), z.groupby(d[G]).size()
    k, N = len(n_g), len(z)
    between = np.sum(n_g * (zbar_g - z.mean()) ** 2) / (k - 1)
    within = np.sum((z - d[G].map(zbar_g)) ** 2) / (N - k)
    F = between / within
    assert g("bf_stat") == pytest.approx(F, abs=0.05)
    assert g("bf_p") == pytest.approx(stats.f.sf(F, k - 1, N - k), rel=0.05)
    fitted_mean = f["fitted"].groupby(d[G]).mean()
    ranks = np.corrcoef(sd[big].rank(), fitted_mean[big].rank())[0, 1]
    assert g("sd_spearman") == pytest.approx(ranks, abs=5e-3)


def test_simulation_checks_against_an_independent_simulation():
    sims, obs = sim_stats(False), observed_stats()
    for key in ["skew", "max", "le0", "sdmeans"]:
        assert g(f"sim_{key}_obs") == pytest.approx(obs[key], abs=5e-3), key
        s = sims[key]
        assert g(f"sim_{key}_mean") == pytest.approx(s.mean(), abs=mc_tol(s.std())), key
        assert g(f"sim_{key}_lo") == pytest.approx(s.quantile(0.025), abs=quantile_tol(s, 0.025)), key
        assert g(f"sim_{key}_hi") == pytest.approx(s.quantile(0.975), abs=quantile_tol(s, 0.975)), key
        p = np.mean(s >= obs[key])
        assert g(f"sim_{key}_share") == pytest.approx(p, abs=share_tol(p)), key
    assert g("sim_le0_pct") == pytest.approx(100 * g("sim_le0_mean"))


def test_state_means_outside_their_simulated_range():
    sims = independent_sims(False)
    d = data()
    means = pd.DataFrame(sims).groupby(d[G].to_numpy()).mean()
    obs = d[Y].groupby(d[G]).mean()
    lo, hi = means.quantile(0.025, axis=1), means.quantile(0.975, axis=1)
    above, below = obs > hi, obs < lo
    assert {"AK", "DC", "HI"} <= set(obs[above].index)
    assert abs(g("states_above") - above.sum()) <= 1  # VA lies near its upper bound
    assert g("states_below") == below.sum() == 0
    assert g("states_expected") == pytest.approx(0.05 * 51)


def test_log_scale_simulation_checks():
    sims, obs = sim_stats(True), observed_stats()
    for key in ["skew", "max", "le0", "sdmeans"]:
        s = sims[key]
        assert g(f"log_{key}_mean") == pytest.approx(s.mean(), abs=mc_tol(s.std())), key
        p = np.mean(s >= obs[key])
        assert g(f"log_{key}_share") == pytest.approx(p, abs=share_tol(p)), key
    assert g("log_le0_pct") == pytest.approx(100 * g("log_le0_mean"))


def test_how_the_conclusions_move():
    lin, log = sm_fit(False), sm_fit(True)
    y = data()[Y]
    b = log["fe"][X]
    assert g("beta_log") == pytest.approx(b, abs=5e-5)
    assert g("pct_per_point") == pytest.approx(100 * (np.exp(b) - 1), abs=5e-3)
    assert g("pct_per_point_lin") == pytest.approx(100 * lin["fe"][X] / y.mean(), abs=5e-3)
    assert g("t_lin") == pytest.approx(lin["t"][X], abs=0.05)
    assert g("t_log") == pytest.approx(log["t"][X], abs=0.05)
    for key, f in [("icc_lin", lin), ("icc_log", log)]:
        assert g(key) == pytest.approx(f["v_state"] / (f["v_state"] + f["s2"]), abs=5e-3)
    for key, x in [("lo", 10.0), ("hi", 30.0)]:
        assert g(f"typ_lin_{key}") == pytest.approx(lin["fe"]["Intercept"] + lin["fe"][X] * x, abs=5e-3)
        assert g(f"typ_log_{key}") == pytest.approx(np.exp(log["fe"]["Intercept"] + b * x) - C, abs=5e-3)
    assert g("ratio_lin") == pytest.approx(g("typ_lin_hi") / g("typ_lin_lo"), abs=5e-3)
    assert g("ratio_log") == pytest.approx(g("typ_log_hi") / g("typ_log_lo"), abs=5e-3)
    rho = np.corrcoef(lin["re"].rank(), log["re"].reindex(lin["re"].index).rank())[0, 1]
    assert g("rank_agreement") == pytest.approx(rho, abs=5e-3)
