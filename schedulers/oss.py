"""Optimal Steps / OSS (Pei, Hu, Gu 2025, "Optimal Stepsize for Diffusion Sampling", arXiv:2503.21774).

OSS finds a step schedule by dynamic programming against a many-step teacher trajectory. Its
published tables for FLUX (10 steps), Wan (20) and Chroma (40) are data in schedulers/data/oss.json
(the values ComfyUI ships in its OptimalStepsScheduler node, which cites the paper's repository).
Other step counts: log-linear interpolation over the normalised step position (common.loglinear_interp,
the rule core's node uses). The table's last value (0.001) becomes 0.

Where the numbers land ("mapping"):
- "table": the values as published, for any model (core's OptimalStepsScheduler: the FLUX table
  starts at 0.9968, Chroma's at 0.992).
- "model" (what the dropdown entries use): flow models get the table's interior values as they are
  with its two ends pinned to the model's sigma_max / sigma_min (common.pin_table_ends, which moves
  only the first and last segments), so the schedule starts from pure noise like every dropdown
  schedule; eps / v models read each value as a timestep fraction (1 = sigma_max) of their own table
  (the tables were made for flow models; this only keeps the shape).
"""
import torch

from . import common
from .registry import register
from .spec import SchedulerSpec

CITATION = ("Pei, Hu, Gu. Optimal Stepsize for Diffusion Sampling. arXiv:2503.21774 (2025); tables from "
            "https://github.com/bebebe666/OptimalSteps as shipped in ComfyUI's nodes_optimalsteps.py")
MODEL_TYPES = ("flux", "wan", "chroma")
MAPPINGS = ("model", "table")
_DATA = None


def oss_table(model_type):
    """The published noise levels (n + 1 values for n native steps) for model_type in MODEL_TYPES."""
    global _DATA
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if _DATA is None:
        _DATA = common.load_table("oss.json")["tables"]
    return _DATA[model_type]["sigmas"]


def oss(model_sigmas, steps, model_type="flux", mapping="model"):
    """OSS schedule: steps + 1 sigmas, last 0 (see the module docstring for model_type and mapping)."""
    common.check_steps(steps)
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    table = torch.tensor(oss_table(model_type), dtype=common.F64)
    sigmas = common.loglinear_interp(table, steps + 1)[:-1]
    if mapping == "model":
        if model_sigmas.kind == "flow":
            sigmas = common.pin_table_ends(sigmas, table, model_sigmas.sigma_max, model_sigmas.sigma_min)
        else:
            lo, hi = float(table[-1]), float(table[0])
            sigmas = common.fraction_to_model(model_sigmas, (sigmas - lo) / (hi - lo))
        sigmas[0] = model_sigmas.sigma_max
    return common.finish(sigmas)


def _preset(model_type):
    def fn(model_sigmas, steps):
        return oss(model_sigmas, steps, model_type=model_type)
    fn.__name__ = f"oss_{model_type}"
    fn.__doc__ = f"OSS, {model_type} table, mapping='model'; see oss()."
    return fn


for _type, _label, _n in (("flux", "FLUX", 10), ("wan", "Wan", 20), ("chroma", "Chroma", 40)):
    register(SchedulerSpec(
        name=f"lab_oss_{_type}", fn=_preset(_type),
        summary=(f"Optimal Steps (OSS), published {_label} {_n}-step schedule (exact interior at {_n} steps, "
                 "log-linear interpolation otherwise), ends pinned to the model's range"),
        citation=CITATION, options={"model_type": _type, "mapping": "model"}))
