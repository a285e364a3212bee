"""Every Examples section in mlmhelpers' docstrings runs and prints what it shows."""

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import mlmhelpers

matplotlib.use("Agg")

ALL_MODULES = sorted(m.name for m in pkgutil.iter_modules(mlmhelpers.__path__, "mlmhelpers."))
# Run by tests/test_plots.py::test_docstring_examples_run (same empty globals, stricter
# whitespace), not twice.
ELSEWHERE = {"mlmhelpers.plots"}
MODULES = [name for name in ALL_MODULES if name not in ELSEWHERE]


def test_every_module_is_run_somewhere():
    assert ELSEWHERE <= set(ALL_MODULES) and len(MODULES) == len(ALL_MODULES) - len(ELSEWHERE)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_api_is_documented():
    for name in mlmhelpers.__all__:
        obj = getattr(mlmhelpers, name)
        assert obj.__doc__ and obj.__doc__.strip(), f"mlmhelpers.{name} has no docstring"
