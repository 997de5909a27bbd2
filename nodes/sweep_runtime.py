"""ComfyUI side of the step sweep: running one cell through ComfyUI's own guider/sampler
machinery, counting model calls, timing sampling alone, rescaling ControlNet end percent,
decoding for the grid, and fingerprinting the inputs for the resume cache.

Model calls are counted with a sampler_post_cfg_function: ComfyUI runs it once per denoiser
evaluation (after CFG), whether cond and uncond went through the model in one batch or two,
so the count is the NFE a sampler spec talks about. Sampling time is measured inside a
SAMPLER_SAMPLE wrapper: model loading and conditioning preparation stay outside it.
"""
import copy
import time

import numpy as np
import torch
import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.sample
import comfy.samplers

from ..lab.decode import latent_to_rgb
from ..lab.reference import reference_solution
from ..sweep.axes import SweepAxisError
from ..sweep.plan import resample_sigmas, stable_hash, tensor_digest
from .sweep_models import CellModels

WRAPPER_KEY = "sampler_lab_sweep"


class RunMeter:
    """Counts denoiser evaluations and times the sampler proper for the run in progress."""

    def __init__(self):
        self.reset()
        self.cuda = comfy.model_management.get_torch_device().type == "cuda"

    def reset(self):
        self.calls = 0
        self.sample_s = 0.0
        self.call_times = []

    def post_cfg(self, args):
        self.calls += 1
        if len(self.call_times) < 3:
            self.call_times.append(time.perf_counter())
        return args["denoised"]

    def sampler_wrapper(self, executor, *args, **kwargs):
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            return executor(*args, **kwargs)
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.sample_s += time.perf_counter() - t0

    def install(self, model_options):
        """A clone of model_options with the counter and the timer added (the original is untouched)."""
        opts = comfy.model_patcher.create_model_options_clone(model_options)
        comfy.model_patcher.set_model_options_post_cfg_function(opts, self.post_cfg)
        comfy.patcher_extension.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY,
                                                     self.sampler_wrapper, opts, is_model_options=True)
        return opts


# ControlNet end percent -----------------------------------------------------------------------
def _copy_control(control, end, memo):
    if control is None:
        return None
    if id(control) in memo:
        return memo[id(control)][1]
    new = control.copy() if hasattr(control, "copy") else copy.copy(control)
    start = float(control.timestep_percent_range[0])
    new.timestep_percent_range = (start, max(start, float(end)))
    new.set_previous_controlnet(_copy_control(getattr(control, "previous_controlnet", None), end, memo))
    memo[id(control)] = (control, new)      # keep the original alive so its id stays unique
    return new


def rescale_control_end(entries, end, memo, raw=True):
    """Conditioning with every attached ControlNet's end_percent set to `end` (chains included;
    controls shared between positive and negative stay shared through `memo`). raw: CONDITIONING
    lists [[tensor, dict]]; else ComfyUI's converted conds (list of dicts). Returns (entries, found)."""
    out, found = [], False
    for item in entries or []:
        d = (item[1] if raw else item).copy()
        if d.get("control") is not None:
            d["control"] = _copy_control(d["control"], end, memo)
            found = True
        out.append([item[0], d] if raw else d)
    return out, found


