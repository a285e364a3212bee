"""Number formatting that follows R's ``format()``/``print()`` rules.

lme4's ``summary()`` output is made with R's ``format(x, digits = d)``: a
column of numbers gets the fewest decimals that still show every entry to
``d`` significant digits, with trailing zeros of the widest entry dropped.
Reproducing that rule lets our printouts line up digit for digit with the R
output that readers have seen in the lectures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["r_decimals", "r_format", "abbreviate", "format_table"]


def _decimals_needed(x: float, digits: int) -> int:
    if x == 0 or not math.isfinite(x):
        return 0
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    sig = mant.replace(".", "").rstrip("0")
    return max(0, len(sig) - 1 - int(exp))


def r_decimals(values: Iterable[float], digits: int) -> int:
    """Decimals R's ``format(values, digits=digits)`` uses for the whole vector."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return min(15, max((_decimals_needed(v, digits) for v in vals), default=0))


def r_format(values: Sequence[float], digits: int = 7) -> list[str]:
    """Format numbers like R's ``format(values, digits = digits)`` (fixed notation).

    Examples
    --------
    >>> from mlmhelpers.rprint import r_format
    >>> r_format([1.86112, 0.38769, 0.13340, 0.01029], digits=4)
    ['1.86112', '0.38769', '0.13340', '0.01029']
    >>> r_format([5.942, 14.196], digits=4)
    ['5.942', '14.196']
    """
    dec = r_decimals(values, digits)
    out = []
    for v in values:
        v = float(v)
        if math.isnan(v):
            out.append("NA")
        elif math.isinf(v):
            out.append("Inf" if v > 0 else "-Inf")
        else:
            out.append(f"{v:.{dec}f}")
    return out


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate(name, minlength)`` for one name.

    Lower-case vowels are dropped from the right (never the first
    character), then lower-case letters, then the name is truncated.

    Examples
    --------
    >>> from mlmhelpers.rprint import abbreviate
    >>> abbreviate("(Intercept)")
    '(Intr)'
    """
    chars = list(name)
    if len(chars) <= minlength:
        return name
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pool and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None,
                 align: Sequence[str] | None = None, row_names: Sequence[str] | None = None) -> str:
    """Lay out strings in right-aligned columns the way R prints a matrix."""
    body = [list(r) for r in rows]
    if row_names is not None:
        body = [[rn] + r for rn, r in zip(row_names, body, strict=True)]
        if header is not None:
            header = [""] + list(header)
    table = ([list(header)] if header is not None else []) + body
    ncol = max(len(r) for r in table)
    widths = [max(len(r[c]) if c < len(r) else 0 for r in table) for c in range(ncol)]
    if align is None:
        align = (["l"] if row_names is not None else []) + ["r"] * (ncol - (row_names is not None))
    lines = []
    for r in table:
        cells = []
        for c in range(ncol):
            s = r[c] if c < len(r) else ""
            cells.append(s.ljust(widths[c]) if align[c] == "l" else s.rjust(widths[c]))
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)
