"""Time mlmhelpers.lmer on crossed random effects of InstEval's and MovieLens' shapes, next to lme4.

Run: ``.venv/bin/python benchmarks/bench_crossed.py`` (``--quick`` skips the MovieLens-shaped
model, ``--no-r`` skips lme4). Prints one table; nothing here is a test.

The data are simulated with the shapes of lme4's ``InstEval`` (73,421 ratings of 1,128
instructors ``d`` in 14 departments by 2,972 students ``s``; ``service`` a 0/1 covariate) and
of MovieLens-1M (1,000,000 ratings, 6,040 users × 3,706 items). When ``Rscript`` with lme4 is on
the PATH, lme4 fits the same models to the same data (written to a temporary CSV) in the same
run and the ratio is printed; otherwise the table says it was skipped.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mlmhelpers as mh


def simulate_insteval(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, n_s, n_d, n_dept = 73_421, 2_972, 1_128, 14
    dept_of_d = rng.integers(0, n_dept, n_d)
    s = rng.integers(0, n_s, n)
    d = rng.integers(0, n_d, n)
    dept = dept_of_d[d]
    service = rng.integers(0, 2, n)
    y = (3.2 + rng.normal(0, 0.32, n_s)[s] + rng.normal(0, 0.52, n_d)[d] + rng.normal(0, 0.1, n_dept)[dept]
         - 0.07 * service + rng.normal(0, 1.18, n))
    y = np.clip(np.round(y), 1, 5)
    return pd.DataFrame({"y": y, "service": service, "s": s, "d": d, "dept": [f"D{k:02d}" for k in dept]})


def simulate_movielens(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, n_u, n_i = 1_000_000, 6_040, 3_706
    # skewed activity and popularity, as in the real data
    pu = rng.lognormal(0, 1.0, n_u)
    pi = rng.lognormal(0, 1.2, n_i)
    u = rng.choice(n_u, n, p=pu / pu.sum())
    i = rng.choice(n_i, n, p=pi / pi.sum())
    y = 3.6 + rng.normal(0, 0.45, n_u)[u] + rng.normal(0, 0.5, n_i)[i] + rng.normal(0, 0.9, n)
    return pd.DataFrame({"y": np.clip(np.round(y), 1, 5), "user": u, "item": i})


MODELS = [
    ("InstEval: service + (1|s) + (1|d) + (1|dept)", "insteval", "y ~ service + (1 | s) + (1 | d) + (1 | dept)"),
    ("InstEval: service*dept + (1|s) + (1|d)", "insteval", "y ~ service * dept + (1 | s) + (1 | d)"),
    ("MovieLens-1M: (1|user) + (1|item)", "movielens", "y ~ 1 + (1 | user) + (1 | item)"),
]


def time_ours(formula: str, data: pd.DataFrame, repeat: int) -> tuple[float, object]:
    best, m = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = mh.lmer(formula, data)
        best = min(best, time.perf_counter() - t0)
    return best, m


R_SCRIPT = """
suppressPackageStartupMessages(library(lme4))
d <- read.csv("{csv}")
for (v in c({factors})) d[[v]] <- factor(d[[v]])
t <- system.time(m <- lmer({formula}, d))[["elapsed"]]
cat(t, REMLcrit(m), "\\n")
"""


def time_lme4(formula: str, data: pd.DataFrame, factors: list[str], tmp: Path) -> tuple[float, float] | None:
    if shutil.which("Rscript") is None:
        return None
    csv = tmp / "data.csv"
    data.to_csv(csv, index=False)
    script = tmp / "fit.R"
    script.write_text(R_SCRIPT.format(csv=csv, factors=", ".join(f'"{f}"' for f in factors), formula=formula))
    out = subprocess.run(["Rscript", str(script)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stderr[-500:])
        return None
    t, crit = out.stdout.split()[:2]
    return float(t), float(crit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the MovieLens-shaped model")
    ap.add_argument("--no-r", action="store_true", help="do not time lme4")
    args = ap.parse_args()
    have_r = not args.no_r and shutil.which("Rscript") is not None
    data = {"insteval": simulate_insteval()}
    if not args.quick:
        data["movielens"] = simulate_movielens()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, key, formula in MODELS:
            if key not in data:
                continue
            d = data[key]
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            t, m = time_ours(formula, d, repeat=1 if key == "movielens" else 3)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{label}: mlmhelpers {t:.2f} s, peak RSS {rss:,.0f} MB", flush=True)  # before lme4, which may not finish
            lme4 = None
            if have_r:
                factors = [f for f in ("s", "d", "dept", "user", "item") if f in d.columns]
                lme4 = time_lme4(formula, d, factors, Path(tmp))
            row = {"model": label, "rows": f"{len(d):,}",
                   "levels": " x ".join(f"{k} {v:,}" for k, v in m.ngroups.items()),
                   "mlmhelpers (s)": f"{t:.2f}", "REML crit": f"{m.reml_criterion:.2f}",
                   "peak RSS (MB)": f"{max(rss, rss0):,.0f}"}
            if lme4 is None:
                row.update({"lme4 (s)": "skipped", "lme4 / ours": "", "lme4 REML crit": ""})
            else:
                row.update({"lme4 (s)": f"{lme4[0]:.2f}", "lme4 / ours": f"{lme4[0] / t:.1f}x",
                            "lme4 REML crit": f"{lme4[1]:.2f}"})
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 12):
        print()
        print(table.to_string(index=False))
    print("\npeak RSS is the whole process's high-water mark after each fit (data included); "
          f"lme4 {'timed by Rscript on the same data' if have_r else 'skipped (no Rscript or --no-r)'}.")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; {os.cpu_count()} cores; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    main()
