"""Dev tool (not shipped): writes the UI-format example workflows in workflows/ from compact
descriptions, so every file has consistent links, ids and widget values.
Run: .labenv/venv/bin/python scripts/make_workflows.py"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Output sockets (name, type) of the node types the workflows use.
OUTPUTS = {
    "SamplerLabModel": [("MODEL", "MODEL")],
    "SamplerLabConditioning": [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    "SamplerLabEmptyLatent": [("LATENT", "LATENT")],
    "SamplerLabDecode": [("IMAGE", "IMAGE")],
    "SamplerLabNetLoader": [("MODEL", "MODEL"), ("VAE", "VAE")],
    "SamplerLabNetConditioning": [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    "SamplerLabNetEmptyLatent": [("LATENT", "LATENT")],
    "VAEDecode": [("IMAGE", "IMAGE")],
    "KSampler": [("LATENT", "LATENT")],
    "SaveImage": [],
    "Note": [],
    "PreviewAny": [],
    "SamplerLabStepSweep": [("grid", "IMAGE"), ("images", "IMAGE"), ("chart", "IMAGE"), ("report", "STRING"),
                            ("recommended_steps", "INT"), ("recommended_sampler", "COMBO"),
                            ("recommended_scheduler", "COMBO"), ("recommended_model_calls", "INT")],
}


class Graph:
    def __init__(self):
        self.nodes, self.links = [], []

    def add(self, type_, widgets, pos, inputs=(), size=(320, 160), title=None):
        nid = len(self.nodes) + 1
        node = {"id": nid, "type": type_, "pos": list(pos), "size": list(size), "flags": {}, "order": nid - 1,
                "mode": 0, "inputs": [], "outputs": [], "properties": {"Node name for S&R": type_},
                "widgets_values": list(widgets)}
        if title:
            node["title"] = title
        for slot, (name, typ) in enumerate(OUTPUTS[type_]):
            node["outputs"].append({"name": name, "type": typ, "links": [], "slot_index": slot})
        for name, typ, (src, src_slot) in inputs:
            lid = len(self.links) + 1
            self.links.append([lid, src["id"], src_slot, nid, len(node["inputs"]), typ])
            src["outputs"][src_slot]["links"].append(lid)
            node["inputs"].append({"name": name, "type": typ, "link": lid})
        self.nodes.append(node)
        return node

    def note(self, text, pos, size=(420, 220)):
        return self.add("Note", [text], pos, size=size)

    def dump(self, path):
        wf = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
              "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}},
              "version": 0.4}
        with open(path, "w") as f:
            json.dump(wf, f, indent=1)
            f.write("\n")


def lab_front(g, parameterization="eps", batch=4, class_id=0):
    model = g.add("SamplerLabModel", [parameterization, 3.0, 6, 3, 0.05, 0, "float32"], (0, 0), size=(320, 230))
    cond = g.add("SamplerLabConditioning", [class_id], (0, 280), size=(320, 90))
    latent = g.add("SamplerLabEmptyLatent", [128, 128, batch, 1], (0, 420), size=(320, 150))
    return model, cond, latent


def ksampler_chain(g, model, cond, latent, sampler, scheduler, steps, cfg, y, prefix, vae=None):
    """KSampler -> decode -> SaveImage. vae: (node, slot) of a VAE (stock VAE Decode), else Lab Decode."""
    ks = g.add("KSampler", [42, "fixed", steps, cfg, sampler, scheduler, 1.0], (380, y),
               inputs=[("model", "MODEL", (model, 0)), ("positive", "CONDITIONING", (cond, 0)),
                       ("negative", "CONDITIONING", (cond, 1)), ("latent_image", "LATENT", (latent, 0))],
               size=(320, 270), title=f"KSampler: {sampler} / {scheduler}, {steps} steps"
               + (f", cfg {cfg}" if vae else ""))
    if vae:
        dec = g.add("VAEDecode", [], (740, y), inputs=[("samples", "LATENT", (ks, 0)), ("vae", "VAE", vae)],
                    size=(220, 60))
    else:
        dec = g.add("SamplerLabDecode", [], (740, y), inputs=[("samples", "LATENT", (ks, 0))], size=(220, 60))
    g.add("SaveImage", [prefix], (1000, y), inputs=[("images", "IMAGE", (dec, 0))], size=(420, 300) if vae else (300, 300))


def lab_first_run(pack_sampler, pack_scheduler):
    g = Graph()
    model, cond, latent = lab_front(g)
    ksampler_chain(g, model, cond, latent, "euler", "karras", 10, 3.0, 0, "sampler_lab/first_run_core")
    ksampler_chain(g, model, cond, latent, pack_sampler, pack_scheduler, 10, 3.0, 400, "sampler_lab/first_run_pack")
    g.note("Sampler Lab - first run (no checkpoint needed)\n\n"
           "The Lab Model is an exact diffusion model (a Gaussian mixture), so this runs in seconds anywhere.\n"
           "Top: ComfyUI's euler + karras. Bottom: a Sampler Lab sampler and scheduler picked straight from the "
           "stock KSampler dropdowns.\n\nLook at: both rows show the class-0 motif; change class_id, cfg or the "
           "sampler and queue again. Swap the Lab Model for a real checkpoint loader and the same KSampler "
           "settings work unchanged.", (0, 720))
    return g


def sweep_with_outputs(g, model, latent, cond, cell_size, vae=None):
    """The lab workflows' Step Sweep (steps 4-32 x euler, dpmpp_2m, heun, lab_rk4) with its grid, chart,
    recommended steps and report wired to outputs. vae: (node, slot) of the model's VAE, if it has one."""
    inputs = [("model", "MODEL", (model, 0)), ("latent_image", "LATENT", (latent, 0)),
              ("positive", "CONDITIONING", (cond, 0)), ("negative", "CONDITIONING", (cond, 1))]
    sweep = g.add("SamplerLabStepSweep",
                  [42, "fixed", 20, 3.0, "euler", "karras", 1.0,
                   "steps", "4,8,16,32", "sampler", "euler, dpmpp_2m, heun, lab_rk4", "none", "",
                   False, "lab_rk4", 48, 0.02, 64, cell_size, "sampler_lab/step_sweep"],
                  (380, 0), size=(380, 640), title="Step Sweep: steps x sampler",
                  inputs=inputs + ([("vae", "VAE", vae)] if vae else []))
    g.add("SaveImage", ["sampler_lab/step_sweep_grid"], (800, 0), inputs=[("images", "IMAGE", (sweep, 0))],
          size=(520, 560), title="Grid")
    g.add("SaveImage", ["sampler_lab/step_sweep_chart"], (1340, 0), inputs=[("images", "IMAGE", (sweep, 2))],
          size=(620, 360), title="Chart")
    g.add("PreviewAny", [], (1340, 400), inputs=[("source", "INT", (sweep, 4))], size=(300, 120),
          title="Recommended steps")
    g.add("PreviewAny", [], (800, 600), inputs=[("source", "STRING", (sweep, 3))], size=(520, 300),
          title="Report (JSON)")


