"""Train Lab Net (eps and flow) and its digit scorer on CPU, deterministically (dev tool, not shipped).

    .labenv/venv/bin/python scripts/train_labnet.py [--steps N] [--only eps|flow|scorer]

Data: scikit-learn's bundled digits (no download), split once with a fixed seed into
TRAIN (1,397 images: diffusion models and scorer) and HELD-OUT (400: scorer accuracy, FD reference).
Network: ComfyUI's UNetModel built by comfy.model_base.BaseModel from nodes/labnet_model.py's config,
so the trained module is exactly the one the loader builds. Losses (eps MSE on SD1.5's discrete
sigmas; velocity MSE for rectified flow with shifted-uniform sigmas) are printed every 100 steps;
weights are the EMA (decay 0.999). Writes lab/labnet_weights/*.safetensors and a JSON log beside
them that the model card quotes. Never run at import or in CI.
"""
import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(ROOT)   # at the end: ComfyUI's top-level modules win
from bench.common import load_comfy  # noqa: E402

SEED = 0
HELD_OUT = 400
NULL_DROPOUT = 0.15


def digits_split():
    """(train pixels, train labels, held-out pixels, held-out labels), fixed seed."""
    from sklearn.datasets import load_digits
    d = load_digits()
    from lab.labnet import digits_to_pixels
    pix = digits_to_pixels(d.images)
    lab = torch.as_tensor(d.target).long()
    perm = torch.randperm(pix.shape[0], generator=torch.Generator().manual_seed(SEED))
    held, train = perm[:HELD_OUT], perm[HELD_OUT:]
    return pix[train], lab[train], pix[held], lab[held]


def init_weights(module):
    """ComfyUI's ops skip weight init (checkpoints overwrite it): apply torch's defaults here."""
    for m in module.modules():
        for cls in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(m, cls):
                cls.reset_parameters(m)
                break


def lr_at(step, steps, peak, warmup=200):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + torch.cos(torch.tensor((step - warmup) / max(1, steps - warmup) * torch.pi)).item())


def train_diffusion(pack, parameterization, pixels, labels, steps, batch, log):
    from lab.labnet import class_context, pixels_to_latent, NULL_CLASS
    from safetensors.torch import save_file
    labnet_model = sys.modules[pack.__name__ + ".nodes.labnet_model"]
    torch.manual_seed(SEED + (1 if parameterization == "eps" else 2))
    base = labnet_model.build_labnet_base(parameterization, device=torch.device("cpu"))
    net, ms = base.diffusion_model, base.model_sampling
    init_weights(net)
    net.train()
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
    latents = pixels_to_latent(pixels)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"[{parameterization}] UNetModel {n_params} parameters, {steps} steps x batch {batch}", flush=True)
    t0, curve, run = time.time(), [], 0.0
    for step in range(steps):
        idx = torch.randint(0, latents.shape[0], (batch,))
        x0, cls = latents[idx], labels[idx].clone()
        cls[torch.rand(batch) < NULL_DROPOUT] = NULL_CLASS
        noise = torch.randn_like(x0)
        if parameterization == "eps":
            sigma = ms.sigmas[torch.randint(0, ms.sigmas.shape[0], (batch,))]
            target = noise
        else:   # uniform timesteps through the model's own shift: what a 'simple' schedule visits
            sigma = ms.sigma(torch.rand(batch) * ms.multiplier)
            target = noise - x0
        xt = ms.noise_scaling(sigma, noise, x0)
        out = net(ms.calculate_input(sigma, xt), ms.timestep(sigma).float(), context=class_context(cls))
        loss = torch.nn.functional.mse_loss(out, target)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, 2e-3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for k, v in net.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay) if v.is_floating_point() else ema[k].copy_(v)
        run = loss.item() if step == 0 else 0.98 * run + 0.02 * loss.item()
        if (step + 1) % 100 == 0 or step == steps - 1:
            curve.append([step + 1, round(run, 5)])
            print(f"[{parameterization}] step {step + 1:5d}  loss {run:.4f}  {time.time() - t0:6.0f} s", flush=True)
    out_path = os.path.join(ROOT, "lab", "labnet_weights", f"labnet_{parameterization}.safetensors")
    save_file({k: v.contiguous() for k, v in ema.items()}, out_path)
    log[parameterization] = {"parameters": n_params, "steps": steps, "batch": batch, "seconds": round(time.time() - t0, 1),
                             "loss_curve": curve, "final_loss": curve[-1][1]}


