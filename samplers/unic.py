"""UniC: UniPC's corrector as a plug-in for any base sampler, at no extra model call.

Zhao, Bai, Rao, Zhou, Lu, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling
of Diffusion Models", NeurIPS 2023, arXiv:2302.04867, Algorithm 2 (UniC-p, data prediction,
B(h) = h for "bh1", e^h - 1 for "bh2"; coefficients from eq. 8 / Theorem 3.1).

After the base sampler has stepped from x_s to a predicted x~_t, the model value at the new point,
m_t = D(x~_t, t), is what the base needs next anyway. UniC uses it to correct
    x_t = (beta_t/beta_s) x_s + alpha_t (1 - e^-h) m_s
          - alpha_t B(h) (sum_k rho_k (m_k - m_s) / r_k + rho_p (m_t - m_s)),
with r_k = (lambda_k - lambda_s) / h over the last p - 1 earlier step starts, and rho solving
sum_k rho_k r_k^(i-1) = i! h phi_{i+1}(h) / B(h) (h -> -h for data prediction), i = 1..p.
The base then continues from the corrected x_t, reusing m_t as its model output there.
If the base is of order q, the corrected sampler is of order min(q, p) + 1. NFE is unchanged.

Two ways to drive the base:
- mode="stream" (default): the base runs once over all sigmas; each model call must be at the
  next sigma of the schedule (one call per step: Euler, DPM-Solver++(2M), PLMS, ...). The wrapper
  writes the corrected x into the tensor the base passed to the model (its state) and returns
  m_t. Multistep history in the base is kept. A call at any other sigma raises ValueError.
- mode="per_step": for single-step bases with several calls per step (Heun, RK): the base is run
  on each [sigma_i, sigma_i+1] alone, starting from the corrected x_i; its first call there is
  answered with the m_i already computed (so the NFE is unchanged); other calls pass through.
  Corrections happen only at the schedule's sigmas (step boundaries).
B(h) cancels from the solved system for p >= 2 (rho scales as 1 / B(h)); it matters where
p = 1 (the first corrected step, or order=1), which uses rho = 1/2 as UniPC's reference code does.
The last step is not corrected (its m would cost a call), as in UniPC. When it goes to sigma = 0
the base's final step works from the corrected x_{n-1} but only has m = D(x~): with m alone the
last correction would be lost (a final DDIM step returns m). The base is handed
m + (x_corr - x~) / alpha instead, the denoised that the corrected point has at the same eps, so the
correction reaches the output (bench/accuracy.py measures it on and off, `unic_handoff=False`, on the
exact mixture and on the learned Lab Net). The correction is made of model differences, so a
half-precision model's rounding reaches the output more strongly; the hand-off is made up to order
MAX_HANDOFF_ORDER = 2, where tests/test_reliability_inputs.py bounds an fp16 / bf16 model's
deviation from fp32 (UniC-3 with the hand-off did not stay within that bound).
A flow step starting at sigma = 1 (lambda = -inf) is not corrected.
"""
import inspect
import math

import torch

from .common import alpha_beta, log_snr, report
from .plms import eps_nodes, final_step, phi, sample_lab_plms, transfer
from .registry import register
from .spec import SamplerSpec

_CITATION = "Zhao et al. 2023, UniPC, arXiv:2302.04867, Algorithm 2 (UniC-p), eq. 8"
VARIANTS = ("bh1", "bh2")
MODES = ("stream", "per_step")


def _solve(rows, rhs):
    """Solve a tiny dense system (Gaussian elimination with partial pivoting, Python floats)."""
    n = len(rhs)
    a = [list(r) + [v] for r, v in zip(rows, rhs)]
    for c in range(n):
        p = max(range(c, n), key=lambda k: abs(a[k][c]))
        a[c], a[p] = a[p], a[c]
        for k in range(c + 1, n):
            f = a[k][c] / a[c][c]
            a[k] = [u - f * v for u, v in zip(a[k], a[c])]
    out = [0.0] * n
    for c in reversed(range(n)):
        out[c] = (a[c][n] - sum(a[c][k] * out[k] for k in range(c + 1, n))) / a[c][c]
    return out


def unic_coefficients(rks, h, variant):
    """rho for UniC with nodes rks (the last one is 1, the new point): R rho = b (eq. 8); B(h)."""
    z = -h
    big_b = z if variant == "bh1" else math.expm1(z)
    rows = [[r ** (i - 1) for r in rks] for i in range(1, len(rks) + 1)]
    rhs = [math.factorial(i) * z * phi(i + 1, z) / big_b for i in range(1, len(rks) + 1)]
    if len(rks) == 1:
        return [0.5], big_b      # UniC-1: rho = 1/2 as in the reference implementation (order 2 either way)
    return _solve(rows, rhs), big_b