def lab_step_sweep():
    """Steps x sampler on the lab model: grid, chart, report and the recommended step count."""
    g = Graph()
    model = g.add("SamplerLabModel", ["eps", 3.0, 6, 3, 0.05, 0, "float32"], (0, 0), size=(320, 230))
    cond = g.add("SamplerLabConditioning", [0], (0, 280), size=(320, 90))
    latent = g.add("SamplerLabEmptyLatent", [128, 128, 1, 1], (0, 420), size=(320, 150))
    sweep_with_outputs(g, model, latent, cond, cell_size=256)
    g.note("Sampler Lab - step sweep (no checkpoint needed)\n\n"
           "Columns: steps 4, 8, 16, 32. Rows: euler, dpmpp_2m, heun, lab_rk4. Same seed everywhere.\n"
           "Under each cell: model calls actually counted (heun and lab_rk4 call the model 2 and 4 times per "
           "step), sampling time, and dist = distance to the reference (the lab model's ODE solved to high accuracy, "
           "48 RK4 steps in log sigma, so lab_rk4's row is not measured against itself; PSNR/SSIM in image space).\n\n"
           "Look at: where each row stops changing; the chart's left panel (distance vs steps, log scale) with the "
           "dashed tolerance line; 'Recommended steps' = the steps of the sampler/scheduler that reaches the tolerance "
           "at the fewest model calls (the node also outputs that sampler, scheduler and its model calls, ready for "
           "a KSampler). "
           "Turn on equal_cost to compare at the same number of model calls instead of steps.\n\n"
           "Files: output/sampler_lab/step_sweep_<digest>/ holds grid.png, chart.png, report.json, report.csv and "
           "every finished cell (a fast model's in batches); queue again after an interrupt and finished cells are "
           "reused. Swap the Lab Model for a checkpoint loader (and connect its VAE) to sweep a real model.",
           (0, 620), size=(360, 420))
    return g


# --- workflows without a sweep node: CFG vs CFG++ on the lab model, real-model recipes ---------------
OUTPUTS.update({
    "CheckpointLoaderSimple": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    "CLIPTextEncode": [("CONDITIONING", "CONDITIONING")],
    "EmptyLatentImage": [("LATENT", "LATENT")],
})


def lab_cfg_vs_cfgpp():
    """The same seed through CFG and CFG++ (core euler and a pack sampler) on the lab model."""
    g = Graph()
    model, cond, latent = lab_front(g, batch=4, class_id=1)
    rows = [("euler", 5.0), ("euler_cfg_pp", 1.0), ("lab_plms", 5.0), ("lab_plms_cfg_pp", 1.0)]
    for k, (sampler, cfg) in enumerate(rows):
        ksampler_chain(g, model, cond, latent, sampler, "karras", 12, cfg, 400 * k,
                       f"sampler_lab/cfg_vs_cfgpp_{k + 1}_{sampler}")
    g.note("Sampler Lab - CFG vs CFG++ (no checkpoint needed)\n\n"
           "Four rows, same seed, same 12 karras steps, class 1 against the unconditional model:\n"
           "1. euler, classic CFG 5.0    2. euler_cfg_pp, CFG++ 1.0\n"
           "3. lab_plms, classic CFG 5.0  4. lab_plms_cfg_pp, CFG++ 1.0 (the pack's CFG++ form, same model calls)\n\n"
           "CFG++ (Chung et al. 2024, arXiv:2406.08070) steps with the guided image estimate but re-noises with the "
           "unconditional noise estimate. Its scale uses ComfyUI's *_cfg_pp convention: 0.5-2, and 1.0 is already "
           "strong guidance (regular CFG values like 7 are far too high).\n\n"
           "Look at: on the lab model the rows look alike - its classes are well separated, so guidance mostly "
           "sharpens the class motif (latent contrast grows with the CFG scale; CFG++ 1.0 lands near CFG 5). The point "
           "here is the scale convention and that both forms run in the stock KSampler. With a real checkpoint, CFG "
           "5-7 against CFG++ 0.8-1.2 shows the difference the CFG++ paper reports: less oversaturation, finer detail. "
           "To measure instead of eyeballing, put these samplers on one axis of the step sweep.",
           (0, 620), size=(360, 420))
    return g


def real_model_front(g, ckpt, width, height, positive, negative="blurry, low quality, watermark", x=0, y=0,
                     latent_class="EmptyLatentImage"):
    ckpt_node = g.add("CheckpointLoaderSimple", [ckpt], (x, y), size=(340, 100))
    pos = g.add("CLIPTextEncode", [positive], (x, y + 150), inputs=[("clip", "CLIP", (ckpt_node, 1))], size=(340, 130),
                title="Positive prompt")
    neg = g.add("CLIPTextEncode", [negative], (x, y + 320), inputs=[("clip", "CLIP", (ckpt_node, 1))], size=(340, 110),
                title="Negative prompt")
    latent = g.add(latent_class, [width, height, 1], (x, y + 470), size=(340, 110))
    return ckpt_node, pos, neg, latent


