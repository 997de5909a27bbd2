"""SAMPLER node for the exponential Runge-Kutta family (samplers/rk_exponential.py); the dropdown entries
lab_res_2s ... lab_etdrk4 (and their _cfg_pp forms) are the same samplers."""
from ..samplers.phi_tableaus import PHI_TABLEAUS
from .sampler_nodes import CATEGORY, _CFG_PP, _spec_named, ksampler

_TIP = "; ".join(f"{t.name} (order {t.order}, {t.stages} calls)" for t in PHI_TABLEAUS.values())


class SamplerLabExponentialRK:
    DESCRIPTION = ("Exponential Runge-Kutta in the data-prediction form (the res_2s / res_3s family, DPM-Solver++ "
                   "singlestep, Cox-Matthews ETDRK): the linear part of the diffusion ODE exact, phi-function weights.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "tableau": (list(PHI_TABLEAUS), {"default": "res_2s", "tooltip": _TIP + "."}),
            "cfg_pp": _CFG_PP}}

    def get_sampler(self, tableau, cfg_pp):
        if tableau not in PHI_TABLEAUS:
            raise ValueError(f"tableau must be one of {', '.join(PHI_TABLEAUS)}, got {tableau!r}")
        return (ksampler(_spec_named("rk_exponential", tableau), {"tableau": tableau}, cfg_pp),)


NODE_CLASS_MAPPINGS = {"SamplerLabExponentialRK": SamplerLabExponentialRK}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabExponentialRK": "Exponential RK Sampler (Sampler Lab)"}
