"""Data loading and the faculty simulation."""

import hashlib

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mh
from mlmhelpers.datasets import ARRESTS_SHA256, FACULTY_DEPARTMENTS, data_dir


def test_arrests_file_is_the_documented_one():
    digest = hashlib.sha256((data_dir() / "violent_arrest_data.csv").read_bytes()).hexdigest()
    assert digest == ARRESTS_SHA256


def test_load_arrests_shape_and_groups():
    d = mh.load_arrests()
    assert d.shape == (4286, 6)
    assert d.stusps.nunique() == 51 and d.stusps.value_counts().min() == 2
    assert not d.isna().any().any()


def test_load_arrests_validates_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"year": [2011], "stusps": ["AL"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="lacks the column"):
        mh.load_arrests(bad)


def test_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MLM_DATA_DIR", str(tmp_path))
    (tmp_path / "violent_arrest_data.csv").write_text("x\n")
    assert data_dir() == tmp_path


def test_faculty_csv_regenerates_byte_for_byte():
    text = (data_dir() / "faculty_salaries.csv").read_text()
    assert mh.simulate_faculty().to_csv(index=False) == text


def test_simulation_follows_the_lecture_design():
    df = mh.simulate_faculty(seed=5)
    names = list(FACULTY_DEPARTMENTS)
    assert list(df.department.iloc[:5]) == names  # departments cycle row by row
    assert (df.department.value_counts() == 20).all()
    assert df.experience.between(0, 9).all() and df.experience.dtype.kind == "i"
    for dep, (base, raise_) in FACULTY_DEPARTMENTS.items():
        sub = df[df.department == dep]
        assert sub.base.between(base * 0.9, base * 1.1).all()
        assert sub.raise_.between(raise_ * 0.9, raise_ * 1.1).all()
    np.testing.assert_allclose(df.salary, (df.base + df.experience * df.raise_).round(2), rtol=0, atol=1e-9)


def test_simulation_is_seeded_and_overridable():
    pd.testing.assert_frame_equal(mh.simulate_faculty(seed=1), mh.simulate_faculty(seed=1))
    assert not mh.simulate_faculty(seed=1).equals(mh.simulate_faculty(seed=2))
    df = mh.simulate_faculty(n_per_department=3, departments={"a": (1.0, 0.0), "b": (2.0, 0.0)}, noise=0.0)
    assert len(df) == 6 and set(df.salary) == {1.0, 2.0}
    with pytest.raises(ValueError, match="noise"):
        mh.simulate_faculty(noise=1.5)


def test_clinics_simulation_is_seeded_and_follows_its_design():
    a, b = mh.simulate_clinics(), mh.simulate_clinics()
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(mh.simulate_clinics(seed=1))
    assert list(a.columns) == ["clinic", "treated", "severity", "recovered", "clinic_effect"]
    sizes = a.groupby("clinic").size()
    assert len(sizes) == 100 and sizes.between(2, 12).all()
    assert set(a["treated"]) == {0, 1} and set(a["recovered"]) == {0, 1}
    assert (a.groupby("clinic")["clinic_effect"].nunique() == 1).all()
    pairs = mh.simulate_clinics(n_clinics=5, min_patients=2, max_patients=2, seed=3)
    assert len(pairs) == 10 and list(pairs["clinic"].unique()) == ["C01", "C02", "C03", "C04", "C05"]


def test_clinics_simulation_recovers_its_parameters_on_average():
    """With many patients the simulated outcomes follow the stated logistic model: the
    treatment log odds ratio of a plain logistic fit within clinics of zero effect is near 1."""
    import statsmodels.api as sm

    df = mh.simulate_clinics(n_clinics=400, min_patients=50, max_patients=50, sd_clinic=0.0, seed=11)
    X = sm.add_constant(df[["treated", "severity"]].astype(float))
    fit = sm.Logit(df["recovered"], X).fit(disp=0)
    np.testing.assert_allclose(fit.params.to_numpy(), [-0.5, 1.0, -0.8], atol=0.08)


def test_clinics_simulation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_clinics"):
        mh.simulate_clinics(n_clinics=1)
    with pytest.raises(ValueError, match="min_patients"):
        mh.simulate_clinics(min_patients=5, max_patients=3)
    with pytest.raises(ValueError, match="sd_clinic"):
        mh.simulate_clinics(sd_clinic=-1.0)


def test_simulate_ratings_is_fully_crossed_and_seeded():
    r = mh.simulate_ratings()
    assert list(r.columns) == ["essay", "rater", "score"] and r.shape == (320, 3)
    counts = pd.crosstab(r.essay, r.rater)
    assert counts.shape == (40, 8) and (counts.to_numpy() == 1).all()  # every rater, every essay, once
    pd.testing.assert_frame_equal(r, mh.simulate_ratings())
    assert not r.equals(mh.simulate_ratings(seed=1))
    assert (r.score.round(1) == r.score).all()


def test_simulate_ratings_follows_its_documented_model():
    # No rater or essay effects: every score is mean + noise.
    r = mh.simulate_ratings(n_raters=50, n_essays=200, sd_rater=0, sd_essay=0, sd_resid=2.0, mean=10.0, seed=3)
    assert r.score.mean() == pytest.approx(10.0, abs=0.05)
    assert r.score.std() == pytest.approx(2.0, rel=0.03)
    # No noise and no essay effects: a rater's scores are all the same, raters differ.
    r = mh.simulate_ratings(n_raters=5, n_essays=4, sd_essay=0, sd_resid=0, seed=4)
    assert (r.groupby("rater").score.nunique() == 1).all() and r.score.nunique() == 5
    with pytest.raises(ValueError, match="at least 2 raters"):
        mh.simulate_ratings(n_raters=1)
    with pytest.raises(ValueError, match="non-negative"):
        mh.simulate_ratings(sd_rater=-1)
