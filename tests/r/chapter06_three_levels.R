# Reference values for tests/test_chapter_three_levels.py (chapter 6), produced once with
# R + lme4 (CI never runs R):
#   cd tests/r && Rscript chapter06_three_levels.R > chapter06_three_levels.Rout
# Reads ../../data/violent_arrest_data.csv and ../data/ratings.csv (written by
# mlmhelpers.simulate_ratings(); see the test) and writes chapter06_three_levels.json.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
cat(R.version.string, "| lme4", as.character(packageVersion("lme4")), "\n")
d <- read.csv("../../data/violent_arrest_data.csv")
d$county <- d$fips                       # a county code is unique only within its state
d$pov_state <- ave(d$pop_pct_pov, d$stusps)             # state mean over county-years
d$pov_within <- d$pop_pct_pov - d$pov_state
d$pov_county <- ave(d$pop_pct_pov, d$stusps, d$county)  # county mean over its years
Y <- "violent_arrest_per1000"
f <- function(rhs) as.formula(paste(Y, "~", rhs))

summ <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  list(REML = isREML(m), crit = unname(if (isREML(m)) REMLcrit(m) else deviance(m)),
       logLik = as.numeric(logLik(m)), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))), sigma = sigma(m),
       varcorr = list(grp = vc$grp, vcov = vc$vcov, sdcor = vc$sdcor),
       ngrps = as.list(ngrps(m)), nobs = nobs(m))
}
fits <- list(
  state = lmer(f("pop_pct_pov + (1 | stusps)"), d),
  state_year = lmer(f("pop_pct_pov + factor(year) + (1 | stusps)"), d),
  three = lmer(f("pop_pct_pov + factor(year) + (1 | stusps/county)"), d),
  state_year_ml = lmer(f("pop_pct_pov + factor(year) + (1 | stusps)"), d, REML = FALSE),
  three_ml = lmer(f("pop_pct_pov + factor(year) + (1 | stusps/county)"), d, REML = FALSE),
  wb = lmer(f("pov_within + pov_state + factor(year) + (1 | stusps/county)"), d),
  ctx = lmer(f("pop_pct_pov + pov_state + factor(year) + (1 | stusps/county)"), d),
  ctx_ml = lmer(f("pop_pct_pov + pov_state + factor(year) + (1 | stusps/county)"), d, REML = FALSE),
  wb_two = lmer(f("pov_within + pov_state + (1 | stusps)"), d),
  lumped = lmer(f("pop_pct_pov + factor(year) + (1 | stusps) + (1 | county)"), d),
  split = lmer(f("I(pop_pct_pov - pov_county) + I(pov_county - pov_state) + pov_state + factor(year) + (1 | stusps/county)"), d)
)
out <- lapply(fits, summ)
a1 <- anova(fits$state_year, fits$three)   # refits by ML
a2 <- anova(fits$three, fits$ctx)
out$anova_county <- list(Chisq = a1$Chisq[2], Df = a1$Df[2], p = a1[["Pr(>Chisq)"]][2])
out$anova_context <- list(Chisq = a2$Chisq[2], Df = a2$Df[2], p = a2[["Pr(>Chisq)"]][2])
re <- ranef(fits$three)
out$ranef_state <- as.list(re$stusps[, 1]); names(out$ranef_state) <- rownames(re$stusps)
re2 <- ranef(fits$state_year)
out$ranef_state_two <- as.list(re2$stusps[, 1]); names(out$ranef_state_two) <- rownames(re2$stusps)
out$fe_slope <- unname(coef(lm(f("pop_pct_pov + factor(stusps)"), d))["pop_pct_pov"])

r <- read.csv("../data/ratings.csv")
out$crossed <- summ(lmer(score ~ 1 + (1 | rater) + (1 | essay), r))
out$crossed_ml <- summ(lmer(score ~ 1 + (1 | rater) + (1 | essay), r, REML = FALSE))
out$essay_only <- summ(lmer(score ~ 1 + (1 | essay), r))
print(summary(fits$three)); print(a1); print(a2); print(summary(lmer(score ~ 1 + (1 | rater) + (1 | essay), r)))
write_json(out, "chapter06_three_levels.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
