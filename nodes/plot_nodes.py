"""SamplerLabPlotSigmas: one or more SIGMAS drawn as a labelled chart (step index vs sigma,
log scale) into an IMAGE, so schedules can be compared inside a workflow. Pillow only."""
import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

CATEGORY = "sampling/Sampler Lab/schedulers"
COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))  # one per series, colour-blind safe-ish
BACKGROUND, AXIS, GRID, TEXT = (255, 255, 255), (60, 60, 60), (225, 225, 225), (30, 30, 30)
SLOTS = ("sigmas", "sigmas_2", "sigmas_3", "sigmas_4")


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


class ChartFrame:
    """Maps (step index, sigma) to pixels. Log scale: decades between the smallest positive sigma and
    the largest; sigma = 0 (the usual last value) sits on its own row below the axis, labelled 0."""

    def __init__(self, series, width, height, log_scale, title):
        self.width, self.height, self.log_scale = width, height, log_scale
        self.left, self.right = 64, width - 16
        self.top = 40 if title else 16
        self.bottom = height - 44
        values = [v for s in series for v in s]
        positive = [v for v in values if v > 0]
        self.max_steps = max(1, max(len(s) for s in series) - 1)
        self.has_zero = any(v <= 0 for v in values)
        if log_scale:
            lo = min(positive) if positive else 1e-3
            hi = max(positive) if positive else 1.0
            self.lo = math.floor(math.log10(lo) * 4) / 4
            self.hi = math.ceil(math.log10(hi) * 4) / 4
            if self.hi - self.lo < 0.25:
                self.lo, self.hi = self.lo - 0.25, self.hi + 0.25
            self.plot_bottom = self.bottom - (18 if self.has_zero else 0)
        else:
            self.lo, self.hi = 0.0, (max(values) if values and max(values) > 0 else 1.0)
            self.plot_bottom = self.bottom

    def x(self, i):
        return self.left + (self.right - self.left) * i / self.max_steps

    def y(self, sigma):
        if self.log_scale:
            if sigma <= 0:
                return self.bottom
            t = (math.log10(sigma) - self.lo) / (self.hi - self.lo)
        else:
            t = (sigma - self.lo) / (self.hi - self.lo)
        return self.plot_bottom - (self.plot_bottom - self.top) * t

    def y_ticks(self):
        if not self.log_scale:
            return [(self.lo + (self.hi - self.lo) * k / 4, None) for k in range(5)]
        ticks = [(10.0 ** e, None) for e in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
        if len(ticks) < 2:  # narrow range: quarter decades
            ticks = [(10.0 ** (self.lo + (self.hi - self.lo) * k / 4), None) for k in range(5)]
        return ticks

    def x_ticks(self):
        step = max(1, math.ceil(self.max_steps / 10))
        return list(range(0, self.max_steps + 1, step))


def _fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 100 or abs(v) < 0.01:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:.3g}"


