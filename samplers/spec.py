"""Sampler specs: what the registry, the bridge, the sweep and the tests know about a sampler."""
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class SamplerSpec:
    """One dropdown entry.

    fn has the k-diffusion signature
        fn(model, x, sigmas, extra_args=None, callback=None, disable=None, model_kind="ve", **options)
    where model(x, sigma * s_in, **extra_args) returns the denoised x0, and model_kind is
    "ve" (eps / v models: x = x0 + sigma n) or "flow" (CONST models: x = (1 - sigma) x0 + sigma n).
    The bridge passes model_kind from the model's model_sampling.
    """
    name: str                    # dropdown name; must not collide with core or other packs
    fn: Callable
    family: str                  # file / family, e.g. "rk_explicit"
    order: int                   # theoretical order of accuracy (deterministic part)
    model_calls: float           # denoiser calls per step (NFE per step)
    stochastic: bool = False     # adds fresh noise (seeded from extra_args["seed"])
    flow_safe: bool = True       # correct for CONST / flow models
    cfg_pp: bool = False         # this entry is (or has) a CFG++ form
    summary: str = ""            # one line for tooltips and the README
    citation: str = ""           # paper / equation
    options: dict = field(default_factory=dict)  # fixed keyword options passed to fn
    warmup_calls: int = 0        # extra calls beyond model_calls * steps (e.g. a multistep warm-up)
    follows_schedule: bool = True  # steps land on the given sigmas (False: adaptive step control)
    nfe_rule: Optional[Callable[[int], int]] = None  # exact calls for `steps` when not linear
    # exact calls for a given schedule (floats, repeated neighbours removed) and model kind, where they
    # depend on more than the step count (restart segments, a flow start at sigma = 1)
    nfe_schedule: Optional[Callable[[list, str, dict], int]] = None   # (sigmas, model_kind, options)

    def nfe(self, steps):
        """Model calls for a run of `steps` steps on a schedule ending at 0 (the last step to 0 may
        save calls: see fn docs)."""
        if self.nfe_rule is not None:
            return int(self.nfe_rule(steps))
        return int(round(self.model_calls * steps)) + self.warmup_calls

    def nfe_on(self, sigmas, model_kind="ve"):
        """Model calls for a run on `sigmas` (floats, ending at 0, no repeated neighbours) for the
        model kind; nfe(steps) unless the spec states a schedule rule. An upper bound for samplers
        that do not follow the schedule (adaptive step control)."""
        sig = [float(v) for v in sigmas]
        if self.nfe_schedule is not None:
            return int(self.nfe_schedule(sig, model_kind, self.options))
        return self.nfe(len(sig) - 1)
