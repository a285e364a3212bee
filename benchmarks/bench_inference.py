"""Time the inference tools on the arrest data (issue 14's targets): 1,000 bootstrap refits of
``violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)`` (target < 10 s) and the full profile of
``violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)`` (target < 2 s), plus
Satterthwaite and Kenward-Roger tables and a parametric bootstrap test.

Run: ``.venv/bin/python benchmarks/bench_inference.py``. Prints a table; nothing here is a test.

BLAS runs single-threaded here (set before NumPy is imported): every refit is a sequence of tiny
matrix operations, for which waking BLAS threads costs more than it saves, and on a shared machine
it costs a great deal more (measured: 8x slower refits of the slope model under load).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402
import warnings  # noqa: E402

import mlmhelpers as mh  # noqa: E402


def best_of(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and process (CPU) time of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main() -> None:
    d = mh.load_arrests()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ri = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps)", d)
        slope = mh.lmer("violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", d)
    rows = [
        ("bootstrap, 1,000 refits, (1 | stusps)", "< 10 s",
         best_of(lambda: mh.bootstrap(ri, nsim=1000, seed=1, progress=False), 2)),
        ("profile, all 6 parameters, (1 + pop_pct_pov | stusps)", "< 2 s",
         best_of(lambda: mh.profile(slope, progress=False), 3)),
        ("confint(method='profile'), (1 | stusps)", "", best_of(lambda: mh.confint(ri, method="profile"), 3)),
        ("summary(ddf='Satterthwaite'), slope model", "",
         best_of(lambda: mh.lmer(slope.formula, d).summary(ddf="Satterthwaite"), 3)),
        ("summary(ddf='Kenward-Roger'), slope model", "",
         best_of(lambda: mh.lmer(slope.formula, d).summary(ddf="Kenward-Roger"), 3)),
        ("pb_test (1 | stusps) vs slope model, 100 simulations", "",
         best_of(lambda: mh.pb_test(ri, slope, nsim=100, seed=1), 1)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'task':<{width}}  {'target':>7}  {'wall':>8}  {'CPU':>8}")
    for name, target, (wall, cpu) in rows:
        print(f"{name:<{width}}  {target:>7}  {wall:7.2f} s  {cpu:7.2f} s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(4,286 rows, 51 states; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}: on a busy machine wall time exceeds CPU time)")


if __name__ == "__main__":
    main()
