"""Formula parsing: random terms, R column names, malformed formulas."""

import numpy as np
import pandas as pd
import pytest

from mlmhelpers.formula import RandomTerm, build_design, parse_formula, r_column_name


@pytest.mark.parametrize("formula,fixed,terms", [
    ("y ~ x + (1 | g)", "x", [RandomTerm("1", "g", True)]),
    ("y ~ x + (0 + x | g)", "x", [RandomTerm("0 + x", "g", True)]),
    ("y ~ x + (1 + x | g)", "x", [RandomTerm("1 + x", "g", True)]),
    ("y ~ x + (x | g)", "x", [RandomTerm("x", "g", True)]),
    ("y ~ x + (x || g)", "x", [RandomTerm("x", "g", False)]),
    ("y ~ (1|g) + x + (0 + x|g)", "x", [RandomTerm("1", "g", True), RandomTerm("0 + x", "g", True)]),
    ("y ~ 1 + (1 | g)", "1", [RandomTerm("1", "g", True)]),
    ("y ~ (1 | g)", "1", [RandomTerm("1", "g", True)]),
    ("log(y) ~ factor(a) * x + I(x ** 2) + (1 | g)", "factor(a) * x + I(x ** 2)", [RandomTerm("1", "g", True)]),
])
def test_parse(formula, fixed, terms):
    p = parse_formula(formula)
    assert p.fixed == fixed
    assert list(p.random) == terms


def test_parse_response_and_str():
    p = parse_formula("salary ~ experience + (1 + experience | department)")
    assert p.response == "salary"
    assert str(p.random[0]) == "(1 + experience | department)"
    assert str(parse_formula("y ~ (x || g)").random[0]) == "(x || g)"


@pytest.mark.parametrize("formula,match", [
    ("y x + (1 | g)", "exactly one '~'"),
    ("y ~ x ~ z", "exactly one '~'"),
    (" ~ x", "no response"),
    ("y ~ ", "nothing right"),
    ("y ~ x + (1 | g", "unbalanced"),
    ("y ~ x + 1 | g)", "unbalanced"),
    ("y ~ x + 1 | g", "parentheses"),
    ("y ~ x + ( | g)", "nothing left of the bar"),
    ("y ~ x + (1 | a+b)", "column names joined by ':'"),
    ("y ~ x + (1 | log(a))", "column names joined by ':'"),
    ("y ~ x + (1 | g | h)", "exactly one bar"),
    ("y ~ x + + z", "empty term"),
])
def test_malformed(formula, match):
    with pytest.raises(ValueError, match=match):
        parse_formula(formula)


def test_formula_must_be_a_string():
    with pytest.raises(TypeError, match="string"):
        parse_formula(None)


@pytest.mark.parametrize("raw,expected", [
    ("Intercept", "(Intercept)"),
    ("x", "x"),
    ("C(stusps)[T.AL]", "factor(stusps)AL"),
    ("stusps[T.AL]", "stuspsAL"),
    ("x:C(g)[T.b]", "x:factor(g)b"),
    ("C(year)[2011]", "factor(year)2011"),
])
def test_r_column_names(raw, expected):
    assert r_column_name(raw) == expected


def test_design_blocks_for_uncorrelated_terms():
    df = pd.DataFrame({"y": np.arange(7.0), "x": [0.5, 1, 2, 3, 1, 2, 5], "g": list("aabbccc")})
    d = build_design(parse_formula("y ~ x + (x || g)"), df, require_random=True)
    assert d.z_names == ["(Intercept)", "x"]
    assert d.z_blocks == [(0, 1, False), (1, 2, False)]
    d2 = build_design(parse_formula("y ~ x + (x | g)"), df, require_random=True)
    assert d2.z_blocks == [(0, 2, True)]
    assert list(d2.levels) == ["a", "b", "c"] and d2.levels.name == "g"


def test_same_column_in_two_terms_is_an_error():
    df = pd.DataFrame({"y": np.arange(9.0), "x": [0.5, 1, 2, 3, 1, 2, 4, 1, 0], "g": list("aaabbbccc")})
    with pytest.raises(ValueError, match="more than one term"):
        build_design(parse_formula("y ~ x + (1 | g) + (1 + x | g)"), df, require_random=True)


@pytest.mark.parametrize("group,factors", [
    ("g", [("g", ("g",))]),
    ("a:b", [("a:b", ("a", "b"))]),
    ("a/b", [("a", ("a",)), ("b:a", ("b", "a"))]),
    ("a/b/c", [("a", ("a",)), ("b:a", ("b", "a")), ("c:(b:a)", ("c", "b", "a"))]),
    ("`my group`", [("my group", ("my group",))]),
    ('Q("my group")', [("my group", ("my group",))]),
    ("`a b`/`c d`", [("a b", ("a b",)), ("c d:a b", ("c d", "a b"))]),
])
def test_grouping_factor_expansion_as_lme4(group, factors):
    assert RandomTerm("1", group).factors() == factors


def _groups_frame():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "small": rng.integers(0, 3, n), "big": rng.integers(0, 12, n),
                         "mid": rng.integers(0, 6, n), "my group": rng.integers(0, 4, n)})


