## Differential test of glmer against lme4 on simulated data, for tests/test_glmer.py
## (test_random_data_sets_match_lme4). Produced once with R + lme4; CI never runs R.
##   cd tests/r && Rscript glmer_random_reference.R
## Writes ../data/glmer_random.csv (16 simulated data sets, column `case`) and
## glmer_random_reference.json (lme4's -2 logLik, theta, beta and standard errors for each, with
## the Laplace approximation and with nAGQ = 25).
## The cases cycle through four response types (binomial with 1-11 trials, Poisson counts,
## binary, Poisson with an exposure offset) and four random-intercept SDs (0.05, 0.3, 0.7, 1.5),
## with 8-40 groups of 2-20 rows.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
set.seed(2026)
types <- c("binomial", "poisson", "binary", "offset")
sds <- c(0.05, 0.3, 0.7, 1.5)
frames <- list(); out <- list()
for (case in 0:15) {
  type <- types[case %/% 4 + 1]; sd <- sds[case %% 4 + 1]
  J <- sample(8:40, 1); sizes <- sample(2:20, J, replace = TRUE)
  g <- rep(seq_len(J), sizes); n <- length(g)
  x <- round(rnorm(n), 6)
  eta <- -0.5 + 0.8 * x + rnorm(J, sd = sd)[g]
  d <- data.frame(case = case, x = x, g = sprintf("g%02d", g), k = NA, f = NA, y = NA, e = NA)
  if (type == "binomial") {
    size <- sample(1:11, n, replace = TRUE); d$k <- rbinom(n, size, plogis(eta)); d$f <- size - d$k
    form <- cbind(k, f) ~ x + (1 | g); fam <- binomial
  } else if (type == "poisson") {
    d$y <- rpois(n, exp(eta + 1.5)); form <- y ~ x + (1 | g); fam <- poisson
  } else if (type == "binary") {
    d$y <- rbinom(n, 1, plogis(eta)); form <- y ~ x + (1 | g); fam <- binomial
  } else {
    d$e <- round(runif(n, 0.5, 50), 3); d$y <- rpois(n, d$e * exp(eta - 2))
    form <- y ~ x + offset(log(e)) + (1 | g); fam <- poisson
  }
  m <- suppressMessages(suppressWarnings(glmer(form, data = d, family = fam)))
  m25 <- suppressMessages(suppressWarnings(glmer(form, data = d, family = fam, nAGQ = 25)))
  frames[[case + 1]] <- d
  out[[case + 1]] <- list(case = case, formula = paste(deparse(form), collapse = ""),
                          family = if (identical(fam, binomial)) "binomial" else "poisson",
                          deviance = -2 * as.numeric(logLik(m)), theta = unname(getME(m, "theta")),
                          beta = unname(fixef(m)), se = unname(sqrt(diag(as.matrix(vcov(m))))),
                          singular = isSingular(m),
                          agq25 = list(theta = unname(getME(m25, "theta")), beta = unname(fixef(m25)),
                                       se = unname(sqrt(diag(as.matrix(vcov(m25)))))),
                          lme4 = as.character(packageVersion("lme4")))
}
write.csv(do.call(rbind, frames), "../data/glmer_random.csv", row.names = FALSE, na = "")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "glmer_random_reference.json")
