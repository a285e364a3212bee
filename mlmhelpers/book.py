"""Small helpers for the book's notebooks."""

from __future__ import annotations

import numpy as np

__all__ = ["glue"]


def glue(name: str, value, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's ``{glue}`` roles.

    Delegates to :func:`myst_nb.glue` when MyST-NB (a book-building tool) is
    installed. Without it (Binder or Colab with only the runtime
    requirements) the value is shown if ``display`` is true and otherwise
    nothing happens, so chapters run with the runtime requirements alone.
    NumPy scalars are converted to Python numbers first, so format specs such
    as ``{glue:text}`name:,.0f``` work on them.
    """
    if isinstance(value, np.generic):  # np.float64 etc. break the {glue:text} format specs
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:  # runtime-only environment
        if display:
            from IPython.display import display as _display

            _display(value)
        return None
    _glue(name, value, display=display)
    return None
