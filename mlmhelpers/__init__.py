"""mlmhelpers: lme4-compatible linear mixed models, tidy tables and plots for the course."""

from .datasets import load_arrests, load_faculty, simulate_faculty
from .fit import ConvergenceWarning, SingularFitWarning, lmer
from .results import LmerResult

__all__ = [
    "lmer", "LmerResult", "ConvergenceWarning", "SingularFitWarning",
    "load_arrests", "load_faculty", "simulate_faculty",
]
__version__ = "0.1.0"
