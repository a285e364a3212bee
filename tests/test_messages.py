"""The package's warnings: named classes users can filter, reported at the user's own line."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mh
from mlmhelpers.messages import MixedModelWarning

HERE = __file__


def _data(n_groups=8, per=6, seed=3, sd_group=1.0):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{k}" for k in range(n_groups)], per)
    x = rng.normal(size=len(g))
    y = 1 + 0.5 * x + rng.normal(scale=sd_group, size=n_groups)[np.repeat(np.arange(n_groups), per)] \
        + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return caught


def test_every_warning_class_is_a_user_warning():
    for name in ["ConvergenceWarning", "SingularFitWarning", "RowsDroppedWarning", "RankDeficiencyWarning",
                 "SeparationWarning", "NonIntegerResponseWarning"]:
        cls = getattr(mh, name)
        assert issubclass(cls, MixedModelWarning) and issubclass(cls, UserWarning)
        assert name in mh.__all__


@pytest.mark.parametrize("fit", ["lmer", "lm"])
def test_rows_dropped_is_named_and_points_at_the_caller(fit):
    d = _data()
    d.loc[[0, 5], "x"] = np.nan
    formula = "y ~ x + (1 | g)" if fit == "lmer" else "y ~ x"
    caught = _caught(lambda: getattr(mh, fit)(formula, d))
    dropped = [w for w in caught if issubclass(w.category, mh.RowsDroppedWarning)]
    assert len(dropped) == 1 and "Dropped 2 of 48 rows" in str(dropped[0].message)
    assert dropped[0].filename == HERE  # the user's line, not a line of mlmhelpers


def test_rank_deficiency_is_named_and_points_at_the_caller():
    d = _data().assign(x2=lambda t: 2 * t["x"])
    caught = _caught(lambda: mh.lmer("y ~ x + x2 + (1 | g)", d))
    rank = [w for w in caught if issubclass(w.category, mh.RankDeficiencyWarning)]
    assert len(rank) == 1 and "x2" in str(rank[0].message)
    assert rank[0].filename == HERE


def test_singular_fit_warning_points_at_the_caller_and_can_be_filtered():
    d = _data(sd_group=0.0, seed=1)  # no group variance: both fits singular
    caught = _caught(lambda: mh.lmer("y ~ x + (1 | g)", d))
    sing = [w for w in caught if issubclass(w.category, mh.SingularFitWarning)]
    assert len(sing) == 1 and sing[0].filename == HERE
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", mh.SingularFitWarning)
        mh.lmer("y ~ x + (1 | g)", d)  # no other warning


def test_glmer_non_integer_counts_warning_is_named():
    d = _data()
    d["n"] = np.abs(np.round(d["y"] * 2)) + 0.5
    caught = _caught(lambda: mh.glmer("n ~ x + (1 | g)", d, family="poisson"))
    nonint = [w for w in caught if issubclass(w.category, mh.NonIntegerResponseWarning)]
    assert len(nonint) == 1 and nonint[0].filename == HERE


def test_anova_reports_a_refit_problem_once_naming_the_model():
    """anova() refits REML fits by ML; a singular refit is reported, not silenced."""
    d = _data(sd_group=0.0, seed=1)  # no group variance: both fits singular
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mh.SingularFitWarning)
        small = mh.lmer("y ~ 1 + (1 | g)", d)
        big = mh.lmer("y ~ x + (1 | g)", d)
    caught = _caught(lambda: mh.anova(small=small, big=big))
    sing = [w for w in caught if issubclass(w.category, mh.SingularFitWarning)]
    assert sorted(str(w.message).split(":")[0] for w in sing) == [
        "refitting 'big' by maximum likelihood", "refitting 'small' by maximum likelihood"]
    assert all(w.filename == HERE for w in sing)


def test_anova_of_regular_fits_is_silent():
    d = _data()
    m0 = mh.lmer("y ~ 1 + (1 | g)", d)
    m1 = mh.lmer("y ~ x + (1 | g)", d)
    assert not [w for w in _caught(lambda: mh.anova(m0, m1)) if issubclass(w.category, MixedModelWarning)]
