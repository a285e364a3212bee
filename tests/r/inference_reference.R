# Reference values for tests/test_satterthwaite.py, tests/test_profile.py and tests/test_bootstrap.py.
#
# Run once from the repository root:  Rscript tests/r/inference_reference.R
# (R 4.x with lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, as on the project machine.)
# It writes tests/data/sleepstudy.csv and tests/data/dyestuff.csv (lme4's data sets) and prints
# the numbers pinned in the tests at full precision. CI never runs it.
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(pbkrtest)})
options(digits = 10, width = 200)
cat("versions:", as.character(packageVersion("lme4")), as.character(packageVersion("lmerTest")),
    as.character(packageVersion("pbkrtest")), "\n")

write.csv(sleepstudy, "tests/data/sleepstudy.csv", row.names = FALSE)
write.csv(Dyestuff, "tests/data/dyestuff.csv", row.names = FALSE)
d <- read.csv("data/violent_arrest_data.csv")
d$pov_state <- ave(d$pop_pct_pov, d$stusps)   # state-mean poverty (a state-level predictor)
d$pov_band <- cut(d$pop_pct_pov, c(0, 10, 20, Inf))  # a three-level factor

show <- function(label, m) {
  cat("\n=====", label, "\n")
  cat("theta:", format(getME(m, "theta"), digits = 12), " sigma:", format(sigma(m), digits = 12), "\n")
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    cat("--", ddf, "\n"); print(coef(summary(m, ddf = ddf)), digits = 12)
  }
}

# 1. sleepstudy, lmerTest's published example
m_sleep <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
show("sleepstudy Reaction ~ Days + (Days | Subject)", m_sleep)
print(summary(m_sleep))
cat("-- vcovAdj\n"); print(as.matrix(vcovAdj(m_sleep)), digits = 12)
# balanced design, random intercept only: exact df = (subjects - 1) * (days - 1) = 153 for Days
m_sleep_ri <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
show("sleepstudy Reaction ~ Days + (1 | Subject)", m_sleep_ri)

# 2. arrests
m_ri <- lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps), d)
show("arrests ~ pop_pct_pov + (1 | stusps)", m_ri)
m_state <- lmer(violent_arrest_per1000 ~ pop_pct_pov + pov_state + (1 | stusps), d)
show("arrests ~ pop_pct_pov + pov_state + (1 | stusps)", m_state)
m_slope <- lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps), d)
show("arrests ~ pop_pct_pov + (1 + pop_pct_pov | stusps)", m_slope)

# 3. type III anova with a multi-column factor
m_band <- lmer(violent_arrest_per1000 ~ pop_pct_pov + pov_band + factor(year) + (1 | stusps), d)
show("arrests ~ pop_pct_pov + pov_band + factor(year) + (1 | stusps)", m_band)
cat("-- anova Satterthwaite\n"); print(anova(m_band), digits = 12)
cat("-- anova Kenward-Roger\n"); print(anova(m_band, ddf = "Kenward-Roger"), digits = 12)
L <- rbind(c(0, 0, 1, -1, 0), c(0, 0, 0, 0, 1))
cat("-- contest(m_band, L) Satterthwaite, joint\n"); print(contest(m_band, L), digits = 12)
cat("-- contest(m_band, L[1,]) KR\n"); print(contest(m_band, L[1, ], ddf = "Kenward-Roger", joint = FALSE), digits = 12)
cat("-- contest(m_sleep, c(0,1)) joint F, Satterthwaite\n"); print(contest(m_sleep, c(0, 1)), digits = 12)

# 4. profile intervals (lme4 profiles the ML deviance, also for REML fits)
m_dye <- lme4::lmer(Yield ~ 1 + (1 | Batch), Dyestuff)
cat("\n===== Dyestuff profile\n"); print(confint(m_dye), digits = 12)
cat("-- Wald\n"); print(confint(m_dye, method = "Wald"), digits = 12)
m_dye_ml <- lme4::lmer(Yield ~ 1 + (1 | Batch), Dyestuff, REML = FALSE)
cat("-- ML refit\n"); print(confint(m_dye_ml), digits = 12)
cat("-- fine grid (delta = cutoff/64)\n"); print(confint(profile(m_dye, delta.cutoff = 1/64)), digits = 12)
m_slope_lme4 <- lme4::lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps), d)
cat("\n===== arrests slope profile\n"); print(confint(m_slope_lme4), digits = 12)
cat("-- fine grid\n"); print(confint(profile(m_slope_lme4, delta.cutoff = 1/64)), digits = 12)
cat("-- level 0.9\n"); print(confint(m_slope_lme4, level = 0.9), digits = 12)
m_ri_lme4 <- lme4::lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps), d)
cat("\n===== arrests random intercept profile\n"); print(confint(m_ri_lme4), digits = 12)

# 5. The same fits with a tight optimiser: lme4's default stopping rule leaves theta ~1e-4 from the
#    optimum, which moves the df in the 4th digit; mlmhelpers polishes the optimum, so its numbers
#    are compared with these (and, at the printed digits, with the default fits above).
tight <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14,
                                                             xtol_rel = 1e-12, ftol_rel = 1e-14, maxeval = 1e5))
m_sleep_t <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, control = tight)
show("TIGHT sleepstudy", m_sleep_t)
options(digits = 7); print(summary(m_sleep_t)); print(summary(m_sleep_t, ddf = "Kenward-Roger")); options(digits = 10)
m_ri_t <- lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps), d, control = tight)
show("TIGHT arrests ri", m_ri_t)
options(digits = 7); print(summary(m_ri_t)); options(digits = 10)
m_state_t <- lmer(violent_arrest_per1000 ~ pop_pct_pov + pov_state + (1 | stusps), d, control = tight)
show("TIGHT arrests state", m_state_t)
m_slope_t <- lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps), d, control = tight)
show("TIGHT arrests slope", m_slope_t)
m_band_t <- lmer(violent_arrest_per1000 ~ pop_pct_pov + pov_band + factor(year) + (1 | stusps), d, control = tight)
show("TIGHT arrests band", m_band_t)
cat("-- anova Satterthwaite\n"); print(anova(m_band_t), digits = 12)
cat("-- anova Kenward-Roger\n"); print(anova(m_band_t, ddf = "Kenward-Roger"), digits = 12)
cat("-- contest(m_band_t, L) Satterthwaite, joint\n"); print(contest(m_band_t, L), digits = 12)
cat("-- contest(m_band_t, L) KR, joint\n"); print(contest(m_band_t, L, ddf = "Kenward-Roger"), digits = 12)
cat("-- contest(m_band_t, L) Satterthwaite, not joint, confint\n"); print(contest(m_band_t, L, joint = FALSE, confint = TRUE), digits = 12)
options(digits = 7); print(anova(m_band_t)); options(digits = 10)
m_slope_lme4_t <- lme4::lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps), d, control = tight)
cat("\n===== TIGHT arrests slope profile\n"); print(confint(m_slope_lme4_t), digits = 12)
cat("-- level 0.9\n"); print(confint(m_slope_lme4_t, level = 0.9), digits = 12)
m_ri_lme4_t <- lme4::lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps), d, control = tight)
cat("\n===== TIGHT arrests ri profile\n"); print(confint(m_ri_lme4_t), digits = 12)

# 6. PBmodcomp's likelihood-ratio statistic (the bootstrap p-value is random)
m_big <- lme4::lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 + pop_pct_pov | stusps), d, REML = FALSE)
m_small <- lme4::lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps), d, REML = FALSE)
cat("\n===== LRT slope vs intercept (ML)\n"); print(anova(m_small, m_big), digits = 12)
