"""A stand-in diffusion model of known cost for the speed and memory benchmarks.

StandInModel(x, sigma) does a fixed matmul workload (the "network"), times it, and returns the
exact denoiser of unit-variance Gaussian data (so every sampler stays finite), in ComfyUI's
x-space: VE D = x / (1 + s^2); flow D = (1 - s) x / ((1 - s)^2 + s^2). The wrapper exposes
inner_model.model_patcher.get_model_object("model_sampling") and inner_model.inner_model.model_sampling
like ComfyUI's sampler wrapper,
so core samplers that read model_sampling (uni_pc, res_multistep, ...) and the pack's bridge work.
"""
import time
from types import SimpleNamespace

import torch


class StandInModel:
    def __init__(self, model_sampling, flow, device="cpu", work=256, repeats=4):
        self.flow = flow
        self.device = torch.device(device)
        self.weight = torch.randn(work, work, device=self.device, generator=None) / work ** 0.5
        self.buf = torch.randn(work, work, device=self.device)
        self.repeats = repeats
        self.calls = 0
        self.model_seconds = 0.0
        self.on_call = None
        ms = model_sampling
        self.inner_model = SimpleNamespace(model_sampling=ms, inner_model=SimpleNamespace(model_sampling=ms),
                                           model_patcher=SimpleNamespace(get_model_object=lambda name: ms))

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset(self):
        self.calls, self.model_seconds = 0, 0.0

    def __call__(self, x, sigma, **extra_args):
        self._sync()
        t = time.perf_counter()
        y = self.buf
        for _ in range(self.repeats):      # the "network": a fixed workload of known cost
            y = torch.tanh(y @ self.weight)
        s = sigma.reshape(-1)[0].to(x.dtype) if torch.is_tensor(sigma) else sigma
        if self.flow:
            out = x * ((1 - s) / ((1 - s) ** 2 + s ** 2))
        else:
            out = x * (1.0 / (1.0 + s * s))
        out = out + 0 * y[0, 0].to(x.dtype)   # keep the workload live
        self._sync()
        self.model_seconds += time.perf_counter() - t
        self.calls += 1
        if self.on_call is not None:
            self.on_call()
        return out
