"""Shared statistical helpers for the sketch tests (unbiasedness z-tests, log-log slope fits).

Failure probabilities: a z-test at |z| <= 6 has two-sided normal tail probability 2e-9; the sample means used have
R >= 400 terms of finite variance, where the normal approximation is accurate far beyond the resolution that
matters here (and the seeds are fixed, so a given run either always passes or always fails).
"""
import numpy as np

Z_MAX = 6.0  # two-sided normal tail at 6 sigma: 2.0e-9


def z_score(samples, target):
    """(mean - target) / standard error of the mean, with the observed standard deviation."""
    samples = np.asarray(samples, dtype=float)
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    return (samples.mean() - target) / se


def loglog_slope(ms, sq_errors):
    """Least-squares slope of log RMS error against log m, and its standard error (delta method).

    ``sq_errors[i]`` holds the R squared errors observed at ``ms[i]``; log RMS = 0.5 log mean(sq), whose standard
    error is 0.5 * SE(mean sq) / mean sq; the slope is a fixed linear combination of the log RMS values, so its
    standard error follows from theirs (the grid points use independent seeds).
    """
    u = np.log(np.asarray(ms, dtype=float))
    y = np.array([0.5 * np.log(np.mean(e)) for e in sq_errors])
    se = np.array([0.5 * np.std(e, ddof=1) / np.sqrt(len(e)) / np.mean(e) for e in sq_errors])
    w = (u - u.mean()) / np.sum((u - u.mean()) ** 2)
    return float(w @ y), float(np.sqrt(np.sum(w ** 2 * se ** 2)))
