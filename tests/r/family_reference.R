## Reference values for tests/test_family.py (R's family objects); pinned in the test.
##   Rscript family_reference.R
eta <- c(-40, -31, -5, -1, 0, 0.5, 3, 31, 40)
for (lk in c("logit", "probit", "cloglog")) {
  f <- binomial(link = lk)
  cat(lk, "linkinv", sprintf("%.17g", f$linkinv(eta)), "\n")
  cat(lk, "mu.eta", sprintf("%.17g", f$mu.eta(eta)), "\n")
}
p <- poisson()
cat("log linkinv", sprintf("%.17g", p$linkinv(c(-800, -1, 0, 2.5))), "\n")
y <- c(0, 0.25, 1, 0.5); mu <- c(0.1, 0.3, 0.8, 0.5); wt <- c(1, 4, 3, 2)
cat("binomial dev.resids", sprintf("%.17g", binomial()$dev.resids(y, mu, wt)), "\n")
cat("binomial aic", sprintf("%.17g", binomial()$aic(y, wt, mu, wt, 0)), "\n")
yc <- c(0, 1, 3, 10); muc <- c(0.5, 1.2, 2.5, 12)
cat("poisson dev.resids", sprintf("%.17g", poisson()$dev.resids(yc, muc, c(1, 1, 2, 1))), "\n")
cat("poisson aic", sprintf("%.17g", poisson()$aic(yc, 1, muc, c(1, 1, 2, 1), 0)), "\n")
