"""How far the Step Sweep's ODE reference on the lab models (RK4 uniform in log sigma) is from Lab Net's
exact ODE solution, beside two samplers' errors, on Lab Net eps at cfg 3 (dev tool, not a test).

Exact = bench/units.py's jump-restarted reference (ComfyUI feeds an eps model the nearest of its 1000
timesteps, so the denoiser jumps in sigma). Prints per-sample latent RMSE, median and max.

    .labenv/venv/bin/python bench/sweep_reference_error.py [--samples 10]
"""
import argparse
import os
import sys

import torch

if __package__ in (None, ""):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args(argv)
    common.load_comfy()
    torch.set_num_threads(1)
    import comfy.samplers
    from bench.accuracy import per_sample_rmse
    from bench.units import LabNetUnit, log_sigma_rk4
    unit = LabNetUnit("eps", 3.0, args.samples)
    ms = unit.model_sampling

    def line(label, out, sigmas):
        e = per_sample_rmse(out, unit.reference(sigmas))
        print(f"{label}: median {e.median():.1e}, max {e.max():.1e}")
    sigmas = comfy.samplers.calculate_sigmas(ms, "karras", 32)
    for n in (48, 96):
        line(f"sweep reference, RK4 x {n} in log sigma", unit.run(comfy.samplers.KSAMPLER(
            log_sigma_rk4(n, float(ms.sigma_min))), sigmas)[0], sigmas)
    for name in ("euler", "dpmpp_2m"):
        line(f"{name} at 32 steps (karras)", unit.run(comfy.samplers.sampler_object(name), sigmas)[0], sigmas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
