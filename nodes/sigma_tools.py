"""SIGMAS tools core 0.3.75 lacks: from typed text, blend two schedules, rescale to a new step count."""
from ..schedulers.tools import blend, parse_sigmas, rescale

CATEGORY = "sampling/Sampler Lab/sigmas"


class SamplerLabSigmasFromText:
    DESCRIPTION = "SIGMAS typed as a list, e.g. from a paper or a diffusers log: '14.61, 6.47, 3.86, 2.69, 1.88, 1.39, 0.98, 0.65, 0.39, 0.17, 0.03, 0'."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("STRING", {"default": "14.6146, 6.4745, 3.8636, 2.6946, 1.8841, 1.3943, 0.9642, 0.6523, 0.3977, 0.1515, 0.0292, 0",
                                                   "multiline": True, "tooltip":
                                                   "Numbers separated by commas, spaces or semicolons; non-increasing, >= 0. End with 0 for a full run."})}}

    def make(self, sigmas):
        return (parse_sigmas(sigmas),)


class SamplerLabBlendSigmas:
    DESCRIPTION = "Blends two schedules step by step in log sigma (b is first resampled to a's step count)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "blend"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sigmas_a": ("SIGMAS", {"tooltip": "First schedule (sets the step count)."}),
            "sigmas_b": ("SIGMAS", {"tooltip": "Second schedule."}),
            "weight": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "0 = all a, 1 = all b."}),
        }}

    def blend(self, sigmas_a, sigmas_b, weight):
        return (blend(sigmas_a, sigmas_b, weight),)


class SamplerLabRescaleSigmas:
    DESCRIPTION = "The same schedule shape with a different number of steps (log-linear resampling, as Align Your Steps does)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "rescale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sigmas": ("SIGMAS", {"tooltip": "The schedule to resample."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "New number of steps."}),
        }}

    def rescale(self, sigmas, steps):
        return (rescale(sigmas, steps),)


NODE_CLASS_MAPPINGS = {"SamplerLabSigmasFromText": SamplerLabSigmasFromText, "SamplerLabBlendSigmas": SamplerLabBlendSigmas,
                       "SamplerLabRescaleSigmas": SamplerLabRescaleSigmas}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabSigmasFromText": "Sigmas From Text (Sampler Lab)",
                              "SamplerLabBlendSigmas": "Blend Sigmas (Sampler Lab)",
                              "SamplerLabRescaleSigmas": "Rescale Sigmas (Sampler Lab)"}