# Guiders ----------------------------------------------------------------------------------------
class GuiderFactory:
    """Builds the guider of a cell: the connected GUIDER (copied) or a CFGGuider from MODEL and
    CONDITIONING, with the meter's model_options; on the cell's shifted model (shift axis) and, for
    the steps below a boundary, on model_low (nodes/sweep_models.py)."""

    def __init__(self, model, positive, negative, guider, meter, model_low=None):
        if guider is None and (positive is None or negative is None):
            raise SweepAxisError("connect positive and negative CONDITIONING (or a GUIDER)")
        self.model, self.positive, self.negative, self.guider = model, positive, negative, guider
        self.models = CellModels(guider.model_patcher if guider is not None else model, model_low)
        self.options = meter.install(guider.model_options if guider is not None else model.model_options)
        self.options_low = meter.install(model_low.model_options) if model_low is not None else None
        self.built = {}

    def get(self, cfg, controlnet_end, cfg_swept, shift=None, low=False):
        """The guider for these settings, built once per sweep (a guider copies its conds at
        every sample() call, so one object serves every cell that shares cfg and ControlNet end)."""
        key = (float(cfg), controlnet_end, bool(cfg_swept), shift, bool(low))
        if key not in self.built:
            self.built[key] = self.build(cfg, controlnet_end, cfg_swept, self.models.get(shift, low))
            self.built[key].model_options = self.options_low if low else self.options
        return self.built[key]

    def patcher(self, shift=None):
        """The (shifted) model the cells' schedules come from."""
        return self.models.get(shift)

    def build(self, cfg, controlnet_end, cfg_swept, patcher):
        memo = {}
        if self.guider is None:
            pos, neg = self.positive, self.negative
            if controlnet_end is not None:
                pos, f1 = rescale_control_end(pos, controlnet_end, memo)
                neg, f2 = rescale_control_end(neg, controlnet_end, memo)
                if not (f1 or f2):
                    raise SweepAxisError("controlnet_end axis: the conditioning has no ControlNet attached; apply "
                                         "one (Apply ControlNet) before this node or remove the axis")
            g = comfy.samplers.CFGGuider(patcher)
            g.set_conds(pos, neg)
            g.set_cfg(cfg)
        else:
            g = copy.copy(self.guider)
            g.model_patcher = patcher          # the shifted clone on a shift axis (core guiders sample with it)
            if controlnet_end is not None:
                conds, found = {}, False
                for k, v in self.guider.original_conds.items():
                    conds[k], f = rescale_control_end(v, controlnet_end, memo, raw=False)
                    found = found or f
                if not found:
                    raise SweepAxisError("controlnet_end axis: the GUIDER's conditioning has no ControlNet attached")
                g.original_conds = conds
            if cfg_swept:
                try:
                    g.set_cfg(cfg)
                except (AttributeError, TypeError):
                    raise SweepAxisError(f"cfg axis: the connected {type(self.guider).__name__} has no single cfg "
                                         f"to set; remove the cfg axis or use MODEL + CONDITIONING") from None
        return g


# Sigmas, samplers, noise ----------------------------------------------------------------------
def cell_sigmas(patcher, sampler_name, scheduler, steps, denoise, sigmas_input=None):
    """The sigmas ComfyUI's KSampler would use (discarded penultimate sigma for dpm_2/uni_pc,
    denoise tail); scheduler 'input' resamples the connected SIGMAS to `steps` steps."""
    if scheduler == "input":
        if denoise < 0.9999:
            full = resample_sigmas(sigmas_input, max(steps, int(steps / denoise)))
            return full[-(steps + 1):]
        return resample_sigmas(sigmas_input, steps)
    name = sampler_name if sampler_name in comfy.samplers.KSampler.SAMPLERS else "euler"
    ks = comfy.samplers.KSampler(patcher, steps=steps, device="cpu", sampler=name, scheduler=scheduler,
                                 denoise=denoise, model_options=patcher.model_options)
    return ks.sigmas.cpu()


def sampler_object(name, sampler_input=None):
    if name == "input":
        return sampler_input
    return comfy.samplers.sampler_object(name)


def prepare_latent(patcher, latent, seed):
    """(latent_image, noise, noise_mask) exactly as ComfyUI's KSampler prepares them."""
    image = comfy.sample.fix_empty_latent_channels(patcher, latent["samples"])
    noise = comfy.sample.prepare_noise(image, seed, latent.get("batch_index"))
    return image, noise, latent.get("noise_mask")


# The lab models' reference ----------------------------------------------------------------------
def ode_reference_label(steps):
    return f"ODE solution, RK4 in log sigma x {int(steps)} steps, float64"


def ode_reference_sampler(steps):
    """A SAMPLER that solves the guided probability-flow ODE to high accuracy: `steps` classic RK4
    steps uniform in log sigma (lab/reference.py; 4 model calls each, float64 state) from the
    schedule's first sigma to its last nonzero one, then the denoised value there, which is where
    every ComfyUI sampler's answer ends. A different method from every sampler in the dropdowns
    (none steps in log sigma with RK4), so no row of a sweep is scored against itself."""
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}
        dtype = x.dtype

        def denoise(xx, sigma):
            s = xx.new_ones([xx.shape[0]], dtype=dtype) * float(sigma)
            return model(xx.to(dtype), s, **extra_args).to(torch.float64)
        s = [float(v) for v in sigmas]
        to_zero = s[-1] == 0.0 and len(s) > 1
        start, end = s[0], (s[-2] if to_zero else s[-1])
        state = x.to(torch.float64)
        if end < start:
            taus = torch.linspace(float(np.log(start)), float(np.log(end)), int(steps) + 1, dtype=torch.float64)
            for i in range(int(steps)):
                state = reference_solution(denoise, state, float(taus[i].exp()), float(taus[i + 1].exp()), steps=1)
                if callback is not None:
                    sig = float(taus[i + 1].exp())
                    callback({"x": state.to(dtype), "i": min(i, len(s) - 2), "sigma": sig, "sigma_hat": sig,
                              "denoised": state.to(dtype)})
        if to_zero:
            state = denoise(state, end)
        return state.to(dtype)
    return comfy.samplers.KSAMPLER(sample)


