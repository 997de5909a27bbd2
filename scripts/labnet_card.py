"""Write Lab Net's model card from the trained files (dev tool, not shipped):

    .labenv/venv/bin/python scripts/labnet_card.py

Every number in the card is computed here or read from the training script's log
(lab/labnet_weights/training_log.json): parameter counts, losses, times, the scorer's held-out accuracy
and FD floor, the quality of samples (core euler, 30 steps, cfg 3, 20 per digit, through ComfyUI's
own sampling code), the sample grids, and the SHA-256 of each shipped file.
"""
import hashlib
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(ROOT)
from bench.common import load_comfy  # noqa: E402
from lab import labnet  # noqa: E402
from lab.digit_scorer import load_scorer, score_digits  # noqa: E402

SCHEDULER = {"eps": "karras", "flow": "simple"}


def sample_digits(parameterization, per_digit, steps=30, cfg=3.0, seed=1234):
    import comfy.sample
    import nodes
    model, _ = nodes.NODE_CLASS_MAPPINGS["SamplerLabNetLoader"]().load(parameterization, labnet.FLOW_SHIFT)
    digits = [d for d in range(10) for _ in range(per_digit)]
    latent = torch.zeros(len(digits), labnet.LATENT_CHANNELS, labnet.LATENT_SIZE, labnet.LATENT_SIZE)
    pos, neg = [[labnet.class_context(digits), {}]], [[labnet.class_context([-1] * len(digits)), {}]]
    t0 = time.time()
    lat = comfy.sample.sample(model, comfy.sample.prepare_noise(latent, seed), steps, cfg, "euler",
                              SCHEDULER[parameterization], pos, neg, latent, denoise=1.0, disable_pbar=True, seed=seed)
    return labnet.latent_to_pixels(lat).clamp(-1, 1), torch.tensor(digits), time.time() - t0


def save_grid(pixels, per_row, path, zoom=3):
    from PIL import Image
    n = pixels.shape[0]
    rows = (n + per_row - 1) // per_row
    s = labnet.IMAGE_SIZE
    canvas = torch.ones(rows * (s + 2), per_row * (s + 2))
    for k in range(n):
        r, c = divmod(k, per_row)
        canvas[r * (s + 2) + 1:r * (s + 2) + 1 + s, c * (s + 2) + 1:c * (s + 2) + 1 + s] = 1 - (pixels[k, 0] + 1) / 2
    img = Image.fromarray((canvas * 255).round().byte().numpy(), "L")
    img.resize((img.width * zoom, img.height * zoom), Image.NEAREST).save(path, optimize=True)


def sha(name):
    return hashlib.sha256(open(os.path.join(labnet.WEIGHTS_DIR, name), "rb").read()).hexdigest()


