"""Chapter 04, "Predicting for counties and for a new state": its numbers, independently.

The numbers the chapter prints in its prose are stored in the notebook as glue outputs. Here
they are recomputed WITHOUT mlmhelpers' fitting or prediction code:

* the random-intercept model ``y ~ x + (1 | stusps)`` is refitted by REML from its closed-form
  per-state algebra (``V_s = sigma^2 (I + lambda J)``, inverted with the Sherman-Morrison
  formula) and a one-dimensional scipy minimisation; the conditional modes of the state effects
  are ``lambda / (1 + lambda n_s)`` times the state's residual sum, their conditional variances
  ``sigma^2 lambda / (1 + lambda n_s)``;
* the two OLS models (complete pooling and state fixed effects) are solved with
  ``np.linalg.lstsq`` on hand-built design matrices.

Population-level predictions must equal ``X beta`` and conditional ones ``X beta + b_s``; the
simulated interval of ``predict_interval`` must agree with the analytic normal interval up to
Monte Carlo error (stated below); the fixed-effects model must refuse a new state; and the
out-of-sample RMSEs printed in the chapter must be reproduced.

Run with ``.venv/bin/python -m pytest tests/test_chapter_prediction.py -o addopts="" -q``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from mlmhelpers import lm, lmer, load_arrests, predict_interval

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "04_prediction.ipynb"
Y, X, G = "violent_arrest_per1000", "pop_pct_pov", "stusps"
ML_FORMULA = "violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)"
FE_FORMULA = "violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)"
X_STAR = 15.0  # the chapter's poverty rate for the interval examples
N_SIMS, SEED = 20_000, 2024  # the chapter's simulation settings
Z975 = stats.norm.ppf(0.975)


# ------------------------------------------------------------------------------ the notebook


@lru_cache(maxsize=1)
def notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


@lru_cache(maxsize=1)
def glued() -> dict[str, float]:
    """The values the notebook stored with glue(), by name."""
    out = {}
    for cell in notebook().cells:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            if "name" in book:
                out[book["name"]] = float(o["data"][book.get("mime_prefix", "") + "text/plain"])
    return out


# ------------------------------------------------------------- an independent REML refit


@dataclass
class RandomIntercept:
    beta: np.ndarray  # (mu_alpha, beta_1)
    sigma2: float
    sigma2_state: float
    vcov: np.ndarray  # Var(beta-hat)
    b: pd.Series  # conditional modes of the state effects
    condvar: pd.Series  # Var(b_s | y)

    def population(self, x) -> np.ndarray:
        return self.beta[0] + self.beta[1] * np.asarray(x, dtype=float)

    def conditional(self, x, states) -> np.ndarray:
        return self.population(x) + pd.Series(states).map(self.b).to_numpy()


def reml_random_intercept(df: pd.DataFrame) -> RandomIntercept:
    """REML fit of y ~ x + (1 | g) from per-group sums; lambda = sigma_alpha^2 / sigma^2."""
    levels, codes = np.unique(df[G].to_numpy(), return_inverse=True)
    y = df[Y].to_numpy(float)
    Xm = np.column_stack([np.ones(len(df)), df[X].to_numpy(float)])
    n, p = Xm.shape
    n_j = np.bincount(codes).astype(float)
    sX = np.stack([np.bincount(codes, Xm[:, k]) for k in range(p)], axis=1)  # X_j' 1
    sy = np.bincount(codes, y)  # y_j' 1
    XtX, Xty, yty = Xm.T @ Xm, Xm.T @ y, y @ y

    def parts(lam: float):
        w = lam / (1 + lam * n_j)  # V0_j^{-1} = I - w_j J
        A = XtX - np.einsum("j,jk,jl->kl", w, sX, sX)
        c = Xty - np.einsum("j,jk,j->k", w, sX, sy)
        beta = np.linalg.solve(A, c)
        rss = yty - np.sum(w * sy**2) - beta @ c
        return w, A, beta, rss

    def criterion(log_theta: float) -> float:
        lam = np.exp(2 * log_theta)
        _, A, _, rss = parts(lam)
        return (n - p) * np.log(rss) + np.sum(np.log1p(lam * n_j)) + np.linalg.slogdet(A)[1]

    opt = optimize.minimize_scalar(criterion, bounds=(-8, 4), method="bounded",
                                   options={"xatol": 1e-10})
    lam = np.exp(2 * opt.x)
    w, A, beta, rss = parts(lam)
    sigma2 = rss / (n - p)
    resid_sum = sy - sX @ beta
    return RandomIntercept(
        beta=beta, sigma2=sigma2, sigma2_state=lam * sigma2, vcov=sigma2 * np.linalg.inv(A),
        b=pd.Series(w * resid_sum, index=levels), condvar=pd.Series(sigma2 * w, index=levels))


@cache
def own_fit(subset: str = "all") -> RandomIntercept:
    d = load_arrests()
    if subset == "2011":
        d = d[d["year"] == 2011]
    elif subset.startswith("without "):
        d = d[d[G] != subset.split()[1]]
    return reml_random_intercept(d)


@lru_cache(maxsize=1)
def chapter_model():
    return lmer(ML_FORMULA, load_arrests())


def test_independent_reml_reproduces_the_chapter_fit() -> None:
    ref, g = own_fit(), glued()
    assert g["mu_hat"] == pytest.approx(ref.beta[0], rel=1e-5)
    assert g["beta_hat"] == pytest.approx(ref.beta[1], rel=1e-5)
    assert g["var_state"] == pytest.approx(ref.sigma2_state, rel=1e-5)
    assert g["var_resid"] == pytest.approx(ref.sigma2, rel=1e-6)
    # lecture B's printed lme4 values, as a sanity check of the independent fit itself
    assert ref.sigma2_state == pytest.approx(5.942, abs=5e-4)
    assert ref.sigma2 == pytest.approx(14.196, abs=5e-4)
    assert ref.beta == pytest.approx([1.86112, 0.13340], abs=5e-6)


def test_population_prediction_is_x_beta() -> None:
    ref, m = own_fit(), chapter_model()
    x = np.array([0.0, 10.0, 20.0, 30.0, 48.7])
    new = pd.DataFrame({G: ["TX", "DC", "DE", "HI", "NEW"], X: x})
    assert m.predict(new, re_form="~0").to_numpy() == pytest.approx(ref.population(x), rel=1e-6)
    assert glued()["pop_at_20"] == pytest.approx(ref.population(20.0), rel=1e-6)


def test_conditional_prediction_is_fixef_plus_ranef() -> None:
    ref, m, g = own_fit(), chapter_model(), glued()
    states = ["TX", "DE", "DC", "HI", "VT", "CA"]
    new = pd.DataFrame({G: states, X: [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]})
    assert m.predict(new).to_numpy() == pytest.approx(ref.conditional(new[X], states), rel=1e-5)
    for s in ["TX", "DE", "DC"]:
        assert g[f"b_{s.lower()}"] == pytest.approx(ref.b[s], rel=1e-4)
    assert g["sim_fit_tx"] == pytest.approx(ref.conditional([X_STAR], ["TX"])[0], rel=1e-5)
    assert g["sim_fit_dc"] == pytest.approx(ref.conditional([X_STAR], ["DC"])[0], rel=1e-5)


def test_new_state_gets_the_population_line() -> None:
    ref, m = own_fit(), chapter_model()
    new = pd.DataFrame({G: ["NEW", "NEW"], X: [X_STAR, 30.0]})
    assert m.predict(new, allow_new_levels=True).to_numpy() == pytest.approx(
        ref.population(new[X]), rel=1e-6)
    assert glued()["sim_fit_new"] == pytest.approx(ref.population(X_STAR), rel=1e-6)
    with pytest.raises(ValueError, match="NEW"):
        m.predict(new)


def test_conditional_variance_closed_form() -> None:
    ref, m = own_fit(), chapter_model()
    cv = pd.Series(m.condvar[:, 0, 0], index=m.ranef.index)
    assert cv.to_numpy() == pytest.approx(ref.condvar.reindex(cv.index).to_numpy(), rel=1e-4)
    # 1 / (1/sigma_alpha^2 + n_s / sigma^2), the chapter's formula
    n_s = m.group_sizes.reindex(cv.index).to_numpy()
    assert cv.to_numpy() == pytest.approx(1 / (1 / ref.sigma2_state + n_s / ref.sigma2), rel=1e-4)


# ------------------------------------------------------------------- simulated intervals


def analytic_sd(ref: RandomIntercept, states: list[str], include_residual: bool) -> np.ndarray:
    """sqrt(x'Vx + Var(state effect) + sigma^2), the normal approximation of the chapter."""
    xv = np.array([1.0, X_STAR])
    var_beta = xv @ ref.vcov @ xv
    var_state = np.array([ref.condvar[s] if s in ref.condvar.index else ref.sigma2_state
                          for s in states])
    return np.sqrt(var_beta + var_state + (ref.sigma2 if include_residual else 0.0))


def mc_se_quantile(sd: np.ndarray, n: int, p: float = 0.975) -> np.ndarray:
    """Monte Carlo SE of an empirical p-quantile of n normal draws with this sd:
    sqrt(p (1 - p) / n) / phi(z_p) * sd (asymptotic variance of a sample quantile)."""
    return np.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p)) * sd


