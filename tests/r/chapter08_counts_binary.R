## Reference values for tests/test_chapter_counts.py (chapter 08, counts and yes/no outcomes),
## produced once with R + lme4 and pinned in tests/r/chapter08_counts_binary.json (CI never needs R).
##   cd tests/r && Rscript chapter08_counts_binary.R > chapter08_counts_binary.json
## Data: the course's county arrest data (data/) and the chapter's simulated clinics, written by
## mlmhelpers.simulate_clinics() to tests/data/clinics.csv (default seed) and
## tests/data/clinics_pairs.csv (n_clinics = 150, min_patients = max_patients = 2, seed = 7) and
## tests/data/clinics_large.csv (n_clinics = 40, min_patients = 40, max_patients = 60, seed = 3);
## tests/test_chapter_counts.py checks that both files still equal the simulation.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

arrests <- read.csv("../../data/violent_arrest_data.csv")
## counts from the rate, rounded to whole arrests (the chapter explains why)
arrests$arrests <- round(arrests$violent_arrest_per1000 * arrests$pop_tot / 1000)
arrests$county <- paste(arrests$stusps, arrests$fips, sep = ":")
arrests$obs <- seq_len(nrow(arrests))

overdisp <- function(m) {
  rp <- residuals(m, type = "pearson")
  rdf <- df.residual(m)
  c(chisq = sum(rp^2), ratio = sum(rp^2) / rdf, rdf = rdf)
}

summ <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  ci <- confint(m, method = "Wald", parm = "beta_")
  list(
    loglik = as.numeric(logLik(m)), aic = AIC(m), deviance = deviance(m),
    beta = unname(fixef(m)), beta_names = names(fixef(m)),
    se = unname(sqrt(diag(as.matrix(vcov(m))))),
    wald_low = unname(ci[, 1]), wald_high = unname(ci[, 2]),
    vc_grp = vc$grp, vc_sdcor = vc$sdcor, vc_vcov = vc$vcov,
    overdispersion = as.list(overdisp(m))
  )
}

ctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))
out <- list(lme4 = as.character(packageVersion("lme4")))
f0 <- arrests ~ pop_pct_pov + offset(log(pop_tot))
m_state <- glmer(update(f0, . ~ . + (1 | stusps)), data = arrests, family = poisson, control = ctrl)
out$state <- summ(m_state)
m_olre <- glmer(update(f0, . ~ . + (1 | stusps) + (1 | obs)), data = arrests, family = poisson, control = ctrl)
out$olre <- summ(m_olre)
m_county <- glmer(update(f0, . ~ . + (1 | stusps) + (1 | county)), data = arrests, family = poisson,
                  control = ctrl)
out$county <- summ(m_county)

## predicted rates per 1,000 for two counties (first rows of DC and of TX) and a new state
nd <- arrests[c(which(arrests$stusps == "DC")[1], which(arrests$stusps == "TX")[1]), ]
out$county_pred_rate <- unname(predict(m_county, newdata = nd, type = "response") / nd$pop_tot * 1000)

clinics <- read.csv("../data/clinics.csv")
fb <- recovered ~ treated + severity + (1 | clinic)
b_lap <- glmer(fb, data = clinics, family = binomial)
b_agq <- glmer(fb, data = clinics, family = binomial, nAGQ = 25)
out$clinics_laplace <- summ(b_lap)
out$clinics_agq25 <- summ(b_agq)
new <- data.frame(treated = c(0, 1, 0, 1), severity = 0, clinic = c("C001", "C001", "new", "new"))
out$clinics_pred_prob <- unname(predict(b_lap, newdata = new, type = "response", allow.new.levels = TRUE))

pairs <- read.csv("../data/clinics_pairs.csv")
out$pairs_laplace <- summ(glmer(fb, data = pairs, family = binomial))
out$pairs_agq25 <- summ(glmer(fb, data = pairs, family = binomial, nAGQ = 25))

large <- read.csv("../data/clinics_large.csv")
out$large_laplace <- summ(glmer(fb, data = large, family = binomial))
out$large_agq25 <- summ(glmer(fb, data = large, family = binomial, nAGQ = 25))

cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "\n")
