"""GITS: Geometry-Inspired Time Scheduling (Chen, Zhou, Wang, Shen, Lyu, ICML 2024,
"On the Trajectory Regularity of ODE-based Diffusion Sampling", arXiv:2405.11326).

GITS picks n of the 101 time-uniform points of a fine grid by dynamic programming on a
trajectory-deviation cost (Sec. 4, Algorithm 1); 'coeff' (the reference code's ga_coeff) is
the cost tolerance. The published SD1.5 tables for n = 2..20 and coeff = 0.80..1.50 (step
0.05) are data in schedulers/data/gits.json. More than 20 steps: the 20-step table log-linearly
interpolated (common.loglinear_interp); 1 step: [sigma_max, 0]. The table's last value (SD
sigma_min) becomes 0.

Mapping onto the model, as for AYS (see ays.py): on eps/v models whose sigma_max matches the
table's (SD family) the published sigmas are used as they are (first = 14.61464119, the SD
sigma_max); on other models (flow models included) every sigma goes through its SD timestep
to the same position of the model's own table, so flow shift is honoured.
"""
import torch

from . import common
from .registry import register
from .spec import SchedulerSpec

CITATION = ("Chen et al. On the Trajectory Regularity of ODE-based Diffusion Sampling. ICML 2024, "
            "arXiv:2405.11326; tables from https://github.com/zju-pi/diff-sampler (gits-main)")
MAPPINGS = ("auto", "sigma", "timestep")
_DATA = None


def _tables():
    global _DATA
    if _DATA is None:
        _DATA = common.load_table("gits.json")["tables"]
    return _DATA


def gits_coefficients():
    """The coefficients with published tables (floats, ascending)."""
    return sorted(float(c) for c in _tables())


def gits_table(coeff, steps):
    """Published table (steps + 1 sigmas, float64) for coeff in gits_coefficients(), steps 2..20."""
    key = f"{float(coeff):.2f}"
    if key not in _tables() or abs(float(key) - float(coeff)) > 1e-6:
        raise ValueError(f"coeff must be one of {gits_coefficients()} (GITS tables), got {coeff!r}")
    rows = _tables()[key]
    if str(steps) not in rows:
        raise ValueError(f"GITS tables cover 2..20 steps, got {steps!r}")
    return torch.tensor(rows[str(steps)], dtype=common.F64)


def gits(model_sigmas, steps, coeff=1.20, mapping="auto"):
    """GITS schedule (Chen et al. 2024, Algorithm 1 outputs): steps + 1 sigmas, last 0.

    coeff: GITS' DP tolerance, one of 0.80, 0.85, ..., 1.50 (default 1.20, ComfyUI's
    GITSScheduler default). mapping: "auto", "sigma" or "timestep" (see module docstring).
    """
    common.check_steps(steps)
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
    base = gits_table(coeff, min(max(steps, 2), 20))
    if steps == 1:
        sigmas = base[:1]
    elif steps <= 20:
        sigmas = base[:-1]
    else:
        sigmas = common.loglinear_interp(base, steps + 1)[:-1]
    if mapping == "auto":
        same = model_sigmas.kind == "ve" and abs(model_sigmas.sigma_max / float(base[0]) - 1.0) < 1e-3
        mapping = "sigma" if same else "timestep"
    if mapping == "timestep":
        ref = common.sd_reference_sigmas()
        pinned = common.pin_table_ends(sigmas, base, float(ref[-1]), float(ref[0]))
        fraction = common.fraction_in_table(pinned, ref)
        sigmas = common.fraction_to_model(model_sigmas, fraction)
    return common.finish(sigmas)


def _gits_default(model_sigmas, steps):
    """GITS with coeff 1.20, mapping 'auto'; see gits()."""
    return gits(model_sigmas, steps)


register(SchedulerSpec(
    name="lab_gits", fn=_gits_default,
    summary=("GITS (coeff 1.20): published SD1.5 DP-optimised schedule for 2..20 steps, "
             "log-linear interpolation above; other models get the same timesteps on their own grid"),
    citation=CITATION, options={"coeff": 1.20, "mapping": "auto"}))