@pytest.mark.parametrize("include_residual", [True, False])
@pytest.mark.parametrize("seed", [SEED, 7])
def test_simulated_half_width_matches_normal_interval(include_residual: bool, seed: int) -> None:
    """The draws of predict_interval are sums of independent normals, so their distribution is
    exactly N(fit, V) of the normal approximation: the two half-widths differ only by Monte
    Carlo error. The half-width (U - L) / 2 has a Monte Carlo SE of about sqrt(2)/2 times that
    of one bound (the two extreme quantiles are nearly uncorrelated); we allow 4 SE of one bound,
    i.e. more than 5.6 SE of the half-width, so the test fails only on a real discrepancy."""
    ref, m = own_fit(), chapter_model()
    states = ["TX", "DC", "NEW"]
    cases = pd.DataFrame({G: states, X: [X_STAR] * 3})
    sim = predict_interval(m, cases, level=0.95, n_sims=N_SIMS, seed=seed, allow_new_levels=True,
                           include_residual=include_residual)
    sd = analytic_sd(ref, states, include_residual)
    half = ((sim["upper"] - sim["lower"]) / 2).to_numpy()
    se = mc_se_quantile(sd, N_SIMS)
    assert np.all(np.abs(half - Z975 * sd) < 4 * se), (half, Z975 * sd, se)
    centre = ((sim["upper"] + sim["lower"]) / 2).to_numpy()
    assert np.all(np.abs(centre - sim["fit"].to_numpy()) < 4 * se)


