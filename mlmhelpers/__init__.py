"""mlmhelpers: lme4-compatible linear mixed models, tidy tables and plots.

The helper package of the course *Multilevel Models in Python*. Names follow
R so that lme4 users find what they know: ``lmer``, ``lm``, ``fixef``,
``ranef``, ``coef``, ``se_fixef``, ``se_ranef``, ``varcorr``, ``tidy``.

The course's figures live in :mod:`mlmhelpers.plots` (``from mlmhelpers import
plots``): every function takes ``ax=None`` and returns the Axes.
"""

from . import plots  # noqa: F401  (mlmhelpers.plots, the course figures)
from .book import glue
from .bootstrap import bootstrap, pb_test, simulate
from .datasets import load_arrests, load_faculty, simulate_clinics, simulate_faculty, simulate_ratings
from .family import Family, binomial, poisson
from .fit import lmer
from .glm_response import PIRLSError
from .glmer import glmer
from .glmer_result import GlmerResult
from .inference import (
                        check_overdispersion,
                        coef,
                        coef_intervals,
                        confint,
                        fixef,
                        group_intercepts,
                        icc,
                        is_singular,
                        ngrps,
                        predict_interval,
                        ranef,
                        se_coef,
                        se_fixef,
                        se_ranef,
                        sigma,
                        varcorr,
                        vcov,
)
from .lm import LmResult, lm
from .lmertest import contest
from .messages import (
                        ConvergenceWarning,
                        MixedModelWarning,
                        NonIntegerResponseWarning,
                        RankDeficiencyWarning,
                        RowsDroppedWarning,
                        SeparationWarning,
                        SingularFitWarning,
)
from .profile import profile
from .results import LmerResult
from .tidy import aic, anova, bic, glance, shrinkage_table, tidy

__all__ = [
    # fitting
    "lmer", "lm", "LmerResult", "LmResult", "glmer", "GlmerResult", "binomial", "poisson", "Family", "PIRLSError",
    # warnings (all subclasses of MixedModelWarning, itself a UserWarning)
    "MixedModelWarning", "ConvergenceWarning", "SingularFitWarning", "RowsDroppedWarning", "RankDeficiencyWarning",
    "SeparationWarning", "NonIntegerResponseWarning",
    # accessors (lme4 / arm names)
    "fixef", "ranef", "coef", "vcov", "se_fixef", "se_ranef", "se_coef", "varcorr", "sigma", "ngrps",
    "is_singular", "confint", "coef_intervals", "icc", "group_intercepts", "predict_interval",
    "check_overdispersion",
    # tables and comparison (broom / stats names)
    "tidy", "glance", "aic", "bic", "anova", "shrinkage_table",
    # inference (lmerTest / lme4 / pbkrtest names)
    "contest", "profile", "simulate", "bootstrap", "pb_test",
    # book
    "glue",
    # data
    "load_arrests", "load_faculty", "simulate_faculty", "simulate_clinics", "simulate_ratings",
]
__version__ = "0.1.0"
