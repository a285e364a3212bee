# Reference values for lmerTest's type III anova of models with interactions (tests/test_lmertest.py).
# Run once from the repository root: Rscript tests/r/inference_type3_reference.R > tests/r/inference_type3_reference.Rout
# (lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2). Computed with R's default options(digits = 7):
# lmerTest zapsmall()s its type III contrasts with getOption("digits"). CI never runs this.
suppressPackageStartupMessages({library(lmerTest)})
options(width = 200)  # default digits = 7: lmerTest zapsmall()s its type III contrasts with getOption("digits")
tight <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, ftol_rel = 1e-14, maxeval = 1e5))
d <- read.csv("data/violent_arrest_data.csv")
d$pov_band <- cut(d$pop_pct_pov, c(0, 10, 20, Inf))
m <- lmer(violent_arrest_per1000 ~ pop_pct_pov * factor(year) + pov_band + (1 | stusps), d, control = tight)
print(anova(m), digits = 12)
print(anova(m, ddf = "Kenward-Roger"), digits = 12)
m2 <- lmer(violent_arrest_per1000 ~ pov_band * factor(year) + (1 | stusps), d, control = tight)
print(anova(m2), digits = 12)