def train_scorer(train_pix, train_lab, held_pix, held_lab, log, epochs=40, batch=64):
    from lab.digit_scorer import DigitScorer, gaussian_stats, frechet_distance
    from safetensors.torch import save_file
    torch.manual_seed(SEED + 3)
    model = DigitScorer()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    n, t0 = train_pix.shape[0], time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            x = train_pix[idx]
            # robustness to what samplers produce: +-1 px shifts and a little pixel noise
            sh = torch.randint(-1, 2, (2,))
            x = torch.roll(x, shifts=(int(sh[0]), int(sh[1])), dims=(2, 3))
            x = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
            loss = torch.nn.functional.cross_entropy(model(x), train_lab[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if (epoch + 1) % 10 == 0:
            print(f"[scorer] epoch {epoch + 1}  loss {loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        acc = float((model(held_pix).argmax(1) == held_lab).double().mean())
        fh, ft = model.features(held_pix), model.features(train_pix)
        model.ref_mean.copy_(gaussian_stats(fh)[0])
        model.ref_cov.copy_(gaussian_stats(fh)[1])
        # noise floor of FD-digits: real digits the scorer's reference never saw, 200 at a time
        g = torch.Generator().manual_seed(SEED + 4)
        floor = []
        for _ in range(20):
            pick = torch.randperm(ft.shape[0], generator=g)[:200]
            floor.append(frechet_distance(*gaussian_stats(ft[pick]), model.ref_mean, model.ref_cov))
        half = torch.randperm(fh.shape[0], generator=g)
        fd_halves = frechet_distance(*gaussian_stats(fh[half[:200]]), *gaussian_stats(fh[half[200:]]))
    out_path = os.path.join(ROOT, "lab", "labnet_weights", "digit_scorer.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out_path)
    fl = torch.tensor(floor, dtype=torch.float64)
    log["scorer"] = {"epochs": epochs, "seconds": round(time.time() - t0, 1), "held_out_accuracy": round(acc, 4),
                     "fd_train200_vs_heldout": {"mean": round(float(fl.mean()), 3), "std": round(float(fl.std()), 3),
                                                "max": round(float(fl.max()), 3), "draws": len(floor)},
                     "fd_heldout_half_vs_half": round(fd_halves, 3)}
    print(f"[scorer] held-out accuracy {acc:.4f}; FD floor (200 real vs held-out) {fl.mean():.3f} +- {fl.std():.3f}; "
          f"FD held-out halves {fd_halves:.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4000, help="optimizer steps per diffusion model")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["eps", "flow", "scorer"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pack = load_comfy()
    train_pix, train_lab, held_pix, held_lab = digits_split()
    log_path = os.path.join(ROOT, "lab", "labnet_weights", "training_log.json")
    log = {}
    log["command"] = "python scripts/train_labnet.py " + " ".join(sys.argv[1:])
    log["data"] = {"train": int(train_pix.shape[0]), "held_out": int(held_pix.shape[0]), "seed": SEED}
    t0 = time.time()
    if args.only in (None, "scorer"):
        train_scorer(train_pix, train_lab, held_pix, held_lab, log)
    for p in ("eps", "flow"):
        if args.only in (None, p):
            train_diffusion(pack, p, train_pix, train_lab, args.steps, args.batch, log)
    log["threads"] = args.threads
    # parts may train in parallel processes (--only): merge into the log as it is now
    merged = json.load(open(log_path)) if os.path.isfile(log_path) else {}
    commands = merged.get("commands", {})
    commands[args.only or "all"] = log.pop("command")
    merged.update(log, commands=commands)
    with open(log_path, "w") as f:
        json.dump(merged, f, indent=1)
    print(f"done in {time.time() - t0:.0f} s; log {log_path}")


if __name__ == "__main__":
    main()