def test_chapter_interval_numbers_within_monte_carlo_error() -> None:
    ref, g = own_fit(), glued()
    keys = ["tx", "dc", "new"]
    states = ["TX", "DC", "NEW"]
    sd_county = analytic_sd(ref, states, include_residual=True)
    sd_line = analytic_sd(ref, states, include_residual=False)
    se_county = mc_se_quantile(sd_county, N_SIMS)
    se_line = mc_se_quantile(sd_line, N_SIMS)
    for k, sdc, sec, sdl, sel in zip(keys, sd_county, se_county, sd_line, se_line, strict=True):
        # width = U - L: SE about sqrt(2) times one bound's; 4 such SE allowed
        assert abs(g[f"sim_width_{k}"] - 2 * Z975 * sdc) < 4 * np.sqrt(2) * sec
        assert abs(g[f"mean_hw_{k}"] - Z975 * sdl) < 4 * sel
    assert g["max_width_gap"] < 4 * np.sqrt(2) * g["mc_se_max"]
    assert g["mc_se_max"] == pytest.approx(se_county.max(), rel=1e-4)
    assert g["cv_dc"] == pytest.approx(ref.condvar["DC"], rel=1e-4)
    assert g["vb_tx"] == pytest.approx(np.array([1, X_STAR]) @ ref.vcov @ np.array([1, X_STAR]),
                                       rel=1e-4)


# -------------------------------------------------------------------- fixed-effects model


def test_fixed_effects_model_refuses_a_new_state() -> None:
    fe = lm(FE_FORMULA, load_arrests())
    with pytest.raises(ValueError, match="NEW"):
        fe.predict(pd.DataFrame({G: ["NEW"], X: [X_STAR]}))
    # a known state still predicts, and equals the lstsq fit's line
    d = load_arrests()
    Xd = fe_design(d)
    beta = np.linalg.lstsq(Xd.to_numpy(float), d[Y].to_numpy(float), rcond=None)[0]
    dc = pd.DataFrame({G: ["DC"], X: [X_STAR]})
    own = beta[0] + beta[1] * X_STAR + beta[list(Xd.columns).index("DC")]
    assert fe.predict(dc).iloc[0] == pytest.approx(own, rel=1e-8)
    assert glued()["dc_fe_pred"] == pytest.approx(own, rel=1e-8)


# ------------------------------------------------------------------ out-of-sample checks


