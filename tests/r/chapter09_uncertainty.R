# Reference values for tests/test_chapter_uncertainty.py (chapter 9, uncertainty and p-values).
#
# Run once from the repository root:  Rscript tests/r/chapter09_uncertainty.R > tests/r/chapter09_uncertainty.Rout
# (R 4.x with lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, as on the project machine.)
# Prints the numbers pinned in the test at full precision; the bootstrap results are Monte-Carlo
# references (R's random numbers differ from NumPy's), compared within Monte-Carlo error.
# CI never runs it.
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(pbkrtest)})
options(digits = 10, width = 200)
cat("versions:", as.character(packageVersion("lme4")), as.character(packageVersion("lmerTest")),
    as.character(packageVersion("pbkrtest")), "\n")

d <- read.csv("data/violent_arrest_data.csv")
d$pov_state <- ave(d$pop_pct_pov, d$stusps)        # state-mean poverty (state-level predictor)
d$pov_within <- d$pop_pct_pov - d$pov_state         # county deviation from it
f <- read.csv("data/faculty_salaries.csv")
cat("rows:", nrow(d), nrow(f), "\n")

tab <- function(label, m) {
  cat("\n=====", label, "\n")
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    cat("--", ddf, "\n"); print(coef(summary(m, ddf = ddf)), digits = 12)
  }
}

# 1. the arrest model of chapters 2 and 3
m_int <- lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps), d)
tab("arrests (1 | stusps)", m_int)
cat("-- profile intervals (95 %, 90 %)\n")
pr_int <- profile(m_int)
print(confint(pr_int), digits = 10); print(confint(pr_int, level = 0.9), digits = 10)

# 2. within- and between-state poverty
m_ctx <- lmer(violent_arrest_per1000 ~ pov_within + pov_state + (1 | stusps), d)
tab("arrests within/between", m_ctx)
cat("-- contest within = between (Satterthwaite)\n")
print(contest(m_ctx, c(0, 1, -1), joint = FALSE), digits = 12)

# 3. faculty: random intercept, and uncorrelated random slope
m_f <- lmer(salary ~ experience + (1 | department), f)
m_fs <- lmer(salary ~ experience + (experience || department), f)
cat("\n===== faculty (experience || department)\n")
print(VarCorr(m_fs), digits = 12)
print(confint(profile(m_fs)), digits = 10)
cat("-- anova (ML refits)\n"); print(anova(m_f, m_fs), digits = 12)
pb <- PBmodcomp(m_fs, m_f, nsim = 1000, seed = 1)
cat("-- PBmodcomp, nsim = 1000\n"); print(summary(pb))
cat("-- its reference distribution (all 1000): share below 1e-6, 95 % quantile, extremes\n")
print(c(mean(pb$ref < 1e-6), quantile(pb$ref, 0.95), sum(pb$ref >= 8.05498)), digits = 10)
m_fs_ml <- update(m_fs, REML = FALSE)
cat("-- ML fit: SDs, deviance\n"); print(as.data.frame(VarCorr(m_fs_ml))$sdcor, digits = 12)
print(deviance(m_fs_ml), digits = 12)

# 4. bootstrap of the arrest model's ICC
icc_fun <- function(fit) { v <- as.data.frame(VarCorr(fit))$vcov; v[1] / sum(v) }
cat("\n===== ICC, arrests\n"); print(icc_fun(m_int), digits = 12)
set.seed(1)
b <- bootMer(m_int, icc_fun, nsim = 1000, seed = 1)
cat("-- bootMer ICC, nsim = 1000: mean, sd, 2.5 % and 97.5 % quantiles\n")
print(c(mean(b$t), sd(b$t), quantile(b$t, c(0.025, 0.975))), digits = 10)
