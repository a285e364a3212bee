"""Shared inputs of the inference tests: lme4's data sets (tests/data) and derived arrest variables."""

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data"


def sleepstudy() -> pd.DataFrame:
    return pd.read_csv(DATA / "sleepstudy.csv")


def dyestuff() -> pd.DataFrame:
    return pd.read_csv(DATA / "dyestuff.csv")


def with_state_poverty(arrests: pd.DataFrame) -> pd.DataFrame:
    """R: d$pov_state <- ave(d$pop_pct_pov, d$stusps); d$pov_band <- cut(d$pop_pct_pov, c(0, 10, 20, Inf))."""
    d = arrests.copy()
    d["pov_state"] = d.groupby("stusps")["pop_pct_pov"].transform("mean")
    d["pov_band"] = pd.cut(d["pop_pct_pov"], [0, 10, 20, np.inf])
    return d