# Decoding ---------------------------------------------------------------------------------------
def is_lab_model(patcher):
    return getattr(getattr(patcher, "model", None), "lab_settings", None) is not None


def to_uint8_tensor(images):
    """float in [0, 1] -> uint8 tensor (same device)."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)


def to_uint8(images):
    """(N, H, W, 3) float in [0, 1] -> uint8 numpy."""
    return to_uint8_tensor(images).cpu().numpy()


def enlarge_blocks(images, factor):
    """uint8 (K, h, w, 3) -> (K, h*factor, w*factor, 3), each pixel a factor x factor block. Pixels are
    moved as single 3-byte items (a broadcast copy 2-4x faster than repeating channels)."""
    k, h, w, c = images.shape
    pixels = np.ascontiguousarray(images).view(np.dtype((np.void, c)))[..., 0]           # (K, h, w)
    big = np.broadcast_to(pixels[:, :, None, :, None], (k, h, factor, w, factor))
    return np.ascontiguousarray(big).view(np.uint8).reshape(k, h * factor, w * factor, c)


class Decoder:
    """Pictures for the grid and for image-space metrics.

    kind 'vae': the connected VAE (decoded on ComfyUI's device, in the sampling thread); metrics
    on the decoded images. kind 'lab': the lab model's exact colour map at the latent's own
    resolution, for the metrics and (each pixel an 8x8 block) the picture. kind 'preview':
    latent-to-RGB approximation for other models without a VAE; no image metrics."""

    def __init__(self, patcher, vae):
        self.vae = vae
        self.kind = "vae" if vae is not None else ("lab" if is_lab_model(patcher) else "preview")
        self.fmt = patcher.model.latent_format

    def vae_images(self, latent):
        img = self.vae.decode(latent)
        return to_uint8(img.reshape((-1,) + tuple(img.shape[-3:]))[..., :3])

    def metric_images(self, latent, decoded=None):
        """uint8 (N, H, W, 3) for PSNR/SSIM, or None when the pictures are only a preview."""
        if self.kind == "vae":
            return decoded if decoded is not None else self.vae_images(latent)
        if self.kind == "lab":
            return to_uint8(latent_to_rgb(latent, upscale=1))
        return None

    def display_image(self, decoded):
        """uint8 (H, W, 3): the first decoded image at full size (kind 'vae')."""
        return np.ascontiguousarray(decoded[0])

    def batch_pictures(self, latents, max_side=4096):
        """Kinds 'lab' and 'preview', for K cells at once: latents stacked (K, *latent shape) ->
        (metric images, uint8 tensor (K, n, h, w, 3), or None for 'preview'; pictures, uint8 numpy
        (K, H, W, 3): each cell's first image). The lab picture is the image its metrics use, its
        exact colour map at the latent's resolution, each latent pixel shown as a block of 8x8 (the
        size of a decoded image) or fewer pixels when that would pass max_side (no enlarging to
        shrink again)."""
        k = latents.shape[0]
        if self.kind == "lab":
            rgb = latent_to_rgb(latents.reshape(-1, *latents.shape[2:]), upscale=1)      # (K * n, h, w, 3)
            metric = to_uint8_tensor(rgb).reshape(k, -1, *rgb.shape[1:])
            block = max(1, min(8, int(max_side) // max(rgb.shape[1:3])))
            return metric, enlarge_blocks(metric[:, 0].cpu().numpy(), block)
        firsts = latents[:, 0, :, :1] if latents.ndim == 6 else latents[:, 0]
        return None, self._preview(firsts)

    def _preview(self, latent):
        fmt = self.fmt
        factors = getattr(fmt, "latent_rgb_factors", None)
        bias = getattr(fmt, "latent_rgb_factors_bias", None)
        lat = latent.to(torch.float32)
        if lat.ndim == 5:
            b, c, t, h, w = lat.shape
            lat = lat.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        lat = fmt.process_in(lat) if hasattr(fmt, "process_in") else lat
        if factors is not None and len(factors) == lat.shape[1]:
            rgb = torch.einsum("bchw,cr->bhwr", lat, torch.tensor(factors, dtype=torch.float32))
            if bias is not None:
                rgb = rgb + torch.tensor(bias, dtype=torch.float32)
        else:
            rgb = lat[:, :3].movedim(1, -1)
            if rgb.shape[-1] < 3:
                rgb = rgb[..., :1].expand(*rgb.shape[:-1], 3)
            rgb = rgb / rgb.abs().amax().clamp(min=1e-6)
        rgb = ((rgb + 1) / 2).movedim(-1, 1)
        rgb = torch.nn.functional.interpolate(rgb, scale_factor=8, mode="nearest").movedim(1, -1)
        return to_uint8(rgb)


# Fingerprint for the resume cache -------------------------------------------------------------
def _describe(value, depth=0):
    if depth > 3:
        return type(value).__name__
    if torch.is_tensor(value):
        return tensor_digest(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_describe(v, depth + 1) for v in value[:64]]
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    if hasattr(value, "timestep_percent_range"):          # a ControlNet / T2I adapter
        return {"type": type(value).__name__, "range": list(value.timestep_percent_range),
                "strength": getattr(value, "strength", None),
                "hint": tensor_digest(getattr(value, "cond_hint_original", None)),
                "previous": _describe(getattr(value, "previous_controlnet", None), depth + 1)}
    return type(value).__name__


def _first_param_digest(module):
    try:
        for p in module.parameters():
            if p.device.type != "meta" and p.numel() < 4_000_000:
                return tensor_digest(p)
    except Exception:  # modules without parameters, or lazily loaded ones
        pass
    return None


def _prompt_ancestors(prompt, node_id):
    if not isinstance(prompt, dict) or node_id is None or str(node_id) not in prompt:
        return None
    seen, todo, out = set(), [str(node_id)], {}
    while todo:
        nid = todo.pop()
        for v in prompt.get(nid, {}).get("inputs", {}).values():
            if isinstance(v, list) and len(v) == 2 and str(v[0]) in prompt and str(v[0]) not in seen:
                seen.add(str(v[0]))
                todo.append(str(v[0]))
    for nid in seen:
        out[nid] = {"class_type": prompt[nid].get("class_type"), "inputs": prompt[nid].get("inputs")}
    return out


def fingerprint(patcher, positive, negative, latent, vae, sampler_input, sigmas_input, guider, prompt, node_id,
                model_low=None):
    """Digest of everything the cells depend on apart from their own settings."""
    model = patcher.model
    desc = {
        "model": type(model).__name__,
        "model_type": str(getattr(model, "model_type", "")),
        "lab": getattr(model, "lab_settings", None),
        "weights": _first_param_digest(getattr(model, "diffusion_model", model)),
        "patches": sorted((str(k), len(v)) for k, v in getattr(patcher, "patches", {}).items())[:4096],
        "options": _describe(patcher.model_options),
        "positive": _describe(positive), "negative": _describe(negative),
        "latent": {k: _describe(v) for k, v in latent.items()},
        "vae": None if vae is None else [type(vae.first_stage_model).__name__, _first_param_digest(vae.first_stage_model)],
        "sampler": None if sampler_input is None else [getattr(sampler_input, "sampler_function", None).__qualname__
                                                      if hasattr(sampler_input, "sampler_function") else
                                                      type(sampler_input).__name__,
                                                      _describe(getattr(sampler_input, "extra_options", {}))],
        "sigmas": _describe(sigmas_input),
        "guider": None if guider is None else {"type": type(guider).__name__, "cfg": getattr(guider, "cfg", None),
                                                "conds": _describe(getattr(guider, "original_conds", {}))},
        "graph": _prompt_ancestors(prompt, node_id),
    }
    if model_low is not None:         # only then: the digests of sweeps without one stay as they were
        low = model_low.model
        desc["model_low"] = {"model": type(low).__name__, "lab": getattr(low, "lab_settings", None),
                             "weights": _first_param_digest(getattr(low, "diffusion_model", low)),
                             "patches": sorted((str(k), len(v)) for k, v in model_low.patches.items())[:4096],
                             "options": _describe(model_low.model_options)}
    return stable_hash(desc, 12)

