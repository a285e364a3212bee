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
