"""Scheduler specs and the pure description of a model's noise levels."""
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


@dataclass(frozen=True)
class ModelSigmas:
    """What a scheduler may know about the model (built by the bridge from ComfyUI's
    model_sampling, or directly in tests).

    sigmas: the model's discrete noise levels, ascending (ComfyUI's model_sampling.sigmas),
      float; for flow models the shifted flow times.
    kind: "ve" (eps / v models) or "flow" (CONST models).
    percent_to_sigma: maps a fraction of the sampling process in [0, 1] to sigma (ComfyUI's
      model_sampling.percent_to_sigma, shift included); None when not available.
    """
    sigmas: torch.Tensor
    kind: str = "ve"
    percent_to_sigma: Optional[Callable[[float], float]] = None
    shift: float = 1.0

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])


@dataclass(frozen=True)
class SchedulerSpec:
    """One scheduler dropdown entry: fn(model_sigmas, steps) -> steps + 1 sigmas, descending, last 0."""
    name: str
    fn: Callable
    summary: str = ""
    citation: str = ""
    options: dict = field(default_factory=dict)
