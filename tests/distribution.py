"""Distribution checks for samples of the lab mixture (pure helpers; reusable by any test).

distribution_check(mixture, x0) -> (mean normalised distance, per-component fractions):
an exact sample x0 = mu_k + s_k eps has normalised distance |eps| / sqrt(d) ~ 1, and the
fractions of samples nearest to each component match the mixture weights.
"""
import math

import torch

from lab.simple_solvers import karras_sigmas  # noqa: F401  (re-exported for the tests)


def distribution_check(mixture, x0):
    """(mean normalised nearest distance, fraction of samples per component) for samples x0."""
    comp, dist = mixture.nearest(x0)
    fractions = torch.bincount(comp, minlength=mixture.num_components).to(torch.float64) / x0.shape[0]
    return float(dist.mean()), fractions


def weights(mixture):
    return mixture.log_weights.exp()


def chi_square(mixture, fractions, n):
    """Pearson chi-square of the component counts against the mixture weights (K - 1 dof)."""
    w = weights(mixture)
    return float((((fractions - w) ** 2) / w).sum() * n)


# Upper 0.1% point of chi-square with 5 degrees of freedom (the default 6-component mixture).
CHI2_5DOF_P001 = 20.515



def flow_sigmas(n):
    """A flow schedule with the same signal-to-noise levels: 1, then Karras VE sigmas mapped
    by s / (1 + s) (n - 1 of them, last ~0.028), then 0."""
    s = karras_sigmas(n - 1)[:-1]
    return torch.cat([s.new_ones(1), s / (1 + s), s.new_zeros(1)])


def log_sigmas(sigma_start, sigma_end, n):
    """VE sigmas uniform in log sigma (the exponential integrators' lambda)."""
    return torch.exp(torch.linspace(math.log(sigma_start), math.log(sigma_end), n + 1, dtype=torch.float64))


def logit_sigmas(sigma_start, sigma_end, n):
    """Flow sigmas uniform in logit sigma (= uniform in lambda for flow)."""
    a, b = math.log(sigma_start / (1 - sigma_start)), math.log(sigma_end / (1 - sigma_end))
    return torch.sigmoid(torch.linspace(a, b, n + 1, dtype=torch.float64))
