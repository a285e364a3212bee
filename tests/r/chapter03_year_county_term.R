# Reference values for tests/test_chapter_varying_slopes.py (issue 16, exercise 5 of chapter 3):
# the year effect with and without a county term, fitted by lme4 (R 4.2.2, lme4 1.1.31).
# Run from the repository root:  Rscript tests/r/chapter03_year_county_term.R
# Printed on 2026-12-03 (the test pins these digits; CI never runs R):
#   (1 + pop_pct_pov | stusps)                         y2016 -0.3370850  SE 0.11421922
#   (1 + pop_pct_pov | stusps) + (1 | stusps:county)   y2016 -0.3738842  SE 0.05675248
#     (lme4 warns "failed to converge with max|grad| = 0.005"; a tolerance check, not a failure)
#   (1 | stusps)                                       y2016 -0.3229063  SE 0.11735087
#   (1 | stusps/county)                                y2016 -0.3740826  SE 0.05617033
#   county-term model: SD county 3.19217618, SD residual 1.60985485, REML criterion 21738.5757
suppressMessages(library(lme4))
d <- read.csv("data/violent_arrest_data.csv")
d$y2016 <- as.integer(d$year == 2016)
d$county <- paste(d$stusps, d$fips)
fits <- list(
  lmer(violent_arrest_per1000 ~ pop_pct_pov + y2016 + (1 + pop_pct_pov | stusps), d),
  lmer(violent_arrest_per1000 ~ pop_pct_pov + y2016 + (1 + pop_pct_pov | stusps) +
         (1 | stusps:county), d),
  lmer(violent_arrest_per1000 ~ pop_pct_pov + y2016 + (1 | stusps), d),
  lmer(violent_arrest_per1000 ~ pop_pct_pov + y2016 + (1 | stusps/county), d)
)
for (m in fits) {
  print(formula(m))
  print(coef(summary(m))["y2016", c("Estimate", "Std. Error")], digits = 8)
}
# the county-term model of the chapter: standard deviations and REML criterion
print(as.data.frame(VarCorr(fits[[2]]))[, c("grp", "var1", "var2", "sdcor")], digits = 8)
print(REMLcrit(fits[[2]]), digits = 10)
