"""SIGMAS nodes for the OSS tables (schedulers/oss.py) and the tangent schedule (schedulers/tangent.py);
the dropdown entries lab_oss_* and lab_bong_tangent use their defaults."""
from ..schedulers.oss import MAPPINGS, MODEL_TYPES, oss
from ..schedulers.tangent import tangent
from .schedule_nodes import _ScheduleNode


class SamplerLabOptimalSteps(_ScheduleNode):
    DESCRIPTION = ("Optimal Steps / OSS (Pei et al. 2025): published FLUX (10-step), Wan (20) and Chroma (40) "
                   "schedules, log-linear interpolated to any step count; in the dropdown as lab_oss_*.")
    PARAMS = {"model_type": (list(MODEL_TYPES), {"default": "flux", "tooltip": "Which published table."}),
              "mapping": (list(MAPPINGS), {"default": "model", "tooltip":
                          "model: ends pinned to this model's sigma range (the dropdown's choice); table: the "
                          "values as published, like core's OptimalStepsScheduler."})}

    def compute(self, ms, n, model_type, mapping):
        return oss(ms, n, model_type=model_type, mapping=mapping)


class SamplerLabTangentSchedule(_ScheduleNode):
    DESCRIPTION = ("Tangent-shaped schedule: noise falls along an arctan curve over the model's timesteps, fastest "
                   "at the pivot (the shape known as bong_tangent); in the dropdown as lab_bong_tangent.")
    PARAMS = {"pivot": ("FLOAT", {"default": 0.6, "min": 0.01, "max": 0.99, "step": 0.01, "tooltip":
                        "Where along the run (fraction of the steps) the noise falls fastest."}),
              "slope": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.1, "tooltip":
                        "How sharply: small = close to uniform timesteps ('simple'), large = a drop at the pivot."})}

    def compute(self, ms, n, pivot, slope):
        return tangent(ms, n, pivot=pivot, slope=slope)


_NODES = {
    "SamplerLabOptimalSteps": (SamplerLabOptimalSteps, "Optimal Steps (OSS) Schedule"),
    "SamplerLabTangentSchedule": (SamplerLabTangentSchedule, "Tangent Schedule"),
}
NODE_CLASS_MAPPINGS = {k: v[0] for k, v in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {k: v[1] + " (Sampler Lab)" for k, v in _NODES.items()}
