"""The course's data sets: the county arrest data and the simulated faculty salaries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["data_dir", "load_arrests", "simulate_faculty", "load_faculty", "simulate_clinics", "simulate_ratings",
           "ARRESTS_SHA256"]

ARRESTS_SHA256 = "2dd7a7cf1d1eca517c97aba09aaefbbfebd27816e1a9de18a0de6d11689fadbe"
ARRESTS_COLUMNS = {
    "year": "integer",
    "stusps": "string",
    "fips": "integer",
    "pop_tot": "integer",
    "violent_arrest_per1000": "float",
    "pop_pct_pov": "float",
}

#: Department parameters of the faculty simulation: base salary and annual raise.
FACULTY_DEPARTMENTS = {
    "sociology": (40_000, 2_000),
    "biology": (50_000, 500),
    "english": (60_000, 500),
    "informatics": (70_000, 1_700),
    "statistics": (80_000, 500),
}
FACULTY_SEED = 2023


def data_dir() -> Path:
    """The course's ``data/`` folder.

    Looked up in this order: the ``MLM_DATA_DIR`` environment variable, the
    ``data/`` folder of the repository this package sits in (a checkout, an
    editable install, Binder, or a Colab clone), then ``./data`` and
    ``../data`` relative to the working directory.
    """
    candidates = []
    if os.environ.get("MLM_DATA_DIR"):
        candidates.append(Path(os.environ["MLM_DATA_DIR"]))
    candidates.append(Path(__file__).resolve().parent.parent / "data")
    candidates += [Path.cwd() / "data", Path.cwd().parent / "data"]
    for c in candidates:
        if (c / "violent_arrest_data.csv").is_file():
            return c
    raise FileNotFoundError(
        "Could not find the course's data/ folder (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "). Run from a checkout of the course repository or set MLM_DATA_DIR."
    )


def load_arrests(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """County violent-arrest rates and poverty, 2011 and 2016 (lecture B's data).

    Parameters
    ----------
    path : path-like, optional
        A CSV with the same columns; default ``data/violent_arrest_data.csv``.

    Returns
    -------
    DataFrame
        4,286 rows (county-years) with columns ``year``, ``stusps`` (state
        postal code, 50 states and DC), ``fips``, ``pop_tot``,
        ``violent_arrest_per1000`` and ``pop_pct_pov``.

    Notes
    -----
    Source: the public course repository ``intermediate_stats`` by Frank
    Edwards (School of Criminal Justice, Rutgers-Newark), file
    ``data/violent_arrest_data.csv``. R equivalent:
    ``readr::read_csv("data/violent_arrest_data.csv")``.

    Examples
    --------
    >>> from mlmhelpers import load_arrests
    >>> load_arrests().shape
    (4286, 6)
    """
    path = Path(path) if path is not None else data_dir() / "violent_arrest_data.csv"
    df = pd.read_csv(path, dtype={"stusps": str})
    missing = [c for c in ARRESTS_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; expected {list(ARRESTS_COLUMNS)}.")
    for col, kind in ARRESTS_COLUMNS.items():
        if kind in ("integer", "float") and not pd.api.types.is_numeric_dtype(df[col]):
            raise ValueError(f"Column {col!r} of {path} should be numeric, got {df[col].dtype}.")
    return df


def simulate_faculty(
    n_per_department: int = 20,
    departments: dict[str, tuple[float, float]] | None = None,
    noise: float = 0.1,
    max_experience: int = 10,
    seed: int | None = FACULTY_SEED,
) -> pd.DataFrame:
    """Simulate faculty salaries by department (lecture A's data-generating process).

    Each person gets a department (departments cycle row by row), years of
    experience ``floor(U(0, max_experience))``, and a base salary and
    annual raise equal to the department's values each multiplied by its own
    ``U(1 - noise, 1 + noise)`` factor. Salary is ``base + experience × raise``.

    Parameters
    ----------
    n_per_department : int, default 20
    departments : dict, optional
        ``{name: (base_salary, annual_raise)}``; default
        :data:`FACULTY_DEPARTMENTS` (sociology 40,000/2,000, biology
        50,000/500, english 60,000/500, informatics 70,000/1,700, statistics
        80,000/500).
    noise : float, default 0.1
        Half-width of the multiplicative uniform noise.
    max_experience : int, default 10
    seed : int or None, default 2023
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same
        data on every machine.

    Returns
    -------
    DataFrame
        Columns ``department``, ``experience``, ``base``, ``raise_``,
        ``salary``; ``base`` and ``raise_`` are each person's true values.

    Notes
    -----
    The lecture's R script sets no seed, so its printed coefficients cannot
    be reproduced exactly; the shape of the results can.

    Examples
    --------
    >>> from mlmhelpers import simulate_faculty
    >>> df = simulate_faculty()
    >>> df.shape, df.department.value_counts().tolist()
    ((100, 5), [20, 20, 20, 20, 20])
    """
    deps = dict(FACULTY_DEPARTMENTS if departments is None else departments)
    if not deps:
        raise ValueError("departments must name at least one department.")
    if n_per_department < 1:
        raise ValueError("n_per_department must be at least 1.")
    if not 0 <= noise < 1:
        raise ValueError("noise must be in [0, 1).")
    rng = np.random.default_rng(seed)
    names = list(deps)
    n = n_per_department * len(names)
    dept = np.array([names[i % len(names)] for i in range(n)])
    base0 = np.array([deps[d][0] for d in dept], dtype=float)
    raise0 = np.array([deps[d][1] for d in dept], dtype=float)
    experience = np.floor(rng.uniform(0, max_experience, n)).astype(int)
    # Amounts are in dollars and cents, so salary = base + experience * raise holds exactly.
    base = (base0 * rng.uniform(1 - noise, 1 + noise, n)).round(2)
    raise_ = (raise0 * rng.uniform(1 - noise, 1 + noise, n)).round(2)
    salary = (base + experience * raise_).round(2)
    return pd.DataFrame({"department": dept, "experience": experience, "base": base,
                         "raise_": raise_, "salary": salary})


def load_faculty(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The simulated faculty data shipped as ``data/faculty_salaries.csv``.

    It is exactly ``simulate_faculty()`` with the default seed, written with
    ``DataFrame.to_csv(index=False)``; a test regenerates it byte for byte.

    Examples
    --------
    >>> from mlmhelpers import load_faculty
    >>> load_faculty().columns.tolist()
    ['department', 'experience', 'base', 'raise_', 'salary']
    """
    path = Path(path) if path is not None else data_dir() / "faculty_salaries.csv"
    return pd.read_csv(path)


#: True parameters of :func:`simulate_clinics` (logit scale).
CLINICS_PARAMETERS = {"intercept": -0.5, "treatment": 1.0, "severity": -0.8, "sd_clinic": 1.5}
CLINICS_SEED = 2024


def simulate_clinics(
    n_clinics: int = 100,
    min_patients: int = 2,
    max_patients: int = 12,
    intercept: float = CLINICS_PARAMETERS["intercept"],
    treatment: float = CLINICS_PARAMETERS["treatment"],
    severity: float = CLINICS_PARAMETERS["severity"],
    sd_clinic: float = CLINICS_PARAMETERS["sd_clinic"],
    seed: int | None = CLINICS_SEED,
) -> pd.DataFrame:
    """Simulate a yes/no outcome of patients in clinics (a logistic random-intercept model).

    The data-generating process, in this order from one
    :func:`numpy.random.default_rng` stream:

    1. each clinic ``j`` gets a number of patients ``n_j`` uniform on
       ``min_patients, …, max_patients`` and a clinic effect
       ``u_j ~ N(0, sd_clinic²)``;
    2. each patient gets a treatment indicator (``0``/``1`` with
       probability one half) and a standardised severity score ``~ N(0, 1)``;
    3. the patient recovers (``recovered = 1``) with probability
       ``logit⁻¹(intercept + treatment·treated + severity·severity_score + u_j)``.

    Parameters
    ----------
    n_clinics : int, default 100
    min_patients, max_patients : int, default 2 and 12
        Range (inclusive) of the number of patients per clinic: small
        clinics are where the Laplace approximation and adaptive quadrature
        differ.
    intercept, treatment, severity : float
        Fixed effects on the logit scale; defaults −0.5, 1.0 and −0.8.
    sd_clinic : float, default 1.5
        Standard deviation of the clinic effects (logit scale).
    seed : int or None, default 2024
        Seed of :func:`numpy.random.default_rng`; the same seed gives the
        same data on every machine.

    Returns
    -------
    DataFrame
        One row per patient: ``clinic`` (labels ``"C001"``, ``"C002"``, …, zero-padded),
        ``treated`` (0/1), ``severity`` (float), ``recovered`` (0/1), and
        ``clinic_effect``, the true ``u_j`` (for checking estimates; not a
        model variable).

    Notes
    -----
    A simulation written for the course (chapter "Counts and yes/no
    outcomes"); no real patients. R equivalent of the model it follows:
    ``glmer(recovered ~ treated + severity + (1 | clinic), family = binomial)``.

    Examples
    --------
    >>> from mlmhelpers import simulate_clinics
    >>> df = simulate_clinics()
    >>> df.shape[1], df.clinic.nunique(), sorted(df.recovered.unique().tolist())
    (5, 100, [0, 1])
    """
    if n_clinics < 2:
        raise ValueError("n_clinics must be at least 2.")
    if not 1 <= min_patients <= max_patients:
        raise ValueError("need 1 <= min_patients <= max_patients.")
    if sd_clinic < 0:
        raise ValueError("sd_clinic must be non-negative.")
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_patients, max_patients + 1, n_clinics)
    effects = rng.normal(0.0, sd_clinic, n_clinics)
    width = len(str(n_clinics))
    labels = np.array([f"C{j + 1:0{max(width, 2)}d}" for j in range(n_clinics)])
    codes = np.repeat(np.arange(n_clinics), sizes)
    n = len(codes)
    treated = rng.integers(0, 2, n)
    sev = rng.normal(0.0, 1.0, n)
    eta = intercept + treatment * treated + severity * sev + effects[codes]
    recovered = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"clinic": labels[codes], "treated": treated, "severity": sev,
                         "recovered": recovered, "clinic_effect": effects[codes]})


