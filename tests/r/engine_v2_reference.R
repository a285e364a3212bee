# Reference values for tests/test_lmer_multi.py, produced once with R + lme4 (CI never runs R).
#   cd tests/r && Rscript engine_v2_reference.R
# Writes ../data/{penicillin,pastes,sleepstudy,crossed_slopes}.csv (lme4's data sets, GPL >= 2,
# and one simulated data set) and engine_v2_reference.json.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
data(Penicillin, Pastes, sleepstudy, package = "lme4")
write.csv(Penicillin, "../data/penicillin.csv", row.names = FALSE)
write.csv(Pastes, "../data/pastes.csv", row.names = FALSE)
write.csv(sleepstudy, "../data/sleepstudy.csv", row.names = FALSE)
set.seed(11)
a <- factor(sprintf("a%02d", sample(1:25, 400, replace = TRUE)))
b <- factor(sprintf("b%02d", sample(1:12, 400, replace = TRUE)))
x <- rnorm(400)
ea <- matrix(rnorm(50), 25) %*% diag(c(1, 0.5)); eb <- rnorm(12, sd = 0.8)
y <- 1 + 0.5 * x + ea[as.integer(a), 1] + ea[as.integer(a), 2] * x + eb[as.integer(b)] + rnorm(400)
crossed <- data.frame(y = round(y, 6), x = round(x, 6), a = a, b = b)
write.csv(crossed, "../data/crossed_slopes.csv", row.names = FALSE)
arrests <- read.csv("../../data/violent_arrest_data.csv")
arrests$county <- paste(arrests$stusps, arrests$fips, sep = "-")

summ <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  re <- ranef(m, condVar = TRUE)
  list(
    REML = isREML(m), theta = unname(getME(m, "theta")), crit = unname(if (isREML(m)) REMLcrit(m) else deviance(m)),
    fixef = as.list(fixef(m)), sigma = sigma(m), vcov = unname(as.matrix(vcov(m))),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor),
    ngrps = as.list(ngrps(m)), factors = names(re), nobs = nobs(m), logLik = as.numeric(logLik(m)),
    AIC = AIC(m), BIC = BIC(m),
    ranef = {rd <- as.data.frame(re); list(grpvar = as.character(rd$grpvar), term = as.character(rd$term),
             grp = as.character(rd$grp), condval = rd$condval, condsd = rd$condsd)},
    summary = capture.output(print(summary(m), correlation = TRUE))
  )
}
fits <- list(
  penicillin_reml = lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
  penicillin_ml = lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, REML = FALSE),
  pastes_reml = lmer(strength ~ 1 + (1 | batch/cask), Pastes),
  pastes_ml = lmer(strength ~ 1 + (1 | batch/cask), Pastes, REML = FALSE),
  sleep_reml = lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
  sleep_ml = lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy, REML = FALSE),
  crossed_reml = lmer(y ~ x + (1 + x | a) + (1 | b), crossed),
  crossed_ml = lmer(y ~ x + (1 + x | a) + (1 | b), crossed, REML = FALSE),
  county_reml = lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps/county), arrests),
  county_ml = lmer(violent_arrest_per1000 ~ pop_pct_pov + (1 | stusps/county), arrests, REML = FALSE)
)
out <- lapply(fits, summ)
out$lme4_version <- as.character(packageVersion("lme4"))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", na = "null"), "engine_v2_reference.json")