class _Corrector:
    """Holds the step-start model values and applies UniC at each step boundary."""

    def __init__(self, sigmas, model_kind, order, variant):
        self.sig = [float(v) for v in sigmas.tolist()]
        self.kind, self.order, self.variant = model_kind, order, variant
        self.lam = [log_snr(model_kind, s) for s in self.sig]
        self.hist = []           # (lambda, m) at the step starts so far

    def correct(self, j, x_s, m_new):
        """x_{j+1} corrected from the (corrected) x_j and m_new = D(x~_{j+1})."""
        lam_s, lam_t = self.lam[j], self.lam[j + 1]
        m_s = self.hist[-1][1]
        if not (math.isfinite(lam_s) and math.isfinite(lam_t)):
            return None
        h = lam_t - lam_s
        prev = [p for p in self.hist[:-1] if math.isfinite(p[0]) and p[0] < lam_s][-(self.order - 1):] \
            if self.order > 1 else []
        rks = [(p[0] - lam_s) / h for p in prev] + [1.0]
        rho, big_b = unic_coefficients(rks, h, self.variant)
        acc = rho[-1] * (m_new - m_s)
        for r, p, c in zip(rks, prev, rho):
            acc = acc + (c / r) * (p[1] - m_s)
        a_t = float(alpha_beta(self.kind, self.sig[j + 1])[0])
        return transfer(x_s, m_s, self.sig[j], self.sig[j + 1], self.kind) - acc * (a_t * big_b)


def _call_base(fn, model, x, sigmas, extra_args, callback, disable, model_kind, options):
    params = inspect.signature(fn).parameters
    if "model_kind" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        options = dict(options, model_kind=model_kind)
    return fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)


MAX_HANDOFF_ORDER = 2   # see the module docstring: the final hand-off for UniC-1/2 only


def _near(a, b):
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b)) + 1e-12


def _stream(sampler_fn, model, x, sigmas, extra_args, callback, disable, model_kind, corr, options):
    state = {"j": -1, "x": None}

    def wrapped(x_in, sigma, **kw):
        s = float(sigma.reshape(-1)[0])
        j = state["j"]
        if j + 1 >= len(corr.sig) or not _near(s, corr.sig[j + 1]):
            raise ValueError(
                f"with_unic(mode='stream') needs one model call per step at the schedule's sigmas; the base "
                f"called the model at sigma={s:.6g} (expected {corr.sig[min(j + 1, len(corr.sig) - 1)]:.6g}): "
                f"use mode='per_step' for bases with several calls per step")
        m = model(x_in, sigma, **kw)
        handed = m
        if j >= 0:
            fixed = corr.correct(j, state["x"], m)
            if fixed is not None:
                if corr.handoff and corr.order <= MAX_HANDOFF_ORDER and j + 2 < len(corr.sig) and corr.sig[j + 2] == 0.0:
                    # the base's next step goes to sigma = 0 and has no later call to carry the
                    # correction: hand it the denoised of the corrected point at the same eps,
                    # m + (x_corr - x~) / alpha (see the module docstring)
                    handed = m + (fixed - x_in) * (1.0 / float(alpha_beta(corr.kind, s)[0]))
                x_in.copy_(fixed)
        corr.hist.append((corr.lam[j + 1], m))
        state["j"], state["x"] = j + 1, x_in.clone()
        return handed

    wrapped.inner_model = getattr(model, "inner_model", None)  # core samplers read model_sampling through it
    return _call_base(sampler_fn, wrapped, x, sigmas, extra_args, callback, disable, model_kind, options)


def _per_step(sampler_fn, model, x, sigmas, extra_args, callback, disable, model_kind, corr, options):
    n = len(corr.sig) - 1
    cache = {"m": None}
    for i in range(n):
        def wrapped(x_in, sigma, **kw):
            if cache["m"] is not None and _near(float(sigma.reshape(-1)[0]), corr.sig[i]):
                m, cache["m"] = cache["m"], None
                return m
            m = model(x_in, sigma, **kw)
            if not corr.hist or len(corr.hist) <= i:
                corr.hist.append((corr.lam[i], m))
            return m

        wrapped.inner_model = getattr(model, "inner_model", None)

        def cb(d, off=i):
            if callback is not None:
                callback(dict(d, i=d["i"] + off))

        x_pred = _call_base(sampler_fn, wrapped, x, sigmas[i:i + 2], extra_args, cb, disable, model_kind, options)
        if i + 1 < n and corr.sig[i + 1] > 0:
            m = model(x_pred, sigmas[i + 1] * x.new_ones([x.shape[0]]), **extra_args)
            fixed = corr.correct(i, x, m)
            x = x_pred if fixed is None else fixed
            corr.hist.append((corr.lam[i + 1], m))
            cache["m"] = m
        else:
            x = x_pred
    return x


