"""R-compatible number formatting used by summary()."""

import pytest

from mlmhelpers.rprint import abbreviate, r_format


@pytest.mark.parametrize("values,digits,expected", [
    ([1.86112, 0.38769, 0.13340, 0.01029], 4, ["1.86112", "0.38769", "0.13340", "0.01029"]),
    ([5.94163, 14.19608], 4, ["5.942", "14.196"]),
    ([2.437546, 3.767769], 4, ["2.438", "3.768"]),
    ([4.801, 12.968], 4, ["4.801", "12.968"]),
    ([-2.89991, -0.49081, -0.17511, 0.25221, 15.77791], 4, ["-2.8999", "-0.4908", "-0.1751", "0.2522", "15.7779"]),
    ([1.5, 2.0], 4, ["1.5", "2.0"]),
    ([100.0, 2000.0], 4, ["100", "2000"]),
])
def test_r_format(values, digits, expected):
    assert r_format(values, digits) == expected


@pytest.mark.parametrize("name,expected", [
    ("(Intercept)", "(Intr)"),
    ("x", "x"),
    ("experience", "exprnc"),
])
def test_abbreviate(name, expected):
    assert abbreviate(name, 6) == expected