def real_model_chain(g, ckpt_node, pos, neg, latent, sampler, scheduler, steps, cfg, x, y, prefix, title):
    ks = g.add("KSampler", [42, "fixed", steps, cfg, sampler, scheduler, 1.0], (x, y),
               inputs=[("model", "MODEL", (ckpt_node, 0)), ("positive", "CONDITIONING", (pos, 0)),
                       ("negative", "CONDITIONING", (neg, 0)), ("latent_image", "LATENT", (latent, 0))],
               size=(320, 400), title=title)
    dec = g.add("VAEDecode", [], (x + 360, y), inputs=[("samples", "LATENT", (ks, 0)), ("vae", "VAE", (ckpt_node, 2))],
                size=(200, 60))
    g.add("SaveImage", [prefix], (x + 600, y), inputs=[("images", "IMAGE", (dec, 0))], size=(420, 460))


def model_sd15_ays():
    """SD1.5 with a pack sampler and Align Your Steps, in the stock KSampler."""
    g = Graph()
    ckpt, pos, neg, latent = real_model_front(g, "v1-5-pruned-emaonly.safetensors", 512, 512,
                                              "a lighthouse on a cliff at sunset, oil painting, detailed")
    real_model_chain(g, ckpt, pos, neg, latent, "lab_dpmpp2m_unic", "lab_ays_sd15", 10, 7.0, 400, 0,
                     "sampler_lab/sd15_ays", "KSampler: lab_dpmpp2m_unic / lab_ays_sd15, 10 steps")
    g.note("Sampler Lab - SD1.5 in 10 steps with Align Your Steps\n\n"
           "Needs models/checkpoints/v1-5-pruned-emaonly.safetensors (the standard SD1.5 file; pick yours in the loader).\n\n"
           "The stock KSampler, with two Sampler Lab entries picked from its dropdowns:\n"
           "- scheduler lab_ays_sd15: NVIDIA's Align Your Steps table for SD1.5 (Sabour et al. 2024), optimised for "
           "10 steps and log-linear interpolated to other counts.\n"
           "- sampler lab_dpmpp2m_unic: DPM++(2M) with a UniC corrector, 1 model call per step.\n\n"
           "Look at: 10 steps here against dpmpp_2m / karras at 20 steps; the schedule preview on the KSampler shows "
           "where AYS puts its steps (more of them at mid noise than karras).", (0, 640), size=(380, 340))
    return g


def model_sdxl_turbo_trailing():
    """SDXL Turbo (1 step) and SDXL Lightning (4 steps) with diffusers' trailing spacing."""
    g = Graph()
    turbo = real_model_front(g, "sd_xl_turbo_1.0_fp16.safetensors", 512, 512,
                             "a cinematic photo of a red fox in the snow", x=0, y=0)
    real_model_chain(g, *turbo, "euler_ancestral", "lab_trailing", 1, 1.0, 400, 0,
                     "sampler_lab/sdxl_turbo_1step", "SDXL Turbo: 1 step, cfg 1.0, lab_trailing")
    lightning = real_model_front(g, "sdxl_lightning_4step.safetensors", 1024, 1024,
                                 "a cinematic photo of a red fox in the snow", x=0, y=660)
    real_model_chain(g, *lightning, "euler", "lab_trailing", 4, 1.0, 400, 660,
                     "sampler_lab/sdxl_lightning_4step", "SDXL Lightning: 4 steps, cfg 1.0, lab_trailing")
    g.note("Sampler Lab - SDXL Turbo / Lightning in 1-4 steps\n\n"
           "Needs sd_xl_turbo_1.0_fp16.safetensors (top) and sdxl_lightning_4step.safetensors (bottom) in "
           "models/checkpoints; either row runs alone (mute the other).\n\n"
           "Distilled models were trained on diffusers' 'trailing' timestep spacing: the first step starts at the "
           "model's highest noise level (timestep 999). lab_trailing reproduces it on the model's own table; "
           "'leading' or 'linspace' start lower and leave noise or washed-out colours at 1-4 steps.\n"
           "cfg 1.0 = no classifier-free guidance (these models were distilled without it; the negative prompt is "
           "ignored). Turbo: 512x512, 1 step; Lightning 4-step: 1024x1024, 4 steps, euler.\n\n"
           "Look at: switch the scheduler to lab_leading at 1 step and compare; the schedule preview shows the first "
           "sigma drop.", (1480, 0), size=(400, 420))
    return g