def main():
    torch.set_num_threads(1)
    load_comfy()
    log = json.load(open(os.path.join(labnet.WEIGHTS_DIR, "training_log.json")))
    scorer = load_scorer()
    quality = {}
    for p in labnet.PARAMETERIZATIONS:
        pix, labels, secs = sample_digits(p, 20)
        quality[p] = dict(score_digits(scorer, pix, labels), seconds=secs)
        save_grid(pix[torch.arange(10).repeat_interleave(8) * 20 + torch.arange(8).repeat(10)], 8,
                  os.path.join(labnet.WEIGHTS_DIR, f"samples_{p}.png"))
    sc = log["scorer"]
    files = list(labnet.WEIGHT_FILES.values()) + [labnet.SCORER_FILE]
    sizes = {f: os.path.getsize(os.path.join(labnet.WEIGHTS_DIR, f)) for f in files}
    cfg = labnet.UNET_CONFIG
    lines = [
        "# Lab Net model card",
        "",
        "Made by `scripts/labnet_card.py` from the shipped files and `training_log.json`; every number below is",
        "computed by that script or by the training run it reads.",
        "",
        "## Data",
        f"scikit-learn's bundled handwritten digits (`sklearn.datasets.load_digits`: 1,797 images, 8x8, values 0-16,",
        f"10 classes; UCI 'Optical Recognition of Handwritten Digits'), upscaled bilinearly to 16x16 and mapped to",
        f"[-1, 1]. Split once with seed {log['data']['seed']}: {log['data']['train']} training images (diffusion models",
        f"and scorer), {log['data']['held_out']} held out (scorer accuracy, FD-digits reference). Nothing is downloaded:",
        "the data ships inside scikit-learn, which only the training script and the tests need.",
        "",
        "## Architecture",
        f"ComfyUI's own `UNetModel` (comfy/ldm/modules/diffusionmodules/openaimodel.py), built by",
        f"`comfy.model_base.BaseModel` from a supported-model config exactly as an SD1.5 checkpoint is",
        f"(`nodes/labnet_model.py`): model_channels {cfg['model_channels']}, channel_mult {cfg['channel_mult']},",
        f"res blocks {cfg['num_res_blocks']}, spatial transformers (linear in/out, head width {cfg['num_head_channels']})",
        f"at the 4x4 level and in the middle, cross-attention on one {labnet.CONTEXT_DIM}-wide token: a one-hot of",
        f"the digit or of the null class (index {labnet.NULL_CLASS}, trained with 15% dropout for CFG).",
        f"{log['eps']['parameters']:,} parameters per model. Latent: 4x8x8, the exact space-to-depth of the",
        "16x16 image (`lab/labnet.py`); the VAE is that map as a `comfy.sd.VAE`.",
        "",
        "| file | what | bytes | SHA-256 |",
        "|---|---|---|---|",
        f"| {labnet.WEIGHT_FILES['eps']} | eps prediction, SD1.5's discrete schedule (scaled-linear betas, 1000 steps) | {sizes[labnet.WEIGHT_FILES['eps']]} | {sha(labnet.WEIGHT_FILES['eps'])} |",
        f"| {labnet.WEIGHT_FILES['flow']} | rectified flow (CONST), shift {labnet.FLOW_SHIFT} as SD3 | {sizes[labnet.WEIGHT_FILES['flow']]} | {sha(labnet.WEIGHT_FILES['flow'])} |",
        f"| {labnet.SCORER_FILE} | digit classifier + held-out feature statistics | {sizes[labnet.SCORER_FILE]} | {sha(labnet.SCORER_FILE)} |",
        "",
        "## Training",
        "Commands: " + "; ".join(f"`{c}`" for c in log['commands'].values()) + f" on the 2-core CPU reference machine, {log.get('threads', 1)} torch thread(s) each, fixed seeds",
        "(deterministic). AdamW, peak lr 2e-3 with 200 warm-up steps and cosine decay, gradient clip 1, EMA 0.999 (the",
        "shipped weights). eps: MSE on the noise at SD1.5's 1000 discrete sigmas; flow: MSE on the velocity",
        "(noise - x0) at shifted-uniform sigmas (what a `simple` schedule visits).",
        "",
        "| model | steps x batch | time | loss at 10% / 50% / end (running mean) |",
        "|---|---|---|---|",
    ]
    for p in labnet.PARAMETERIZATIONS:
        t = log[p]
        marks = [t["loss_curve"][max(0, len(t["loss_curve"]) // 10 - 1)][1], t["loss_curve"][len(t["loss_curve"]) // 2 - 1][1], t["final_loss"]]
        lines.append(f"| {p} | {t['steps']} x {t['batch']} | {t['seconds'] / 60:.1f} min | "
                     f"{marks[0]:.4f} / {marks[1]:.4f} / {marks[2]:.4f} |")
    lines += [
        f"| scorer | {sc['epochs']} epochs | {sc['seconds']:.0f} s | - |",
        "",
        f"Wall time: {(max(log[p]['seconds'] for p in labnet.PARAMETERIZATIONS) + sc['seconds']) / 60:.1f} min - the scorer,"
        " then the eps and flow runs side by side, one process per core (the commands above, one torch thread each).",
        "The machine was shared with other work during the run, so these times are upper bounds. The losses of",
        "eps and flow are not comparable (different targets: noise vs velocity).",
        "",
        "The full loss curves (every 100 steps) are in `training_log.json`.",
        "",
        "## The scorer and its noise floor",
        f"A small CNN (`lab/digit_scorer.py`) trained on the same {log['data']['train']} images with +-1 px shifts and",
        f"pixel noise. Held-out accuracy: **{sc['held_out_accuracy']:.4f}**. FD-digits = Frechet distance between",
        "Gaussians fitted to its 32-d penultimate features, against the held-out digits' statistics (stored in the file).",
        f"Noise floor of FD-digits for 200 real images: {sc['fd_train200_vs_heldout']['mean']:.1f} +- "
        f"{sc['fd_train200_vs_heldout']['std']:.1f} (mean +- sd over {sc['fd_train200_vs_heldout']['draws']} draws of 200",
        f"training digits against the held-out reference; max {sc['fd_train200_vs_heldout']['max']:.1f}); two halves of the",
        f"held-out set: {sc['fd_heldout_half_vs_half']:.1f}. The tests' quality threshold is twice the floor's mean plus three",
        "of its standard deviations (200 samples, like the floor).",
        "",
        "## Sample quality (core euler, 30 steps, cfg 3, 20 samples per digit, seed 1234, through ComfyUI)",
        "",
        "| model | scheduler | class accuracy | FD-digits | sampling time (200 images) |",
        "|---|---|---|---|---|",
    ]
    for p in labnet.PARAMETERIZATIONS:
        q = quality[p]
        lines.append(f"| {p} | {SCHEDULER[p]} | {q['accuracy']:.3f} | {q['fd_digits']:.1f} | {q['seconds']:.1f} s |")
    lines += [
        "",
        "Sample grids (rows: digits 0-9, 8 samples each): `samples_eps.png`, `samples_flow.png`.",
        "",
        "![eps samples](samples_eps.png) ![flow samples](samples_flow.png)",
        "",
        "## Intended use and limits",
        "A benchmark and demo model: it behaves like a learned checkpoint (approximate denoiser, least accurate at",
        "the lowest noise levels, data on a low-dimensional set), costs milliseconds per call on a CPU, and draws",
        "pictures a person can judge. It is not a general image model: 16x16 grey digits only; other sizes run",
        "(the UNet is convolutional) but are outside what it learned.",
        "",
    ]
    with open(os.path.join(labnet.WEIGHTS_DIR, "MODEL_CARD.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
