"""Dev tool (not shipped): renders the help-page pictures from the lab model (exact denoiser).
Run: .labenv/venv/bin/python scripts/make_doc_images.py"""
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(ROOT)
from lab import default_mixture, latent_to_rgb  # noqa: E402
from lab.simple_solvers import euler, karras_sigmas  # noqa: E402
from samplers.cfgpp import CFGPPModel  # noqa: E402




def cfg_vs_cfgpp(path):
    mix = default_mixture((4, 16, 16), spread=0.05)
    n = 4
    cw = torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), 3).double()
    dc, du = mix.denoiser("eps", class_weights=cw), mix.denoiser("eps")
    sigmas = karras_sigmas(12)
    x = torch.randn(n, 4, 16, 16, generator=torch.Generator().manual_seed(42), dtype=torch.float64) * float(sigmas[0])
    rows = []
    for label, scale, pp in (("CFG 4.0", 4.0, False), ("CFG 8.0", 8.0, False), ("CFG++ 0.8", 0.8, True), ("CFG++ 1.5", 1.5, True)):
        box = {}

        def guided(xx, s, scale=scale):
            c, u = dc(xx, s), du(xx, s)
            box["u"] = u
            return u + scale * (c - u)
        model = CFGPPModel(guided, lambda: box["u"], sigmas, "ve") if pp else guided
        rows.append((label, latent_to_rgb(euler(model, x, sigmas))))
    w = 110 + 4 * 132
    img = Image.new("RGB", (w, 20 + len(rows) * 132), "white")
    draw = ImageDraw.Draw(img)
    draw.text((110, 4), "same seed, euler 12 steps, lab model (class 0)", fill="black")
    for r, (label, ims) in enumerate(rows):
        draw.text((8, 20 + r * 132 + 60), label, fill="black")
        for c in range(ims.shape[0]):
            tile = Image.fromarray((ims[c].numpy() * 255).astype(np.uint8))
            img.paste(tile, (110 + c * 132, 20 + r * 132))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path)
    print(path)


if __name__ == "__main__":
    cfg_vs_cfgpp(os.path.join(ROOT, "web", "docs", "images", "cfg_vs_cfgpp.png"))
