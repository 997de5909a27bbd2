"""Memory benchmark (issue #9): peak extra latents a sampler holds (history buffers, stages), pack
samplers next to their ComfyUI matches, in units of one latent.

    .labenv/venv/bin/python bench/memory.py [--quick] [--device cuda]

Every latent-sized tensor a torch function returns during the run is tracked by weak reference
(a TorchFunctionMode); at every model call and every callback the distinct storages still alive are
counted (the input latent excluded); the peak is reported. This sees what the sampler holds between
operations (x, denoised, history, stages, noise), not temporaries inside one fused expression. CUDA (when
available): also torch.cuda.max_memory_allocated above the start, divided by one latent's bytes
(includes temporaries). Writes bench/results/memory{,_cuda}.{json,md}.
"""
import argparse
import os
import sys
import time
import weakref

import torch
from torch.overrides import TorchFunctionMode

if __package__ in (None, ""):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # noqa: E402
from bench.overhead import MATCH, QUICK, model_sampling  # noqa: E402
from bench.standin import StandInModel  # noqa: E402

SHAPE = (1, 4, 64, 64)


class LatentTracker(TorchFunctionMode):
    """Keeps weak references to every latent-sized tensor a torch function returns while active;
    live() counts the distinct storages still alive (tensors made before the run are not seen)."""

    def __init__(self, numel, exclude):
        super().__init__()
        self.numel, self.exclude, self.refs = numel, set(exclude), []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and t.numel() == self.numel:
                self.refs.append(weakref.ref(t))
        return out

    def live(self):
        self.refs = [r for r in self.refs if r() is not None]
        return len({r().untyped_storage().data_ptr() for r in self.refs} - self.exclude)


def measure(name, model, x, sigmas, device):
    """Peak extra latents (tracked tensors) and, on CUDA, peak extra bytes / latent bytes."""
    import comfy.samplers
    ks = comfy.samplers.sampler_object(name)
    x_in = x.clone()
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    model.reset()
    peak = {"n": 0}
    with LatentTracker(x.numel(), {x_in.untyped_storage().data_ptr()}) as tracker:
        def probe(*_):
            peak["n"] = max(peak["n"], tracker.live())
        model.on_call = probe
        ks.sampler_function(model, x_in, sigmas.clone(), extra_args={"seed": 0}, callback=probe, disable=True,
                            **ks.extra_options)
    model.on_call = None
    row = {"sampler": name, "calls": model.calls, "peak_extra_latents": peak["n"]}
    if cuda:
        torch.cuda.synchronize()
        row["cuda_peak_extra_latents"] = (torch.cuda.max_memory_allocated() - start) / (x.numel() * x.element_size())
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default=common.RESULTS)
    a = ap.parse_args(argv)
    common.load_comfy(a.device)
    import comfy.samplers
    names = set(comfy.samplers.SAMPLER_NAMES)
    pairs = [(p, c) for p, c in MATCH.items() if p in names and c in names and (not a.quick or p in QUICK)]
    ms = model_sampling("eps")
    model = StandInModel(ms, False, a.device, work=32, repeats=1)
    steps = 4 if a.quick else a.steps
    sigmas = comfy.samplers.calculate_sigmas(ms, "karras", steps).to(a.device)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)).to(a.device) * float(sigmas[0])
    t0, cache, rows = time.perf_counter(), {}, []
    for p, c in pairs:
        for n in (p, c):
            if n not in cache:
                cache[n] = measure(n, model, x, sigmas, a.device)
        rows.append({"pack": cache[p], "core": cache[c]})
    meta = {"machine": common.machine(a.device), "device": a.device, "date": common.today(), "shape": list(SHAPE),
            "steps": steps, "comfyui": common.comfy_version(), "seconds": time.perf_counter() - t0}
    md = markdown(rows, meta)
    tag = "" if a.device == "cpu" else "_" + a.device
    common.write_text(os.path.join(a.out, f"memory{tag}.md"), md + "\n")
    common.write_json(os.path.join(a.out, f"memory{tag}.json"), {"meta": meta, "rows": rows})
    print(md)
    return 0


def markdown(rows, meta):
    cuda = meta["device"] == "cuda"
    head = ["pack sampler", "extra latents", "core match", "extra latents"]
    if cuda:
        head += ["CUDA peak (pack)", "CUDA peak (core)"]
    body = []
    for r in rows:
        p, c = r["pack"], r["core"]
        line = [p["sampler"], p["peak_extra_latents"], c["sampler"], c["peak_extra_latents"]]
        if cuda:
            line += [common.fmt(p["cuda_peak_extra_latents"]), common.fmt(c["cuda_peak_extra_latents"])]
        body.append(line)
    return (f"Peak extra latents held by the sampler (latent-sized tensors created by the run and still alive at "
            f"model calls and callbacks, the input excluded; includes x, denoised and noise buffers): {meta['machine']}; "
            f"{meta['steps']} karras steps on {tuple(meta['shape'])}; {meta['date']}.\n\n"
            + common.md_table(head, body))


if __name__ == "__main__":
    sys.exit(main())
