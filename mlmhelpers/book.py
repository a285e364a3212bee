"""Small helpers for the book's notebooks."""

from __future__ import annotations

__all__ = ["glue"]


def glue(name: str, value, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's ``{glue}`` roles.

    Delegates to :func:`myst_nb.glue` when MyST-NB (a book-building tool) is
    installed. Without it (Binder or Colab with only the runtime
    requirements) the value is shown if ``display`` is true and otherwise
    nothing happens, so chapters run with the runtime requirements alone.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:  # runtime-only environment
        if display:
            from IPython.display import display as _display

            _display(value)
        return None
    _glue(name, value, display=display)
    return None