def with_unic(sampler_fn, order=2, variant="bh2", mode="stream"):
    """A sampler fn (same signature) running `sampler_fn` with UniC-`order` after every step.

    Zhao et al. 2023 (UniPC), Algorithm 2. Order min(base order, order) + 1; NFE of the base.
    """
    if not isinstance(order, int) or not 1 <= order <= 4:
        raise ValueError(f"order must be an integer from 1 to 4, got {order!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    drive = _stream if mode == "stream" else _per_step

    @torch.no_grad()
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", **options):
        extra_args = {} if extra_args is None else extra_args
        corr = _Corrector(sigmas, model_kind, order, variant)
        # unic_handoff=False: the final step gets the base's own denoised (bench/labnet_accuracy.py compares both)
        corr.handoff = bool(options.pop("unic_handoff", True))
        return drive(sampler_fn, model, x, sigmas, extra_args, callback, disable, model_kind, corr, options)

    sample.__doc__ = f"{getattr(sampler_fn, '__name__', 'sampler')} + UniC-{order} ({variant}, {mode}); {_CITATION}."
    return sample


@torch.no_grad()
def sample_euler_x(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve"):
    """Euler on dx/dsigma = (x - D) / sigma (Karras et al. 2022, Alg. 1 with Euler). Order 1, 1 call."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = x + (x - denoised) * ((sigmas[i + 1] - sigmas[i]) / sigmas[i])
    return x


@torch.no_grad()
def sample_dpmpp_2m_x(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve",
                      last_order=1):
    """DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Alg. 2) in lambda = log(alpha/beta).

    Order 2 (first step DDIM), 1 call per step; the step to sigma = 0 is plms.final_step (AB in rho on
    eps through the last `last_order` step starts; last_order=1 returns the denoised).
    """
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    sig = [float(v) for v in sigmas.tolist()]
    old, h_old, past = None, None, []
    for i in range(len(sig) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sig[i + 1] <= 0:
            x = final_step(x, denoised, sig[i], eps_nodes(past, model_kind), model_kind, last_order) \
                if sig[i] > 0 else denoised
            continue
        if last_order > 1 and float(alpha_beta(model_kind, sig[i])[0]) > 0:
            past = (past + [(sig[i], x, denoised)])[-(last_order - 1):]   # references: eps only if needed
        lam_s, lam_t = log_snr(model_kind, sig[i]), log_snr(model_kind, sig[i + 1])
        h = lam_t - lam_s
        d = denoised
        if old is not None and math.isfinite(h) and math.isfinite(h_old):
            r = h_old / h
            d = denoised * (1.0 + 0.5 / r) - old * (0.5 / r)
        x = transfer(x, d, sig[i], sig[i + 1], model_kind)
        old, h_old = denoised, h
    return x


sample_lab_euler_unic = with_unic(sample_euler_x, order=1, variant="bh2")
sample_lab_dpmpp2m_unic = with_unic(sample_dpmpp_2m_x, order=2, variant="bh2")
sample_lab_plms_unic = with_unic(sample_lab_plms, order=3, variant="bh2")

register(SamplerSpec(
    name="lab_euler_unic", fn=sample_lab_euler_unic, family="unic", order=2, model_calls=1,
    summary="Euler + UniC-1 corrector (bh2): 2nd order at Euler's cost", citation=_CITATION))
register(SamplerSpec(
    name="lab_dpmpp2m_unic", fn=sample_lab_dpmpp2m_unic, family="unic", order=3, model_calls=1,
    summary="DPM-Solver++(2M) + UniC-2 corrector (bh2): 3rd order, 1 call per step", citation=_CITATION))
register(SamplerSpec(
    name="lab_plms_unic", fn=sample_lab_plms_unic, family="unic", order=3, model_calls=1,
    summary="PLMS (4-step, data prediction) + UniC-3 corrector (bh2); order 4 after warm-up, 3 overall",
    citation=_CITATION))