def fe_design(df: pd.DataFrame, levels=None) -> pd.DataFrame:
    """[1, x, dummies of every state but the first level] (R's treatment coding)."""
    levels = sorted(df[G].unique()) if levels is None else levels
    dummies = pd.get_dummies(pd.Categorical(df[G], categories=levels)).iloc[:, 1:]
    dummies.index = df.index
    return pd.concat([pd.Series(1.0, index=df.index, name="(Intercept)"), df[X], dummies], axis=1)


def rmse(y, yhat) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(yhat)) ** 2)))


@lru_cache(maxsize=1)
def holdout_predictions() -> pd.DataFrame:
    d = load_arrests()
    train, test = d[d["year"] == 2011], d[d["year"] == 2016]
    y_tr = train[Y].to_numpy(float)
    # complete pooling
    X_tr = np.column_stack([np.ones(len(train)), train[X]])
    b_cp = np.linalg.lstsq(X_tr, y_tr, rcond=None)[0]
    cp = b_cp[0] + b_cp[1] * test[X].to_numpy(float)
    # no pooling: state dummies with the training levels
    levels = sorted(train[G].unique())
    b_np = np.linalg.lstsq(fe_design(train, levels).to_numpy(float), y_tr, rcond=None)[0]
    npool = fe_design(test, levels).to_numpy(float) @ b_np
    # partial pooling: the independent REML fit on 2011
    pp = own_fit("2011").conditional(test[X], test[G])
    n_train = train.groupby(G).size()
    return pd.DataFrame({"y": test[Y].to_numpy(float), "complete": cp, "none": npool,
                         "partial": pp, "n_train": test[G].map(n_train).to_numpy()},
                        index=test.index)


def test_holdout_rmse_recomputed_with_numpy() -> None:
    t, g = holdout_predictions(), glued()
    assert len(t) == g["n_test"] == 1978
    assert g["n_train"] == 2308
    assert g["rmse_complete"] == pytest.approx(rmse(t["y"], t["complete"]), rel=1e-9)
    assert g["rmse_none"] == pytest.approx(rmse(t["y"], t["none"]), rel=1e-9)
    assert g["rmse_partial"] == pytest.approx(rmse(t["y"], t["partial"]), rel=1e-6)
    small = t[t["n_train"] <= 10]
    assert g["n_small_test"] == len(small) == 49
    assert g["rmse_small_complete"] == pytest.approx(rmse(small["y"], small["complete"]), rel=1e-9)
    assert g["rmse_small_none"] == pytest.approx(rmse(small["y"], small["none"]), rel=1e-9)
    assert g["rmse_small_partial"] == pytest.approx(rmse(small["y"], small["partial"]), rel=1e-6)


def test_holdout_conclusions() -> None:
    """What the prose says: the state helps; partial and no pooling are practically tied
    overall; among the smallest states no pooling edges out partial pooling."""
    t = holdout_predictions()
    r = {k: rmse(t["y"], t[k]) for k in ("complete", "none", "partial")}
    assert r["complete"] - r["partial"] > 0.3
    assert abs(r["none"] - r["partial"]) < 0.01
    small = t[t["n_train"] <= 10]
    assert rmse(small["y"], small["none"]) < rmse(small["y"], small["partial"])


@pytest.mark.parametrize("state", ["DC", "TX"])
def test_leave_one_state_out(state: str) -> None:
    d = load_arrests()
    held = d[d[G] == state]
    new_state = own_fit(f"without {state}").population(held[X])
    in_sample = own_fit().conditional(held[X], held[G])
    g = glued()
    key = state.lower()
    assert g[f"loso_{key}_new"] == pytest.approx(rmse(held[Y], new_state), rel=1e-6)
    assert g[f"loso_{key}_in"] == pytest.approx(rmse(held[Y], in_sample), rel=1e-6)
    if state == "DC":
        assert g["loso_dc_err"] == pytest.approx(np.mean(held[Y] - new_state), rel=1e-6)


# ------------------------------------------------------- corrections of issue 16 (prose)


def test_chapters_are_linked_by_name_and_rows_are_not_called_counties():
    text = "\n".join(c.source for c in notebook().cells if c.cell_type == "markdown")
    assert "previous chapter" not in text and "In this lecture" not in text
    assert "{doc}`notation`" in text and "{doc}`02_pooling_violent_arrests`" in text
    for wrong in ("390 counties", "8 counties", "Eight counties", "most counties in the data"):
        assert wrong not in text, wrong