RATINGS_SEED = 606


def simulate_ratings(
    n_raters: int = 8,
    n_essays: int = 40,
    mean: float = 65.0,
    sd_rater: float = 4.0,
    sd_essay: float = 8.0,
    sd_resid: float = 5.0,
    seed: int | None = RATINGS_SEED,
) -> pd.DataFrame:
    """Simulate a fully crossed rating design: every rater scores every essay once.

    Chapter 6's crossed example. Each rater ``r`` has a severity ``a_r ~
    N(0, sd_rater²)``, each essay ``e`` a quality ``b_e ~ N(0, sd_essay²)``,
    and each rating a noise term ``ε ~ N(0, sd_resid²)``, all independent, so

    ``score = mean + a_r + b_e + ε``,

    rounded to one decimal. Raters and essays are *crossed*: no essay belongs to
    one rater and no rater to one essay, so neither factor is nested in the
    other. With one rating per rater–essay pair a rater × essay interaction
    cannot be told apart from the noise.

    Parameters
    ----------
    n_raters, n_essays : int, default 8 and 40
        Numbers of raters and essays (each at least 2).
    mean : float, default 65.0
        Mean score on a 0–100 marking scale.
    sd_rater, sd_essay, sd_resid : float, default 4.0, 8.0 and 5.0
        Standard deviations of rater severity, essay quality and noise (each >= 0).
    seed : int or None, default 606
        Seed of :func:`numpy.random.default_rng`. The rater effects are drawn
        first, then the essay effects, then the noise (rows ordered by essay,
        then rater), so the same seed gives the same data on every machine.

    Returns
    -------
    DataFrame
        ``n_raters * n_essays`` rows with columns ``essay`` (``"E01"``, ...),
        ``rater`` (``"R1"``, ...) and ``score``.

    Notes
    -----
    R equivalent of the model fitted to these data:
    ``lmer(score ~ 1 + (1 | rater) + (1 | essay), ratings)``.

    Examples
    --------
    >>> from mlmhelpers import simulate_ratings
    >>> r = simulate_ratings()
    >>> r.shape, r.rater.nunique(), r.essay.nunique()
    ((320, 3), 8, 40)
    >>> int(r.groupby(["rater", "essay"]).size().max())
    1
    """
    if n_raters < 2 or n_essays < 2:
        raise ValueError("simulate_ratings needs at least 2 raters and 2 essays.")
    if min(sd_rater, sd_essay, sd_resid) < 0:
        raise ValueError("standard deviations must be non-negative.")
    rng = np.random.default_rng(seed)
    severity = rng.normal(0.0, sd_rater, n_raters)
    quality = rng.normal(0.0, sd_essay, n_essays)
    essay_idx = np.repeat(np.arange(n_essays), n_raters)
    rater_idx = np.tile(np.arange(n_raters), n_essays)
    noise = rng.normal(0.0, sd_resid, n_raters * n_essays)
    score = (mean + severity[rater_idx] + quality[essay_idx] + noise).round(1)
    ew, rw = len(str(n_essays)), len(str(n_raters))
    return pd.DataFrame({
        "essay": [f"E{i + 1:0{ew}d}" for i in essay_idx],
        "rater": [f"R{i + 1:0{rw}d}" for i in rater_idx],
        "score": score,
    })
