"""The package's warning classes, and a ``warn`` that points at the user's own call.

Every warning ``mlmhelpers`` gives is an instance of :class:`MixedModelWarning` (itself a
``UserWarning``), in a class named for what happened, so a reader can silence one kind and
keep the others::

    import warnings
    import mlmhelpers as mh
    warnings.simplefilter("ignore", mh.SingularFitWarning)

:func:`warn` reports the warning at the first caller outside the package: whether it comes
from ``lmer``, ``glmer``, ``anova`` or a refit inside ``bootstrap``, the message names the
line of the user's script or notebook cell, not a line of ``mlmhelpers``.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["MixedModelWarning", "ConvergenceWarning", "SingularFitWarning", "RowsDroppedWarning",
           "RankDeficiencyWarning", "SeparationWarning", "NonIntegerResponseWarning", "warn"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class MixedModelWarning(UserWarning):
    """Base class of every warning of ``mlmhelpers``."""


class ConvergenceWarning(MixedModelWarning):
    """The optimiser's answer failed lme4's gradient check (``checkConv``)."""


class SingularFitWarning(MixedModelWarning):
    """The fit is on the boundary of the parameter space (R's ``isSingular()``)."""


class RowsDroppedWarning(MixedModelWarning):
    """Rows with a missing value in a model variable were dropped (R's ``na.omit``)."""


class RankDeficiencyWarning(MixedModelWarning):
    """Fixed-effect columns that are linear combinations of earlier ones were dropped."""


class SeparationWarning(MixedModelWarning):
    """Fitted probabilities of 0 or 1: (quasi-)complete separation in a binomial model."""


class NonIntegerResponseWarning(MixedModelWarning):
    """A count response (Poisson) has non-integer values (lme4 warns too)."""


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this package, seen from ``warn``'s caller."""
    frame = sys._getframe(2)  # the caller of warn()
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning] = MixedModelWarning) -> None:
    """Issue ``message`` as ``category``, attributed to the user's line that called the package.

    Examples
    --------
    >>> import warnings
    >>> from mlmhelpers.messages import RowsDroppedWarning, warn
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn("Dropped 2 of 10 rows", RowsDroppedWarning)
    >>> caught[0].category.__name__, str(caught[0].message)
    ('RowsDroppedWarning', 'Dropped 2 of 10 rows')
    """
    warnings.warn(message, category, stacklevel=_user_stacklevel())
