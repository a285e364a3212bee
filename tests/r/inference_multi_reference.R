# Reference values for the inference tests with several grouping factors (tests/test_inference_multi.py).
# Run once from the repository root: Rscript tests/r/inference_multi_reference.R > tests/r/inference_multi_reference.Rout
# (lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2). Data: tests/data/{penicillin,pastes}.csv, lme4's
# Penicillin and Pastes as written by tests/r/engine_v2_reference.R. CI never runs this.
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(pbkrtest)})
options(digits = 10, width = 200)
tight <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14,
                                                             xtol_rel = 1e-12, ftol_rel = 1e-14, maxeval = 1e5))
pen <- read.csv("tests/data/penicillin.csv", stringsAsFactors = TRUE)
pas <- read.csv("tests/data/pastes.csv", stringsAsFactors = TRUE)
for (spec in list(list("Penicillin crossed", diameter ~ 1 + (1 | plate) + (1 | sample), pen),
                  list("Pastes nested", strength ~ 1 + (1 | batch / cask), pas))) {
  m <- lmer(spec[[2]], spec[[3]], control = tight)
  cat("\n=====", spec[[1]], "\n")
  cat("theta:", format(getME(m, "theta"), digits = 12), " sigma:", format(sigma(m), digits = 12), "\n")
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    cat("--", ddf, "\n"); print(coef(summary(m, ddf = ddf)), digits = 12)
  }
  m4 <- lme4::lmer(spec[[2]], spec[[3]], control = tight)
  cat("-- profile\n"); print(confint(m4), digits = 12)
}
