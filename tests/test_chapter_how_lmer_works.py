"""Chapter "How lmer works" (book/05_how_lmer_works.ipynb) and the page "Coming from R".

The chapter claims that every number of a random-intercept fit can be recomputed by hand.
These tests recompute them independently of mlmhelpers' engine, with the formulas the chapter
derives (group means, dense GLS, the profiled criterion, a brute-force grid), and check the
notebook's structure (Colab cell, glue keys, exercises) and the R-to-Python table of
book/coming_from_r.md against the package's actual API.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy.optimize import minimize_scalar

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "05_how_lmer_works.ipynb"
COMING_FROM_R = ROOT / "book" / "coming_from_r.md"

FORMULA = "violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)"
FIVE_STATES = ["AZ", "CO", "NM", "NV", "UT"]  # the chapter's dense-matrix subset


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def arrests() -> pd.DataFrame:
    return mh.load_arrests()


@pytest.fixture(scope="module")
def m(arrests):
    return mh.lmer(FORMULA, arrests)


@pytest.fixture(scope="module")
def m_ml(arrests):
    return mh.lmer(FORMULA, arrests, REML=False)


@pytest.fixture(scope="module")
def sub(arrests) -> pd.DataFrame:
    return arrests[arrests["stusps"].isin(FIVE_STATES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def m5(sub):
    return mh.lmer(FORMULA, sub)


@pytest.fixture(scope="module")
def m5_ml(sub):
    return mh.lmer(FORMULA, sub, REML=False)


def dense_design(data: pd.DataFrame):
    y = data["violent_arrest_per1000"].to_numpy()
    X = np.column_stack([np.ones(len(data)), data["pop_pct_pov"].to_numpy()])
    Z = pd.get_dummies(data["stusps"], dtype=float).to_numpy()
    return y, X, Z


def dense_profiled(theta: float, y, X, Z, reml: bool):
    """β̂, r² and the profiled criterion at θ from the marginal model, with dense matrices."""
    n, p = X.shape
    V_theta = np.eye(n) + theta**2 * Z @ Z.T
    XtVinv = np.linalg.solve(V_theta, X).T
    beta = np.linalg.solve(XtVinv @ X, XtVinv @ y)
    r = y - X @ beta
    r2 = float(r @ np.linalg.solve(V_theta, r))
    logdet_V = np.linalg.slogdet(V_theta)[1]
    if reml:
        crit = logdet_V + np.linalg.slogdet(XtVinv @ X)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    else:
        crit = logdet_V + n * (1 + np.log(2 * np.pi * r2 / n))
    return beta, r2, crit, XtVinv @ X


def variances(model) -> tuple[float, float]:
    vc = model.varcorr
    return float(vc["vcov"].iloc[0]), float(vc["vcov"].iloc[1])


# ------------------------------------------------------------------- the chapter's numbers


def test_theta_is_ratio_of_standard_deviations(m) -> None:
    var_state, var_resid = variances(m)
    theta = float(m.theta.iloc[0])
    assert list(m.theta.index) == ["stusps.(Intercept)"]  # lme4's getME(m, "theta") name
    assert theta**2 * m.sigma**2 == pytest.approx(var_state, rel=1e-12)
    assert theta == pytest.approx(np.sqrt(var_state / var_resid), rel=1e-12)
    # lecture B's printed values
    assert (round(var_state, 3), round(var_resid, 3)) == (5.942, 14.196)
    assert round(theta, 4) == 0.6469


def test_conditional_modes_are_precision_weighted_mean_residuals(arrests, m) -> None:
    var_state, var_resid = variances(m)
    beta0, beta1 = m.fixef
    g = arrests.groupby("stusps")
    n = g.size()
    r_bar = g["violent_arrest_per1000"].mean() - beta0 - beta1 * g["pop_pct_pov"].mean()
    w = n * var_state / (n * var_state + var_resid)
    by_hand = w * r_bar
    ranef = m.ranef["(Intercept)"]
    assert list(ranef.index) == list(by_hand.index)
    np.testing.assert_allclose(by_hand.to_numpy(), ranef.to_numpy(), rtol=0, atol=1e-10)
    # the chapter's DC numbers: weight below one half, mode less than half the mean residual
    assert round(float(w["DC"]), 3) == 0.456
    assert 0 < ranef["DC"] < 0.5 * r_bar["DC"]


def test_conditional_sd_closed_form(arrests, m) -> None:
    var_state, var_resid = variances(m)
    n = arrests.groupby("stusps").size()
    cond_sd = np.sqrt(1 / (n / var_resid + 1 / var_state))
    np.testing.assert_allclose(cond_sd.to_numpy(), m.se_ranef["(Intercept)"].to_numpy(), rtol=1e-10)


def test_shrinkage_table_factor_is_the_weight(arrests, m) -> None:
    fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", arrests)
    table = mh.shrinkage_table(fe, m)
    theta = float(m.theta.iloc[0])
    n = arrests.groupby("stusps").size().reindex(table.index)
    np.testing.assert_allclose(table["shrinkage_factor"].to_numpy(),
                               (n * theta**2 / (n * theta**2 + 1)).to_numpy(), rtol=1e-10)
    assert table["shrinkage_factor"].idxmin() == "DC" and table["shrinkage_factor"].idxmax() == "TX"


def test_sigma_from_penalised_residual_sum_of_squares(arrests, m) -> None:
    y, X, _ = dense_design(arrests)
    Z = pd.get_dummies(arrests["stusps"], dtype=float)
    b = m.ranef["(Intercept)"].reindex(Z.columns).to_numpy()
    resid = y - X @ m.fixef.to_numpy() - Z.to_numpy() @ b
    r2 = resid @ resid + b @ b / float(m.theta.iloc[0]) ** 2
    assert np.sqrt(r2 / (len(y) - 2)) == pytest.approx(m.sigma, rel=1e-10)


def test_dense_gls_equals_fixef_and_vcov(sub, m5) -> None:
    y, X, Z = dense_design(sub)
    theta, sigma = float(m5.theta.iloc[0]), m5.sigma
    V = sigma**2 * (np.eye(len(y)) + theta**2 * Z @ Z.T)
    XtVinv = np.linalg.solve(V, X).T
    beta = np.linalg.solve(XtVinv @ X, XtVinv @ y)
    np.testing.assert_allclose(beta, m5.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.linalg.inv(XtVinv @ X), m5.vcov.to_numpy(), rtol=1e-9)
    assert not m5.is_singular and 0.5 < theta < 1.0  # the chapter's subset is a regular fit


def test_dense_profiled_criterion_equals_fit(sub, m5, m5_ml) -> None:
    y, X, Z = dense_design(sub)
    n, p = X.shape
    _, r2, crit, _ = dense_profiled(float(m5.theta.iloc[0]), y, X, Z, reml=True)
    assert crit == pytest.approx(m5.reml_criterion, abs=1e-8)
    assert np.sqrt(r2 / (n - p)) == pytest.approx(m5.sigma, rel=1e-10)
    _, r2, crit, _ = dense_profiled(float(m5_ml.theta.iloc[0]), y, X, Z, reml=False)
    assert crit == pytest.approx(m5_ml.deviance, abs=1e-8)
    assert np.sqrt(r2 / n) == pytest.approx(m5_ml.sigma, rel=1e-10)


@pytest.mark.parametrize("reml", [True, False])
def test_criterion_curve_minimum_is_the_fitted_theta(arrests, reml) -> None:
    model = mh.lmer(FORMULA, arrests, REML=reml)
    theta_hat = float(model.sol.theta[0])
    step = 1e-4
    grid = theta_hat + step * np.arange(-500, 501)
    values = np.array([model.criterion(t) for t in grid])
    at_hat = model.criterion(theta_hat)
    assert at_hat == pytest.approx(model.opt.fun, abs=1e-9)
    assert abs(grid[np.argmin(values)] - theta_hat) <= step
    assert values.min() >= at_hat - 1e-9
    assert values[0] > at_hat + 0.1 and values[-1] > at_hat + 0.1  # a real minimum, not a plateau


def test_own_group_sum_fit_reproduces_lmer(arrests, m) -> None:
    """Exercise 4: a random-intercept REML fit from group sums and a scalar search."""
    y, X, _ = dense_design(arrests)
    n, p = X.shape
    groups = arrests["stusps"].to_numpy()
    S = pd.DataFrame(X).groupby(groups).sum().to_numpy()
    t = pd.Series(y).groupby(groups).sum().to_numpy()
    counts = pd.Series(groups).value_counts().sort_index().to_numpy()

    def fit_at(theta):
        c = theta**2 / (1 + counts * theta**2)
        XtVX = X.T @ X - (S * c[:, None]).T @ S
        XtVy = X.T @ y - (S * c[:, None]).T @ t
        beta = np.linalg.solve(XtVX, XtVy)
        r2 = y @ y - c @ t**2 - beta @ XtVy
        crit = (np.log(1 + counts * theta**2).sum() + np.linalg.slogdet(XtVX)[1]
                + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p))))
        return crit, beta, np.sqrt(r2 / (n - p))

    best = minimize_scalar(lambda th: fit_at(th)[0], bounds=(0, 5), method="bounded", options={"xatol": 1e-10})
    crit, beta, sigma = fit_at(best.x)
    assert best.x == pytest.approx(float(m.theta.iloc[0]), abs=1e-6)
    assert crit == pytest.approx(m.reml_criterion, abs=1e-8)
    np.testing.assert_allclose(beta, m.fixef.to_numpy(), rtol=1e-6)
    assert sigma == pytest.approx(m.sigma, rel=1e-6)


def test_reml_variances_exceed_ml(m, m_ml, m5, m5_ml) -> None:
    for reml_fit, ml_fit in ((m, m_ml), (m5, m5_ml)):
        reml_state, reml_resid = variances(reml_fit)
        ml_state, ml_resid = variances(ml_fit)
        assert reml_state > ml_state and reml_resid > ml_resid
    # the ratio of the state variances is larger with 5 states than with 51 (chapter exercise 5)
    ratio_51 = variances(m)[0] / variances(m_ml)[0]
    ratio_5 = variances(m5)[0] / variances(m5_ml)[0]
    assert 1.0 < ratio_51 < 1.05 and 1.2 < ratio_5 < 1.35


def test_statsmodels_full_hessian_versus_conditional_vcov(arrests, m) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the chapter shows this fit without warnings
        fit = smf.mixedlm("violent_arrest_per1000 ~ pop_pct_pov", arrests, groups=arrests["stusps"]).fit(reml=True)
    hessian = fit.model.hessian(fit.params_object)[0]
    conditional = np.sqrt(np.diag(np.linalg.inv(-hessian[:2, :2])))
    full = fit.bse_fe.to_numpy()
    np.testing.assert_allclose(conditional, m.se_fixef.to_numpy(), rtol=2e-5)
    assert np.all(full > conditional)
    assert np.all(full / m.se_fixef.to_numpy() - 1 < 1e-3)  # "far too small to matter"


# ------------------------------------------------------------------- notebook structure


@pytest.fixture(scope="module")
def notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_glue_keys_used_in_markdown_are_defined(notebook) -> None:
    defined = set()
    for c in notebook.cells:
        if c.cell_type == "code":
            defined |= set(re.findall(r"""\bglue\(\s*["']([^"']+)["']""", c.source))
    used = set()
    for c in notebook.cells:
        if c.cell_type == "markdown":
            used |= set(re.findall(r"\{glue(?::\w+)?\}`([^`:]+)", c.source))
    assert used, "no glue references found"
    assert not used - defined, f"glue keys used but never defined: {sorted(used - defined)}"
    assert not defined - used, f"glue keys defined but never used: {sorted(defined - used)}"
    # myst-nb formats {glue:text}`key:.3f` from the stored text/plain repr: it must be a plain
    # number or string, not a NumPy repr such as "np.float64(1.5)"
    for c in notebook.cells:
        for o in c.get("outputs", []):
            text = o.get("data", {}).get("application/papermill.record/text/plain", "")
            assert not text.startswith("np."), f"glue stores a NumPy scalar: {text}"


def test_execution_counts_and_figures(notebook) -> None:
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    figures = [c for c in code if any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert len(figures) >= 3
    for c in figures:
        fig = c.metadata["mystnb"]["figure"]
        assert fig["name"].startswith("fig-lmer-") and fig["caption"]
        assert c.metadata["mystnb"]["image"]["alt"]
    for c in code:
        assert not any(o.output_type == "stream" and o.name == "stderr" for o in c.outputs), c.source
        assert not any(o.output_type == "error" for o in c.outputs), c.source


def test_exercises_have_gated_solutions(notebook) -> None:
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    labels = re.findall(r":label: (lmer-ex-\d+)", text)
    starts = re.findall(r"\{solution-start\} (lmer-ex-\d+)", text)
    assert 4 <= len(labels) <= 6 and labels == starts
    assert text.count("{solution-end}") == len(labels)
    assert sum(1 for line in text.splitlines() if line.startswith("# ")) == 1  # one H1


# --------------------------------------------------------------------- coming_from_r.md


def list_table(name: str) -> list[list[str]]:
    """Rows of the MyST list-table with ``:name: name`` (header row included)."""
    text = COMING_FROM_R.read_text(encoding="utf-8")
    start = text.index(f":name: {name}")
    body = text[start:text.index("\n:::", start)]
    rows = []
    for line in body.splitlines()[1:]:
        if line.startswith("* - "):
            rows.append([line[4:].strip()])
        elif line.startswith("  - "):
            rows[-1].append(line[4:].strip())
        elif line.strip():
            raise AssertionError(f"unexpected line in list-table {name}: {line!r}")
    assert all(len(r) == 3 for r in rows), rows
    return rows


R_CALLS = [  # every R call the course uses; each must have a row
    "lmer(", "lm(", "factor(", "summary(", "coef(", "fixef(", "ranef(", "VarCorr(", "se.fixef(",
    "se.ranef(", "BIC(", "AIC(", "anova(", "broom::tidy(", "broom::glance(", "re.form = NA",
    "allow.new.levels = TRUE", "isSingular(", "performance::icc(", 'method = "Wald"',
    "predictInterval(", "sigma(", "logLik(", "nobs(", "ngrps(", 'getME(m, "theta")',
    "read_csv(",
]


def test_table_covers_every_r_call() -> None:
    r_column = " ".join(row[0] for row in list_table("table-r-to-python")[1:])
    missing = [call for call in R_CALLS if call not in r_column]
    assert not missing, f"R calls without a row: {missing}"
    # package-qualified calls name their package (broom::, arm::, performance::, or in words)
    rows = {row[0] for row in list_table("table-r-to-python")[1:]}
    for call, package in [("predictInterval(", "merTools"), ("icc(", "performance"),
                          ("se.fixef(", "arm"), ("tidy(", "broom"), ("glance(", "broom")]:
        assert any(call in r and package in r for r in rows), (call, package)


def test_table_python_names_exist(arrests, m) -> None:
    fit = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)
    owners = {"mh": mh, "m": m, "fit": fit, "pd": pd}
    checked = 0
    for row in list_table("table-r-to-python")[1:]:
        for span in re.findall(r"`([^`]+)`", row[1]):
            for owner, name in re.findall(r"\b(mh|m|fit|pd)\.([A-Za-z_]\w*)", span):
                obj = owners[owner]
                if owner == "mh":
                    assert name in mh.__all__, f"mh.{name} is not in mlmhelpers.__all__"
                # dir() lists properties without evaluating them (m.deviance raises on a REML fit)
                assert name in dir(obj), f"{owner}.{name} does not exist"
                checked += 1
            for owner, name, args in re.findall(r"\b(mh|m|fit|pd)\.([A-Za-z_]\w*)\(([^()]*)\)", span):
                keywords = re.findall(r"\b([A-Za-z_]\w*)=", args)
                if not keywords:
                    continue
                params = inspect.signature(getattr(owners[owner], name)).parameters
                if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                    continue
                for kw in keywords:
                    assert kw in params, f"{owner}.{name}() has no argument {kw!r}"
    assert checked >= 40


def test_table_notes_hold(arrests) -> None:
    """Behaviour the notes column promises."""
    two = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps) + (1 | year)", arrests)
    assert list(mh.ngrps(two).index) == ["stusps", "year"]
    with pytest.raises(TypeError, match="REML must be True or False"):
        mh.lmer(FORMULA, arrests, REML="no")
    holes = arrests.copy()
    holes.loc[holes.index[:5], "pop_pct_pov"] = np.nan
    with pytest.warns(UserWarning, match="Dropped 5 of"):
        mh.lmer(FORMULA, holes)
    a = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", arrests)
    b = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + C(stusps)", arrests)
    np.testing.assert_allclose(a.coef.to_numpy(), b.coef.to_numpy())
    assert "factor(stusps)AL" in a.coef.index
    m = mh.lmer(FORMULA, arrests)
    new = arrests.head(2).assign(stusps=["XX", "TX"])
    with pytest.raises(ValueError):
        m.predict(new)
    pred = m.predict(new, allow_new_levels=True)
    population = m.predict(new, re_form="~0")
    assert pred.iloc[0] == pytest.approx(population.iloc[0])
    assert pred.iloc[1] == pytest.approx(population.iloc[1] + m.ranef.loc["TX", "(Intercept)"])
    assert m.reml_criterion == pytest.approx(m.opt.fun)
    with pytest.raises(ValueError, match="reml_criterion"):
        m.deviance  # noqa: B018 - defined for ML fits only
    m_ml = mh.lmer(FORMULA, arrests, REML=False)
    assert m_ml.deviance == pytest.approx(-2 * m_ml.loglik)


def test_agreement_table_numbers(arrests, m) -> None:
    complete = mh.tidy(mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)).set_index("term")
    fe = mh.lm("violent_arrest_per1000 ~ pop_pct_pov + factor(stusps)", arrests)
    pooled = mh.lm("violent_arrest_per1000 ~ pop_pct_pov", arrests)
    var_state, var_resid = variances(m)
    fx, se = m.fixef, m.se_fixef
    v = m.vcov.to_numpy()
    scaled = m.residuals(scaled=True)

    def g3(x):
        return f"{x:.3g}"

    expected = {
        "complete pooling: intercept, std. error (`tidy`)":
            f"{g3(complete.loc['(Intercept)', 'estimate'])}, {g3(complete.loc['(Intercept)', 'std_error'])}",
        "complete pooling: slope, std. error (`tidy`)":
            f"{g3(complete.loc['pop_pct_pov', 'estimate'])}, {g3(complete.loc['pop_pct_pov', 'std_error'])}",
        "BIC: complete pooling, state fixed effects": f"{pooled.bic:.2f}, {fe.bic:.2f}",
        "REML criterion at convergence": f"{m.reml_criterion:.1f}",
        "state variance, standard deviation": f"{var_state:.3f}, {np.sqrt(var_state):.3f}",
        "residual variance, standard deviation": f"{var_resid:.3f}, {np.sqrt(var_resid):.3f}",
        "`(Intercept)`: estimate, std. error, t value":
            f"{fx.iloc[0]:.5f}, {se.iloc[0]:.5f}, {fx.iloc[0] / se.iloc[0]:.3f}",
        "`pop_pct_pov`: estimate, std. error, t value":
            f"{fx.iloc[1]:.5f}, {se.iloc[1]:.5f}, {fx.iloc[1] / se.iloc[1]:.3f}",
        "correlation of the fixed effects": f"{v[0, 1] / np.sqrt(v[0, 0] * v[1, 1]):.3f}",
        "scaled residuals: minimum, maximum": f"{scaled.min():.4f}, {scaled.max():.4f}",
        "intraclass correlation": f"{mh.icc(m):.3f}",
    }
    rows = list_table("table-r-agreement")[1:]
    assert [r[0] for r in rows] == list(expected)
    for quantity, r_value, py_value in rows:
        assert py_value == expected[quantity], quantity
        if quantity == "intraclass correlation":  # the lecture divided standard deviations
            sd_a, sd = np.sqrt(var_state), m.sigma
            assert r_value == f"{sd_a / (sd_a + sd):.2f}"
        else:
            assert r_value == py_value, quantity


def test_python_code_blocks_run(arrests) -> None:
    text = COMING_FROM_R.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        for block in blocks:
            exec(compile(block, str(COMING_FROM_R), "exec"), namespace)
    assert "REML criterion at convergence: 23701.8" in out.getvalue()
    assert namespace["m"].nobs == len(arrests)