# --- real-model sweep recipes (the seeds' decision table): SDXL, Flux dev, SD3.5, Wan 2.2, ControlNet, preview
# vs final. Wan 2.2 A14B uses Comfy-Org's repackaged fp8 files, as core's Wan 2.2 template does.
OUTPUTS.update({
    "UNETLoader": [("MODEL", "MODEL")],
    "CLIPLoader": [("CLIP", "CLIP")],
    "VAELoader": [("VAE", "VAE")],
    "ModelSamplingSD3": [("MODEL", "MODEL")],
    "EmptyHunyuanLatentVideo": [("LATENT", "LATENT")],
    "FluxGuidance": [("CONDITIONING", "CONDITIONING")],
    "EmptySD3LatentImage": [("LATENT", "LATENT")],
    "LoadImage": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    "Canny": [("IMAGE", "IMAGE")],
    "ControlNetLoader": [("CONTROL_NET", "CONTROL_NET")],
    "ControlNetApplyAdvanced": [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
})


def recipe_sweep(g, model, latent, pos, neg, vae, pos_xy, title, prefix, *, steps, cfg, sampler, scheduler,
                 x_axis, x_values, y_axis, y_values, reference_sampler, reference_steps, tolerance=0.02,
                 cell_size=384, outputs_x=None, outputs_y=0, model_low=None):
    """A Step Sweep wired to a real model, its VAE (image-space PSNR/SSIM), grid + chart SaveImage and the
    recommended steps. Widget order = SamplerLabStepSweep.INPUT_TYPES (seed is followed by its control value).
    model_low: (node, slot) of the low-noise model a boundary axis hands off to."""
    x, y = pos_xy
    inputs = [("model", "MODEL", (model, 0)), ("latent_image", "LATENT", (latent, 0)),
              ("positive", "CONDITIONING", pos), ("negative", "CONDITIONING", neg), ("vae", "VAE", vae)]
    if model_low is not None:
        inputs.append(("model_low", "MODEL", model_low))
    sweep = g.add("SamplerLabStepSweep",
                  [42, "fixed", steps, cfg, sampler, scheduler, 1.0, x_axis, x_values, y_axis, y_values, "none", "",
                   False, reference_sampler, reference_steps, tolerance, 64, cell_size, prefix],
                  (x, y), size=(380, 640), title=title, inputs=inputs)
    ox = x + 420 if outputs_x is None else outputs_x
    oy = y + outputs_y
    g.add("SaveImage", [prefix + "_grid"], (ox, oy), inputs=[("images", "IMAGE", (sweep, 0))], size=(520, 560),
          title=title.split(":")[0] + ": grid")
    g.add("SaveImage", [prefix + "_chart"], (ox + 540, oy), inputs=[("images", "IMAGE", (sweep, 2))],
          size=(620, 360), title=title.split(":")[0] + ": chart")
    g.add("PreviewAny", [], (ox + 540, oy + 400), inputs=[("source", "INT", (sweep, 4))], size=(300, 120),
          title=title.split(":")[0] + ": recommended steps")
    return sweep


def model_sdxl_step_sweep():
    """SDXL base 20-28 steps: DPM++ 2M Karras (the community default) against two pack samplers."""
    g = Graph()
    ckpt, pos, neg, latent = real_model_front(g, "sd_xl_base_1.0.safetensors", 1024, 1024,
                                              "a cinematic photo of an old fisherman mending a net on a wooden pier, "
                                              "golden hour, detailed")
    recipe_sweep(g, ckpt, latent, (pos, 0), (neg, 0), (ckpt, 2), (400, 0), "SDXL sweep: steps x sampler",
                 "sampler_lab/sdxl_step_sweep", steps=25, cfg=6.5, sampler="dpmpp_2m", scheduler="karras",
                 x_axis="steps", x_values="20,24,28", y_axis="sampler",
                 y_values="dpmpp_2m, lab_dpmpp2m_unic, lab_plms_unic", reference_sampler="lab_rk4", reference_steps=48)
    g.note("Sampler Lab - SDXL: 20-28 steps, DPM++ 2M Karras vs pack samplers\n\n"
           "Needs models/checkpoints/sd_xl_base_1.0.safetensors (the standard SDXL base file; pick yours in the "
           "loader). 1024x1024, cfg 6.5, karras, seed 42 - the decision table's SDXL default (20-28 steps, DPM++ 2M "
           "Karras).\n\n"
           "Columns: 20, 24, 28 steps. Rows: dpmpp_2m (core), lab_dpmpp2m_unic (DPM++(2M) + UniC corrector) and "
           "lab_plms_unic (PLMS + UniC); all three cost 1 model call per step (x2 with CFG). Reference: lab_rk4, 48 "
           "steps, same seed. The checkpoint's VAE is connected, so every cell also gets PSNR/SSIM in image space.\n\n"
           "Look at: d (distance to the reference) under each cell and the chart - the row whose d is lowest at 20 "
           "steps reaches a given quality soonest; 'recommended steps' is the fewest steps within tolerance (2%). If "
           "the pack rows at 20 steps match dpmpp_2m at 28, that is 8 steps saved per image. 9 cells + 1 reference "
           "take a few minutes on a recent GPU; an interrupted sweep resumes where it stopped.",
           (0, 640), size=(380, 460))
    return g


def model_flux_cfgpp_sweep():
    """Flux dev 25-30 steps, flow-matching euler with CFG++ off and on."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ["flux1-dev-fp8.safetensors"], (0, 0), size=(340, 100))
    pos = g.add("CLIPTextEncode", ["a red vintage bicycle leaning against a blue door, morning light, photo"],
                (0, 150), inputs=[("clip", "CLIP", (ckpt, 1))], size=(340, 130), title="Positive prompt")
    guided = g.add("FluxGuidance", [3.5], (0, 320), inputs=[("conditioning", "CONDITIONING", (pos, 0))],
                   size=(340, 80), title="FluxGuidance (distilled guidance 3.5)")
    neg = g.add("CLIPTextEncode", ["blurry, low quality, watermark"], (0, 440), inputs=[("clip", "CLIP", (ckpt, 1))],
                size=(340, 110), title="Negative prompt (used by CFG++ only)")
    latent = g.add("EmptySD3LatentImage", [1024, 1024, 1], (0, 590), size=(340, 110))
    recipe_sweep(g, ckpt, latent, (guided, 0), (neg, 0), (ckpt, 2), (400, 0), "Flux dev sweep: steps x CFG++",
                 "sampler_lab/flux_cfgpp_sweep", steps=28, cfg=1.0, sampler="euler", scheduler="simple",
                 x_axis="steps", x_values="25,28,30", y_axis="sampler", y_values="euler, euler_cfg_pp",
                 reference_sampler="dpmpp_2m", reference_steps=60, tolerance=0.03)
    g.note("Sampler Lab - Flux dev: 25-30 steps, CFG++ off and on\n\n"
           "Needs models/checkpoints/flux1-dev-fp8.safetensors (Comfy-Org's all-in-one Flux dev file: model, "
           "text encoders and VAE). With the split files instead (flux1-dev.safetensors, t5xxl_fp16 + clip_l, "
           "ae.safetensors), replace the loader by UNETLoader + DualCLIPLoader (type flux) + VAELoader. "
           "1024x1024, scheduler simple, FluxGuidance 3.5 - the decision table's Flux dev default (25-30 steps, "
           "flow-matching euler).\n\n"
           "Columns: 25, 28, 30 steps. Rows: euler (CFG++ off: cfg 1.0, Flux's distilled guidance only, 1 model call "
           "per step) and euler_cfg_pp (CFG++ on, Chung et al. 2024, arXiv:2406.08070: at scale 1.0 it steps with "
           "the guided estimate but re-noises with the negative prompt's estimate, 2 model calls per step - the "
           "counted calls under each cell show it).\n\n"
           "Look at: the two rows side by side - what CFG++ changes in detail, contrast and prompt adherence, and "
           "whether that is worth twice the calls per step. d is measured against a plain "
           "(CFG++ off) dpmpp_2m 60-step reference, so for the euler row it is step error and for the CFG++ row it "
           "is mostly how far CFG++ moves the image: compare the CFG++ row across columns (does it stop changing by "
           "25?). To try the pack's form, set the rows to lab_sde_dpmpp_2m, lab_sde_dpmpp_2m_cfg_pp (stochastic: "
           "their d never reaches 0).", (0, 740), size=(380, 600))
    return g


def model_sd35_shift_sweep():
    """SD3.5 Medium: the model-sampling shift x steps (the sweep's shift axis)."""
    g = Graph()
    ckpt, pos, neg, latent = real_model_front(
        g, "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors", 1024, 1024,
        "a lighthouse on a rocky coast at dusk, waves, warm window light, photo",
        "blurry, low quality, watermark, text", latent_class="EmptySD3LatentImage")
    recipe_sweep(g, ckpt, latent, (pos, 0), (neg, 0), (ckpt, 2), (400, 0), "SD3.5 sweep: steps x shift",
                 "sampler_lab/sd35_shift_sweep", steps=28, cfg=4.5, sampler="euler", scheduler="simple",
                 x_axis="steps", x_values="16,20,28,40", y_axis="shift", y_values="1.5, 3, 6",
                 reference_sampler="dpmpp_2m", reference_steps=80, tolerance=0.03)
    g.note("Sampler Lab - SD3.5 Medium: which shift, how many steps\n\n"
           "Needs models/checkpoints/sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors (Comfy-Org's all-in-one "
           "SD3.5 Medium file: model, text encoders and VAE). 1024x1024, cfg 4.5, euler / simple.\n\n"
           "Columns: 16, 20, 28, 40 steps. Rows: the model-sampling shift 1.5, 3 (SD3.5's own) and 6. Each cell is "
           "exactly a KSampler on the model after a ModelSamplingSD3 node with that shift (the schedule is "
           "recomputed from it; the connected model is not changed). A larger shift spends more of the steps at "
           "high noise: the composition settles earlier, fine detail gets fewer steps.\n\n"
           "Each shift has its own dpmpp_2m 80-step reference, so d says how far a cell is from what more steps "
           "would give at that shift - not which shift looks best: judge that in the grid. The answer line names "
           "the winning shift ('..., at shift 3'): set it on a ModelSamplingSD3 node before your KSampler, with the "
           "recommended steps. 12 cells + 3 references take several minutes on a recent GPU; an interrupted sweep "
           "resumes where it stopped.", (0, 620), size=(380, 560))
    return g


def model_wan22_boundary_sweep():
    """Wan 2.2 A14B T2V: where the high-noise expert hands off to the low-noise one (boundary) x steps."""
    g = Graph()
    experts = []
    for i, (noise, name) in enumerate((("high", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"),
                                       ("low", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"))):
        unet = g.add("UNETLoader", [name, "default"], (0, 260 * i), size=(340, 90),
                     title=f"{noise.capitalize()}-noise expert")
        experts.append(g.add("ModelSamplingSD3", [8.0], (0, 260 * i + 130), inputs=[("model", "MODEL", (unet, 0))],
                             size=(340, 60), title=f"ModelSamplingSD3 (shift 8, {noise})"))
    clip = g.add("CLIPLoader", ["umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan", "default"], (0, 520),
                 size=(340, 110))
    pos = g.add("CLIPTextEncode", ["a red fox trotting through fresh snow in a pine forest, soft morning light, "
                                   "the camera follows it at ground level"],
                (0, 670), inputs=[("clip", "CLIP", (clip, 0))], size=(340, 130), title="Positive prompt")
    neg = g.add("CLIPTextEncode", ["blurry, low quality, static, watermark, text"], (0, 840),
                inputs=[("clip", "CLIP", (clip, 0))], size=(340, 110), title="Negative prompt")
    vae = g.add("VAELoader", ["wan_2.1_vae.safetensors"], (0, 990), size=(340, 60))
    latent = g.add("EmptyHunyuanLatentVideo", [832, 480, 33, 1], (0, 1090), size=(340, 130))
    recipe_sweep(g, experts[0], latent, (pos, 0), (neg, 0), (vae, 0), (400, 0), "Wan 2.2 sweep: steps x boundary",
                 "sampler_lab/wan22_boundary_sweep", steps=20, cfg=3.5, sampler="euler", scheduler="simple",
                 x_axis="steps", x_values="16,20,30", y_axis="boundary", y_values="0.8, 0.875, 0.95",
                 reference_sampler="dpmpp_2m", reference_steps=40, tolerance=0.03, model_low=(experts[1], 0))
    g.note("Sampler Lab - Wan 2.2 A14B text-to-video: where the experts hand off, how many steps\n\n"
           "Needs models/diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors and "
           "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors, models/text_encoders/"
           "umt5_xxl_fp8_e4m3fn_scaled.safetensors and models/vae/wan_2.1_vae.safetensors (Comfy-Org's repackaged "
           "Wan 2.2 files, as core's Wan 2.2 template uses). Both experts with ModelSamplingSD3 shift 8, cfg 3.5, "
           "euler / simple. 832x480, 33 frames to keep the sweep affordable; the grid shows each cell's first "
           "frame.\n\n"
           "Columns: 16, 20, 30 steps. Rows: the boundary, the sigma where sampling hands off from the high-noise "
           "expert (model) to the low-noise one (model_low): 0.875 is Wan 2.2's published T2V boundary, 0.8 and 0.95 "
           "move it either way. Each cell is exactly the Two-Model Sampler's run at that boundary. Each boundary has "
           "its own dpmpp_2m 40-step reference, so d says how far a cell is from what more steps would give at that "
           "boundary - not which boundary looks best: judge that in the grid (motion and layout come from the "
           "high-noise expert, detail from the low-noise one).\n\n"
           "Cost: 198 steps in the cells and 120 in the references, each 2 model calls at cfg 3.5 (the counted "
           "calls are under each cell); an interrupted sweep resumes where it stopped. The answer line names the "
           "winning boundary ('..., at boundary 0.875'): use it in Split Sigmas at Boundary or the Two-Model "
           "Sampler, with the recommended steps, at your full length (81 frames).", (0, 1270), size=(380, 600))
    return g


def model_controlnet_end_sweep():
    """SD1.5 + Canny ControlNet: where to stop the ControlNet (end percent) x steps."""
    g = Graph()
    ckpt, pos, neg, latent = real_model_front(g, "v1-5-pruned-emaonly.safetensors", 512, 512,
                                              "a cozy living room, warm lamp light, photo, detailed")
    image = g.add("LoadImage", ["example.png", "image"], (0, 640), size=(340, 360))
    canny = g.add("Canny", [0.4, 0.8], (400, 640), inputs=[("image", "IMAGE", (image, 0))], size=(300, 90))
    cnet = g.add("ControlNetLoader", ["control_v11p_sd15_canny.pth"], (400, 780), size=(340, 80))
    apply = g.add("ControlNetApplyAdvanced", [0.9, 0.0, 1.0], (400, 900),
                  inputs=[("positive", "CONDITIONING", (pos, 0)), ("negative", "CONDITIONING", (neg, 0)),
                          ("control_net", "CONTROL_NET", (cnet, 0)), ("image", "IMAGE", (canny, 0))],
                  size=(320, 190), title="Apply ControlNet (end swept)")
    recipe_sweep(g, ckpt, latent, (apply, 0), (apply, 1), (ckpt, 2), (780, 0), "ControlNet sweep: end x steps",
                 "sampler_lab/controlnet_end_sweep", steps=25, cfg=7.0, sampler="dpmpp_2m", scheduler="karras",
                 x_axis="controlnet_end", x_values="0.3,0.5,0.7,1.0", y_axis="steps", y_values="15,25",
                 reference_sampler="lab_rk4", reference_steps=48, cell_size=320)
    g.note("Sampler Lab - ControlNet: end percent x steps\n\n"
           "Needs models/checkpoints/v1-5-pruned-emaonly.safetensors and models/controlnet/control_v11p_sd15_canny.pth "
           "(the standard SD1.5 and canny ControlNet 1.1 files); the control image is ComfyUI's input/example.png "
           "(load your own).\n\n"
           "Columns: controlnet_end 0.3, 0.5, 0.7, 1.0 - the sweep sets the end percent of every ControlNet on the "
           "conditioning (the Apply node's own end_percent is replaced; strength 0.9, start 0.0 stay). Rows: 15 and "
           "25 steps, dpmpp_2m karras, cfg 7, seed 42. Each end value gets its own reference (lab_rk4, 48 steps).\n\n"
           "Look at: how early the ControlNet can stop while the canny edges still hold - the decision table's 0.7 "
           "keeps the layout and frees the last 30% of steps for texture; 0.3 usually loses the structure. Then the "
           "rows: whether 15 steps already matches 25 at your chosen end (d under each cell, chart).",
           (0, 1040), size=(380, 420))
    return g


def model_preview_vs_final_sweep():
    """Preview vs final: the fewest steps whose composition matches the final render, per seed."""
    g = Graph()
    ckpt, pos, neg, latent = real_model_front(g, "v1-5-pruned-emaonly.safetensors", 512, 512,
                                              "a watercolor painting of a mountain village by a lake")
    recipe_sweep(g, ckpt, latent, (pos, 0), (neg, 0), (ckpt, 2), (400, 0), "Preview sweep: 6-12 steps x seed",
                 "sampler_lab/preview_sweep", steps=8, cfg=7.0, sampler="dpmpp_2m", scheduler="karras",
                 x_axis="steps", x_values="6,8,12", y_axis="seed", y_values="42,43,44",
                 reference_sampler="dpmpp_2m", reference_steps=32, tolerance=0.1, cell_size=256)
    recipe_sweep(g, ckpt, latent, (pos, 0), (neg, 0), (ckpt, 2), (400, 700), "Final sweep: 24-32 steps x seed",
                 "sampler_lab/final_sweep", steps=32, cfg=7.0, sampler="dpmpp_2m", scheduler="karras",
                 x_axis="steps", x_values="24,32", y_axis="seed", y_values="42,43,44",
                 reference_sampler="lab_rk4", reference_steps=48, cell_size=256)
    g.note("Sampler Lab - preview vs final\n\n"
           "Needs models/checkpoints/v1-5-pruned-emaonly.safetensors (the standard SD1.5 file; an SDXL checkpoint "
           "works too at 1024x1024).\n\n"
           "The idea: explore prompts and seeds with cheap previews, then render only the keepers at final quality - "
           "which works only if a preview's composition matches the final. Both sweeps use the same seeds (42, 43, "
           "44 = rows), dpmpp_2m karras, cfg 7.\n"
           "- Top, preview: 6, 8, 12 steps. Its reference is dpmpp_2m at 32 steps, i.e. exactly the final render, so "
           "d = how far each preview is from its final; tolerance 0.1 (10%) is 'same composition, less detail', and "
           "'recommended steps' is the cheapest preview count that stays within it for every seed.\n"
           "- Bottom, final: 24 and 32 steps against a lab_rk4 48-step reference: is 24 already final quality?\n\n"
           "Look at: each row of the preview grid next to the same row of the final grid - layout, pose and colours "
           "should already agree at the recommended preview steps. Tighten the tolerance if details matter.",
           (0, 640), size=(380, 520))
    return g


# --- lab shoot-out at equal NFE and the schedule optimizer on the lab model -----------------------
OUTPUTS.update({
    "KSamplerSelect": [("SAMPLER", "SAMPLER")],
    "BasicScheduler": [("SIGMAS", "SIGMAS")],
    "SamplerCustom": [("output", "LATENT"), ("denoised_output", "LATENT")],
    "SamplerLabScheduleOptimizer": [("sigmas", "SIGMAS"), ("report", "STRING")],
    "SamplerLabPlotSigmas": [("IMAGE", "IMAGE")],
})


def lab_equal_nfe_shootout():
    """Samplers compared at the same number of model calls (equal_cost on) on the lab model."""
    g = Graph()
    model, cond, latent = lab_front(g, batch=1)
    sweep = g.add("SamplerLabStepSweep",
                  [42, "fixed", 20, 3.0, "euler", "karras", 1.0,
                   "steps", "8,12,16,24", "sampler", "euler, heun, dpmpp_2m, lab_rk4, lab_dpmpp2m_unic, lab_plms_unic",
                   "none", "", True, "lab_rk4", 48, 0.02, 64, 256, "sampler_lab/equal_nfe"],
                  (380, 0), size=(380, 640), title="Step Sweep: model calls x sampler (equal cost)",
                  inputs=[("model", "MODEL", (model, 0)), ("latent_image", "LATENT", (latent, 0)),
                          ("positive", "CONDITIONING", (cond, 0)), ("negative", "CONDITIONING", (cond, 1))])
    g.add("SaveImage", ["sampler_lab/equal_nfe_grid"], (800, 0), inputs=[("images", "IMAGE", (sweep, 0))],
          size=(520, 700), title="Grid")
    g.add("SaveImage", ["sampler_lab/equal_nfe_chart"], (1340, 0), inputs=[("images", "IMAGE", (sweep, 2))],
          size=(620, 360), title="Chart")
    g.note("Sampler Lab - shoot-out at equal cost (no checkpoint needed)\n\n"
           "equal_cost is on, so the columns are model-call budgets (8, 12, 16, 24), not steps: heun gets half "
           "the steps of euler and lab_rk4 a quarter, and every cell's calls are counted while it runs.\n\n"
           "Look at: which row reaches the reference (lab_rk4, 48 steps) with the fewest calls; the chart's "
           "distance-vs-NFE panel. On this exact model the multistep samplers with a corrector (lab_dpmpp2m_unic, "
           "lab_plms_unic) and dpmpp_2m usually win at low budgets; high-order single-step RK needs more calls.",
           (0, 620), size=(360, 360))
    return g


def lab_schedule_optimizer():
    """A schedule fitted to the lab model and euler, compared with Karras, sampled with SamplerCustom."""
    g = Graph()
    model, cond, latent = lab_front(g, batch=4)
    select = g.add("KSamplerSelect", ["euler"], (380, 0), size=(300, 60))
    opt = g.add("SamplerLabScheduleOptimizer", [3.0, 8, 48, 8, 8, 0, "fixed", ""], (380, 110), size=(340, 330),
                inputs=[("model", "MODEL", (model, 0)), ("positive", "CONDITIONING", (cond, 0)),
                        ("negative", "CONDITIONING", (cond, 1)), ("latent_image", "LATENT", (latent, 0)),
                        ("sampler", "SAMPLER", (select, 0))])
    karras = g.add("BasicScheduler", ["karras", 8, 1.0], (380, 480), size=(300, 110),
                   inputs=[("model", "MODEL", (model, 0))])
    g.add("PreviewAny", [], (760, 420), inputs=[("source", "STRING", (opt, 1))], size=(420, 320),
          title="Optimizer report (errors on evaluation noises)")
    plot = g.add("SamplerLabPlotSigmas", ["optimised, karras", True, 768, 432, "8 steps for euler on the lab model"],
                 (760, 0), size=(340, 200), inputs=[("sigmas", "SIGMAS", (opt, 0)), ("sigmas_2", "SIGMAS", (karras, 0))])
    g.add("SaveImage", ["sampler_lab/optimizer_schedules"], (1120, 0), inputs=[("images", "IMAGE", (plot, 0))],
          size=(420, 300), title="Schedules")
    run = g.add("SamplerCustom", [True, 42, "fixed", 3.0], (760, 780), size=(320, 240),
                inputs=[("model", "MODEL", (model, 0)), ("positive", "CONDITIONING", (cond, 0)),
                        ("negative", "CONDITIONING", (cond, 1)), ("sampler", "SAMPLER", (select, 0)),
                        ("sigmas", "SIGMAS", (opt, 0)), ("latent_image", "LATENT", (latent, 0))])
    dec = g.add("SamplerLabDecode", [], (1120, 780), inputs=[("samples", "LATENT", (run, 0))], size=(220, 60))
    g.add("SaveImage", ["sampler_lab/optimizer_samples"], (1360, 780), inputs=[("images", "IMAGE", (dec, 0))],
          size=(300, 300))
    g.note("Sampler Lab - schedule optimizer (no checkpoint needed)\n\n"
           "The optimizer traces the exact sampling path of THIS model, prompt and latent size on a fine grid, "
           "picks 8 steps for euler by dynamic programming and refines them on euler's real error, then scores "
           "the result against Karras on different noises (the report: rmse_optimised vs rmse_karras).\n\n"
           "Type a name in save_as and queue: the schedule appears as lab_opt_<name> in every scheduler "
           "dropdown. Running again with the same settings reuses the saved result at once.", (0, 620), size=(360, 300))
    return g


# --- Lab Net: the learned digits model, default model of the first-run, sweep and CFG workflows -------
def labnet_front(g, parameterization="eps", digit=3, batch=8):
    loader = g.add("SamplerLabNetLoader", [parameterization, 3.0], (0, 0), size=(320, 110))
    cond = g.add("SamplerLabNetConditioning", [digit, -1], (0, 160), size=(320, 110))
    latent = g.add("SamplerLabNetEmptyLatent", [16, 16, batch], (0, 320), size=(320, 130))
    return loader, cond, latent


def labnet_first_run(pack_sampler, pack_scheduler):
    g = Graph()
    loader, cond, latent = labnet_front(g)
    ksampler_chain(g, loader, cond, latent, "euler", "karras", 10, 3.0, 0, "sampler_lab/first_run_core", vae=(loader, 1))
    ksampler_chain(g, loader, cond, latent, pack_sampler, pack_scheduler, 10, 3.0, 400, "sampler_lab/first_run_pack",
                   vae=(loader, 1))
    g.note("Sampler Lab - first run (no checkpoint, no GPU needed)\n\n"
           "Lab Net is a small learned diffusion model of handwritten digits that ships with the pack: ComfyUI's "
           "own SD-family UNet, so this is exactly how a checkpoint samples, in a second on a CPU.\n"
           "Top: ComfyUI's euler + karras. Bottom: a Sampler Lab sampler and scheduler picked straight from the "
           "stock KSampler dropdowns. Both: 8 images of the digit 3, 10 steps, cfg 3, same seed.\n\n"
           "Look at: change the digit, the steps (try 2 and 4) or the sampler and queue again. Swap the Lab Net "
           "Loader for a checkpoint loader and the same KSampler settings work unchanged.", (0, 720))
    return g


def labnet_step_sweep():
    """Steps x sampler on Lab Net with its VAE: digits in every cell, the numbers beside them."""
    g = Graph()
    loader, cond, latent = labnet_front(g, batch=1)
    sweep_with_outputs(g, loader, latent, cond, cell_size=128, vae=(loader, 1))
    g.note("Sampler Lab - step sweep on Lab Net (no checkpoint, no GPU needed)\n\n"
           "Lab Net draws a handwritten 3 (change the digit in 'Lab Net Digit'). Columns: steps 4, 8, 16, 32. "
           "Rows: euler, dpmpp_2m, heun, lab_rk4. Same seed everywhere, so every cell tries to draw the same 3.\n"
           "Under each cell: model calls actually counted (heun and lab_rk4 call the model 2 and 4 times per "
           "step), sampling time, and dist = distance to the reference (Lab Net's own ODE solved by 48 RK4 steps "
           "in log sigma, so no row is measured against itself) with PSNR/SSIM of the decoded picture.\n\n"
           "Look at: at 4 steps the strokes are blurred or broken; where each row stops changing is the step count "
           "you need. 'Recommended steps' = the cheapest setting within tolerance. Turn on equal_cost to compare "
           "at the same number of model calls instead of steps.\n\n"
           "Files: output/sampler_lab/step_sweep_<digest>/ holds grid.png, chart.png, report.json, report.csv and "
           "every finished cell; queue again after an interrupt and finished cells are reused. Swap the Lab Net "
           "Loader for a checkpoint loader (and its VAE) to sweep a real model.",
           (0, 500), size=(360, 480))
    return g


def labnet_cfg_vs_cfgpp():
    """The same seed through CFG and CFG++ (core euler and a pack sampler) on Lab Net."""
    g = Graph()
    loader, cond, latent = labnet_front(g, digit=5)
    rows = [("euler", 5.0), ("euler_cfg_pp", 1.0), ("lab_plms", 5.0), ("lab_plms_cfg_pp", 1.0)]
    for k, (sampler, cfg) in enumerate(rows):
        ksampler_chain(g, loader, cond, latent, sampler, "karras", 12, cfg, 400 * k,
                       f"sampler_lab/cfg_vs_cfgpp_{k + 1}_{sampler}", vae=(loader, 1))
    g.note("Sampler Lab - CFG vs CFG++ on Lab Net (no checkpoint needed)\n\n"
           "Four rows, same seed, same 12 karras steps, 8 images of the digit 5 against the unconditional model:\n"
           "1. euler, classic CFG 5.0    2. euler_cfg_pp, CFG++ 1.0\n"
           "3. lab_plms, classic CFG 5.0  4. lab_plms_cfg_pp, CFG++ 1.0 (the pack's CFG++ form, same model calls)\n\n"
           "CFG++ (Chung et al. 2024, arXiv:2406.08070) steps with the guided image estimate but re-noises with the "
           "unconditional noise estimate. Its scale uses ComfyUI's *_cfg_pp convention: 0.5-2, and 1.0 is already "
           "strong guidance (regular CFG values like 7 are far too high).\n\n"
           "Look at: classic CFG 5 thickens and saturates the strokes; CFG++ 1.0 keeps them closer to real digits. "
           "Set negative_digit to steer away from a digit. To measure instead of eyeballing, put these samplers on "
           "one axis of the step sweep.", (0, 620), size=(360, 420))
    return g


def main(pack_sampler="lab_dpmpp2m_unic", pack_scheduler="lab_ays_sd15"):
    os.makedirs(os.path.join(ROOT, "workflows"), exist_ok=True)
    lab_equal_nfe_shootout().dump(os.path.join(ROOT, "workflows", "lab_equal_nfe_shootout.json"))
    lab_schedule_optimizer().dump(os.path.join(ROOT, "workflows", "lab_schedule_optimizer.json"))
    # Lab Net (learned digits) is the default model of the workflows people open first
    labnet_first_run(pack_sampler, pack_scheduler).dump(os.path.join(ROOT, "workflows", "lab_first_run.json"))
    labnet_step_sweep().dump(os.path.join(ROOT, "workflows", "lab_step_sweep.json"))
    labnet_cfg_vs_cfgpp().dump(os.path.join(ROOT, "workflows", "lab_cfg_vs_cfgpp.json"))
    # the exact mixture stays for the numbers (exact reference solution)
    lab_first_run(pack_sampler, pack_scheduler).dump(os.path.join(ROOT, "workflows", "lab_mixture_first_run.json"))
    lab_step_sweep().dump(os.path.join(ROOT, "workflows", "lab_mixture_step_sweep.json"))
    lab_cfg_vs_cfgpp().dump(os.path.join(ROOT, "workflows", "lab_mixture_cfg_vs_cfgpp.json"))
    model_sd15_ays().dump(os.path.join(ROOT, "workflows", "model_sd15_ays.json"))
    model_sdxl_turbo_trailing().dump(os.path.join(ROOT, "workflows", "model_sdxl_turbo_trailing.json"))
    model_sdxl_step_sweep().dump(os.path.join(ROOT, "workflows", "model_sdxl_step_sweep.json"))
    model_flux_cfgpp_sweep().dump(os.path.join(ROOT, "workflows", "model_flux_cfgpp_sweep.json"))
    model_sd35_shift_sweep().dump(os.path.join(ROOT, "workflows", "model_sd35_shift_sweep.json"))
    model_wan22_boundary_sweep().dump(os.path.join(ROOT, "workflows", "model_wan22_boundary_sweep.json"))
    model_controlnet_end_sweep().dump(os.path.join(ROOT, "workflows", "model_controlnet_end_sweep.json"))
    model_preview_vs_final_sweep().dump(os.path.join(ROOT, "workflows", "model_preview_vs_final_sweep.json"))


if __name__ == "__main__":
    import sys
    main(*sys.argv[1:3])