def test_terms_ordered_by_decreasing_levels_as_lme4():
    d = build_design(parse_formula("y ~ x + (1 | small) + (1 | big) + (1 | mid)"), _groups_frame(), require_random=True)
    assert [t.name for t in d.terms] == ["big", "mid", "small"]
    # already non-increasing: kept as written (lme4 reorders only if some later term has more levels)
    d2 = build_design(parse_formula("y ~ x + (1 | big) + (1 | small)"), _groups_frame(), require_random=True)
    assert [t.name for t in d2.terms] == ["big", "small"]


def test_terms_of_one_factor_are_merged_into_blocks():
    d = build_design(parse_formula("y ~ x + (1 | big) + (0 + x | big) + (1 | small)"), _groups_frame(),
                     require_random=True)
    big = d.term("big")
    assert big.z_names == ["(Intercept)", "x"] and big.blocks == [(0, 1, True), (1, 2, True)]
    assert big.block_labels() == ["big", "big.1"]


def test_backticked_grouping_column():
    d = build_design(parse_formula("y ~ x + (1 | `my group`)"), _groups_frame(), require_random=True)
    assert d.terms[0].name == "my group" and d.terms[0].nlevels == 4


def test_interaction_levels_are_labelled_and_ordered_as_r():
    df = pd.DataFrame({"y": np.arange(8.0), "a": list("xxyyxxyy"), "b": ["2", "1", "1", "2", "2", "2", "1", "1"]})
    d = build_design(parse_formula("y ~ 1 + (1 | a:b)"), df, require_random=True)
    # R: factor(a:b) levels, first factor slowest, unused combinations dropped
    assert list(d.terms[0].levels) == ["x:1", "x:2", "y:1", "y:2"]


def test_factor_valued_slope_gets_every_level():
    df = _groups_frame().assign(f=lambda t: np.where(t.x > 0, "hi", "lo"))
    d = build_design(parse_formula("y ~ x + (0 + f | big)"), df, require_random=True)
    assert d.terms[0].z_names == ["fhi", "flo"]
# ------------------------------------------------------------ R's arithmetic inside calls
@pytest.mark.parametrize("dtype", [int, float])
def test_power_inside_I_is_a_power(dtype):
    """R reads I(x^2) as x squared; Python's ^ would be a bitwise XOR (3 ^ 2 == 1)."""
    data = pd.DataFrame({"y": [1.0, 2.5, 2.0, 4.0, 3.5, 6.0],
                         "x": np.array([1, 2, 3, 4, 5, 6], dtype=dtype),
                         "g": list("aabbcc")})
    d = build_design(parse_formula("y ~ x + I(x^2) + (1 | g)"), data, require_random=True)
    assert d.x_names == ["(Intercept)", "x", "I(x^2)"]
    np.testing.assert_array_equal(d.X[:, 2], np.array([1, 4, 9, 16, 25, 36], dtype=float))


def test_power_inside_other_calls_and_python_power_spelling():
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0], "x": [1.0, 2.0, 3.0, 4.0]})
    d = build_design(parse_formula("y ~ np.log(x^3) + I(2^x)"), data, require_random=False)
    np.testing.assert_allclose(d.X[:, 1], 3 * np.log(data["x"]))
    np.testing.assert_allclose(d.X[:, 2], 2.0 ** data["x"])
    d2 = build_design(parse_formula("y ~ I(x**2)"), data, require_random=False)
    assert d2.x_names == ["(Intercept)", "I(x^2)"]


def test_caret_outside_calls_is_formula_algebra():
    """(a + b)^2 is main effects plus interaction in R, not a power."""
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 5.0, 4.0], "a": [1.0, 2.0, 3.0, 4.0, 6.0],
                         "b": [2.0, 1.0, 0.0, 1.0, 3.0]})
    d = build_design(parse_formula("y ~ (a + b)^2"), data, require_random=False)
    assert d.x_names == ["(Intercept)", "a", "b", "a:b"]
    d1 = build_design(parse_formula("y ~ a^2"), data, require_random=False)
    assert d1.x_names == ["(Intercept)", "a"]


# ------------------------------------------------------- transformations undefined on some rows
@pytest.mark.parametrize("formula,where", [
    ("np.log(y) ~ x + (1 | g)", "response"),
    ("y ~ np.log(x) + (1 | g)", "fixed-effects design"),
])
def test_undefined_transformation_is_named_with_its_rows(formula, where):
    data = pd.DataFrame({"y": [1.0, -2.0, 3.0, 4.0, 0.5, 2.0], "x": [1.0, 2.0, -1.0, 4.0, 5.0, 6.0],
                         "g": list("aabbcc")})
    before = data.copy()
    with pytest.raises(ValueError, match=rf"In the {where}, np.log\(\w\) is not finite for 1 of 6 rows"):
        build_design(parse_formula(formula), data, require_random=True)
    pd.testing.assert_frame_equal(data, before)


def test_offset_in_a_linear_model_is_refused_by_name():
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "z": [1.0, 0.0, 2.0, 1.0], "g": list("aabb")})
    with pytest.raises(ValueError, match=r"offset\(\) in .*lmer\(\) and lm\(\) take no offset; glmer\(\) does"):
        build_design(parse_formula("y ~ 1 + offset(z) + (1 | g)"), data, require_random=True)
