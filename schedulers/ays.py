"""Align Your Steps (Sabour, Fidler, Kreis, ICML 2024, arXiv:2404.14507).

The published 10-step noise levels (schedulers/data/ays.json, from NVIDIA's AYS how-to page)
for SD1.5, SDXL and SVD; any other step count by the paper's log-linear interpolation of
log-sigma over the normalised step position (common.loglinear_interp).

Where the numbers land on the model ("mapping"):
- "sigma": the published sigmas as they are (what the paper optimised). Used by "auto" when
  the model's sigma_max equals the table's first value to the table's precision (SD1.x/SDXL
  tables on SD-family eps/v models: 14.615 vs the model's 14.6146; SVD: 700). Then the first
  sigma is the published 14.615, not the model's 14.6146: a documented 3e-5 relative gap.
- "timestep": each published sigma is turned into its position in the model family it was
  made for (SD1.x/SDXL: the fractional timestep of the SD discrete schedule; SVD: the position
  in its log-uniform EDM range 0.002..700) and read at the same position of this model's own
  sigma table. For flow models (SD3, Flux, Wan) this is exactly "the AYS timesteps on the
  flow model's timestep grid", so the model's shift is honoured and the schedule starts at
  sigma_max. "auto" uses it for every model the table was not made for.
The table's first / last values are the family's sigma_max / sigma_min to 3 decimals; the
timestep mapping pins them to the exact ends first (common.pin_table_ends; interior values
are untouched). The last published value becomes 0 in the output (as in diffusers'
AysSchedules and ComfyUI's AlignYourStepsScheduler).
"""
import torch

from . import common
from .registry import register
from .spec import SchedulerSpec

CITATION = ("Sabour, Fidler, Kreis. Align Your Steps: Optimizing Sampling Schedules in Diffusion "
            "Models. ICML 2024, arXiv:2404.14507; tables from "
            "https://research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html")
MODEL_TYPES = ("sd15", "sdxl", "svd")
MAPPINGS = ("auto", "sigma", "timestep")
_DATA = None


def ays_table(model_type):
    """The published entry for model_type in MODEL_TYPES: a dict whose "sigmas" are the 11
    (10-step) noise levels, plus the reference family they were made for."""
    global _DATA
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if _DATA is None:
        _DATA = common.load_table("ays.json")["tables"]
    return _DATA[model_type]


def _reference_fraction(entry, sigmas):
    """Position in [0, 1] (1 = sigma_max) of sigmas in the family the table was made for; the
    table's first / last values are pinned to that family's exact sigma_max / sigma_min."""
    table = entry["sigmas"]
    if entry["reference"] == "sd_discrete":
        ref = common.sd_reference_sigmas()
        return common.fraction_in_table(common.pin_table_ends(sigmas, table, float(ref[-1]), float(ref[0])), ref)
    lo, hi = entry["reference_sigma_min"], entry["reference_sigma_max"]
    return common.fraction_log_uniform(common.pin_table_ends(sigmas, table, hi, lo), lo, hi)


def _resolve_mapping(model_sigmas, table, mapping):
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    if mapping != "auto":
        return mapping
    same_family = model_sigmas.kind == "ve" and abs(model_sigmas.sigma_max / float(table[0]) - 1.0) < 1e-3
    return "sigma" if same_family else "timestep"


def ays(model_sigmas, steps, model_type="sdxl", mapping="auto"):
    """Align Your Steps schedule: steps + 1 sigmas, last 0.

    Sabour et al. 2024, Sec. 3 (optimised 10-step schedules) and Sec. 3.3 / the how-to page
    (log-linear interpolation to other step counts). model_type: "sd15", "sdxl" or "svd";
    mapping: "auto", "sigma" or "timestep" (see the module docstring).
    """
    common.check_steps(steps)
    entry = ays_table(model_type)
    table = torch.tensor(entry["sigmas"], dtype=common.F64)
    sigmas = common.loglinear_interp(table, steps + 1)[:-1]
    if _resolve_mapping(model_sigmas, table, mapping) == "timestep":
        sigmas = common.fraction_to_model(model_sigmas, _reference_fraction(entry, sigmas))
    return common.finish(sigmas)


def _preset(model_type):
    def fn(model_sigmas, steps):
        return ays(model_sigmas, steps, model_type=model_type)
    fn.__name__ = f"ays_{model_type}"
    fn.__doc__ = f"Align Your Steps, {model_type} table (mapping='auto'); see ays()."
    return fn


for _type, _label in (("sd15", "SD1.5"), ("sdxl", "SDXL"), ("svd", "SVD")):
    register(SchedulerSpec(
        name=f"lab_ays_{_type}", fn=_preset(_type),
        summary=(f"Align Your Steps, published {_label} 10-step schedule (exact at 10 steps, "
                 "log-linear interpolation otherwise); other model families and flow models "
                 "get the same timesteps on their own grid"),
        citation=CITATION, options={"model_type": _type, "mapping": "auto"}))
