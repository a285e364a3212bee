"""Time mlmhelpers.lmer against statsmodels MixedLM on simulated data.

Run: ``.venv/bin/python benchmarks/bench_lmer.py`` (add ``--quick`` for a
smaller run). Prints one table; nothing here is a test.

Sizes follow the engine issue: 1,000,000 rows in 10,000 groups for a random
intercept and for a random intercept + slope, plus the lecture models.
statsmodels is timed on a smaller sample of the same data (it is orders of
magnitude slower); its size is printed next to its time.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import pandas as pd

import mlmhelpers as mh


def simulate(n: int, groups: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    a = rng.normal(0, 1.0, groups)
    b = rng.normal(0, 0.5, groups)
    y = 1.0 + a[g] + (0.5 + b[g]) * x + rng.normal(0, 2.0, n)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def time_statsmodels(df: pd.DataFrame, slope: bool) -> float:
    import statsmodels.formula.api as smf

    kw = {"re_formula": "~x"} if slope else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        smf.mixedlm("y ~ x", df, groups=df["g"], **kw).fit(reml=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    args = ap.parse_args()
    n, groups = (100_000, 1_000) if args.quick else (1_000_000, 10_000)
    sm_n, sm_groups = (20_000, 200) if args.quick else (100_000, 1_000)

    big = simulate(n, groups)
    small = simulate(sm_n, sm_groups)
    arrests = mh.load_arrests()
    faculty = mh.load_faculty()

    rows = []
    for label, formula, slope in [("random intercept", "y ~ x + (1 | g)", False),
                                  ("random intercept + slope", "y ~ x + (1 + x | g)", True)]:
        t = best_of(lambda f=formula: mh.lmer(f, big), 3)
        t_sm = time_statsmodels(small, slope)
        t_ours_small = best_of(lambda f=formula: mh.lmer(f, small), 3)
        rows.append((label, f"{n:,} x {groups:,}", f"{t:.3f}", f"{sm_n:,} x {sm_groups:,}",
                     f"{t_ours_small:.3f}", f"{t_sm:.3f}"))

    lecture = [
        ("lecture B: (1 | stusps)", "violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", arrests),
        ("lecture A: (1 | department)", "salary ~ experience + (1 | department)", faculty),
        ("lecture A: (0 + experience | department)", "salary ~ experience + (0 + experience | department)", faculty),
        ("lecture A: (1 + experience | department)", "salary ~ experience + (1 + experience | department)", faculty),
    ]
    for label, formula, data in lecture:
        t = best_of(lambda f=formula, dd=data: mh.lmer(f, dd), 5)
        rows.append((label, f"{len(data):,}", f"{t * 1000:.1f} ms", "", "", ""))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = pd.DataFrame(rows, columns=["model", "rows x groups", "mlmhelpers (s)", "sample for statsmodels",
                                        "mlmhelpers on sample (s)", "statsmodels MixedLM (s)"])
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        print(table.to_string(index=False))
    print(f"\npeak resident memory of this process: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
