"""The models of a step sweep cell: the MODEL with the shift axis's model-sampling shift applied
(as core's ModelSamplingSD3 / ModelSamplingAuraFlow / ModelSamplingFlux nodes apply it), and the
second model of a boundary axis.

Core patches the shift in by cloning the patcher and adding an object patch "model_sampling" with a
fresh model-sampling object of the model's family (comfy_extras/nodes_model_advanced.py, 0.3.75):
  SD3, Wan, Lab Net flow, ...: ModelSamplingDiscreteFlow + CONST, set_parameters(shift, multiplier)
                               (multiplier 1000; AuraFlow's node uses 1.0: kept from the model)
  Flux:                        ModelSamplingFlux + CONST, set_parameters(shift) (its shift is the mu
                               of flux_time_shift, which ModelSamplingFlux's node computes from the
                               resolution; the axis sets it directly)
Discrete eps / v models (ModelSamplingDiscrete) have no shift in core: the axis refuses them with
an error rather than change what they are. The schedule of every cell is then computed from the
shifted model sampling, which is what makes the shift matter.
"""
import comfy.model_sampling

from ..schedulers.boundary import split_index_at_fraction, split_index_at_sigma
from ..sweep.axes import SweepAxisError
from ..sweep.boundary_axis import boundary_mode
from .handoff_nodes import timestep_to_sigma


def _family(model_sampling):
    """Core's model-sampling base class for a shift of this model, or None when it has none."""
    if not isinstance(model_sampling, comfy.model_sampling.CONST):
        return None
    for base in (comfy.model_sampling.ModelSamplingFlux, comfy.model_sampling.ModelSamplingDiscreteFlow):
        if isinstance(model_sampling, base):
            return base
    return None


def shifted_model(patcher, shift):
    """A clone of `patcher` whose model sampling has `shift`, built as core's ModelSampling node for
    the model's family builds it. SweepAxisError for a model without a shift."""
    ms = patcher.get_model_object("model_sampling")
    base = _family(ms)
    if base is None:
        kind = ", ".join(c.__name__ for c in type(ms).__bases__) or type(ms).__name__   # e.g. ModelSamplingDiscrete, EPS
        raise SweepAxisError(f"shift axis: this model's sampling ({kind}) has no shift; the shift axis "
                             f"is for flow models (SD3, Flux, Wan, AuraFlow, Lab Net flow). For an eps / v model "
                             f"remove the axis (or sweep the scheduler instead)")

    class ModelSamplingAdvanced(base, comfy.model_sampling.CONST):      # as in nodes_model_advanced.py
        pass

    new = ModelSamplingAdvanced(patcher.model.model_config)
    if base is comfy.model_sampling.ModelSamplingFlux:
        new.set_parameters(shift=float(shift))
    else:
        new.set_parameters(shift=float(shift), multiplier=getattr(ms, "multiplier", 1000))
    # newer core's ModelSamplingSD3 carries the patched model's noise_scale over (Comfy-Org/ComfyUI PR #13892,
    # noted in tests/data/comfy_api_record.json); 0.3.75 has none
    if getattr(ms, "noise_scale", None) is not None and hasattr(new, "set_noise_scale"):
        new.set_noise_scale(ms.noise_scale)
    m = patcher.clone()
    m.add_object_patch("model_sampling", new)
    return m


class CellModels:
    """The patchers a cell samples with, made once per sweep: (high, low) for a shift value (None:
    the models as connected). low is None without a second model."""

    def __init__(self, model, model_low=None):
        self.model, self.model_low = model, model_low
        self.made = {}

    def get(self, shift, low=False):
        base = self.model_low if low else self.model
        if shift is None or base is None:
            return base
        key = (float(shift), bool(low))
        if key not in self.made:
            self.made[key] = shifted_model(base, shift)
        return self.made[key]


def boundary_switch(sigmas, value, patcher, where="the schedule"):
    """Steps on the high-noise side of a cell's schedule for a boundary axis value ('0.875', 't875',
    '75%'; sweep/boundary_axis.py), by schedulers/boundary.py's rule. A boundary outside the schedule
    is a SweepAxisError naming the value and the range (`where`: which schedule, for the message)."""
    mode, number = boundary_mode(value)
    if mode == "fraction":
        return split_index_at_fraction(sigmas, number)
    sigma = number
    if mode == "timestep":
        try:
            sigma = timestep_to_sigma(patcher.get_model_object("model_sampling"), number)
        except ValueError as e:
            raise SweepAxisError(f"boundary axis: {value!r}: {e} (on this axis a sigma is the number without the "
                                 f"t)") from None
    try:
        return split_index_at_sigma(sigmas, sigma)     # its range check, reworded for the axis below
    except ValueError:
        first, last = float(sigmas[0]), float(sigmas[-1])
        given = f"{value!r}" if mode == "sigma" else f"{value!r} (sigma {sigma:.6g})"
        raise SweepAxisError(f"boundary axis: {given} is outside {where}, which runs from sigma {first:.6g} to "
                             f"{last:.6g}: pick boundaries in that range (the model's own sigmas; flow models: "
                             f"timestep / 1000) or give them as a percentage of the steps (e.g. 75%)") from None