def draw_sigmas_chart(series, labels, width=768, height=432, log_scale=True, title=""):
    """A PIL image of each 1-D sigma sequence in `series` (lists of floats) with its label."""
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)
    frame = ChartFrame(series, width, height, log_scale, title)
    small, big = _font(12), _font(15)
    for value, _ in frame.y_ticks():
        y = frame.y(value)
        d.line([(frame.left, y), (frame.right, y)], fill=GRID)
        d.text((frame.left - 6, y), _fmt(value), fill=TEXT, font=small, anchor="rm")
    if log_scale and frame.has_zero:
        d.line([(frame.left, frame.bottom), (frame.right, frame.bottom)], fill=GRID)
        d.text((frame.left - 6, frame.bottom), "0", fill=TEXT, font=small, anchor="rm")
    for i in frame.x_ticks():
        x = frame.x(i)
        d.line([(x, frame.bottom), (x, frame.bottom + 4)], fill=AXIS)
        d.text((x, frame.bottom + 6), str(i), fill=TEXT, font=small, anchor="mt")
    d.line([(frame.left, frame.top), (frame.left, frame.bottom), (frame.right, frame.bottom)], fill=AXIS, width=1)
    d.text(((frame.left + frame.right) / 2, height - 4), "step", fill=TEXT, font=small, anchor="mb")
    d.text((4, frame.top - 6), "sigma (log)" if log_scale else "sigma", fill=TEXT, font=small, anchor="lb")
    if title:
        d.text((width / 2, 8), title, fill=TEXT, font=big, anchor="mt")
    for k, values in enumerate(series):
        color = COLORS[k % len(COLORS)]
        points = [(frame.x(i), frame.y(v)) for i, v in enumerate(values)]
        if len(points) > 1:
            d.line(points, fill=color, width=2)
        for px, py in points:
            d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
    legend_y = frame.top + 4
    for k, label in enumerate(labels):
        color = COLORS[k % len(COLORS)]
        lx = frame.right - 190
        d.rectangle([lx, legend_y + 2, lx + 14, legend_y + 12], fill=color)
        d.text((lx + 20, legend_y), label, fill=TEXT, font=small)
        legend_y += 18
    return img


def _values(sigmas, slot):
    flat = sigmas.detach().reshape(-1).to("cpu", torch.float64)
    if flat.numel() == 0:
        raise ValueError(f"{slot} is empty (denoise 0?): connect a schedule with at least one step")
    values = [float(v) for v in flat]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{slot} contains NaN or infinite sigmas: check the schedule node feeding it")
    return values


class SamplerLabPlotSigmas:
    DESCRIPTION = ("Draws one to four SIGMAS schedules on one chart (step index vs sigma, log scale) as an IMAGE: "
                   "see where each schedule spends its steps. Connect Preview Image or Save Image.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "plot"

    @classmethod
    def INPUT_TYPES(cls):
        optional = {slot: ("SIGMAS", {"tooltip": f"Another schedule to compare (series {k + 2})."})
                    for k, slot in enumerate(SLOTS[1:])}
        return {"required": {
            "sigmas": ("SIGMAS", {"tooltip": "The schedule to draw (e.g. from BasicScheduler or a Sampler Lab schedule node)."}),
            "labels": ("STRING", {"default": "", "tooltip":
                       "Legend labels, comma-separated, in input order (empty: sigmas, sigmas_2, ...)."}),
            "log_scale": ("BOOLEAN", {"default": True, "tooltip":
                          "Log sigma axis (recommended: schedules span 3-4 decades). A final sigma of 0 is drawn on its own row."}),
            "width": ("INT", {"default": 768, "min": 256, "max": 2048, "step": 8, "tooltip": "Image width in pixels."}),
            "height": ("INT", {"default": 432, "min": 192, "max": 2048, "step": 8, "tooltip": "Image height in pixels."}),
            "title": ("STRING", {"default": "", "tooltip": "Optional chart title."}),
        }, "optional": optional}

    def plot(self, sigmas, labels, log_scale, width, height, title, **more):
        given = [(slot, s) for slot, s in [("sigmas", sigmas)] + [(k, more.get(k)) for k in SLOTS[1:]] if s is not None]
        series = [_values(s, slot) for slot, s in given]
        names = [t.strip() for t in labels.split(",")] if labels.strip() else []
        names = [names[k] if k < len(names) and names[k] else slot for k, (slot, _) in enumerate(given)]
        names = [f"{n} ({len(v) - 1} steps)" for n, v in zip(names, series)]
        img = draw_sigmas_chart(series, names, width, height, log_scale, title)
        return (torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None],)


NODE_CLASS_MAPPINGS = {"SamplerLabPlotSigmas": SamplerLabPlotSigmas}
NODE_DISPLAY_NAME_MAPPINGS = {"SamplerLabPlotSigmas": "Plot Sigmas (Sampler Lab)"}
