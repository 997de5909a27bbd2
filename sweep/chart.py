"""Chart of a sweep drawn with Pillow (no plotting library): distance to the reference and
sampling time against steps (or counted model calls), one line per sampler/scheduler/... group,
with the tolerance as a dashed line."""
import math

import numpy as np
from PIL import Image, ImageDraw

from .grid import font, line_height, text_width, wrap_text

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
MARKERS = ("circle", "square", "triangle", "diamond")


def _log_ticks(lo, hi, limit=8):
    ticks = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** k
            if lo * 0.999 <= v <= hi * 1.001:
                ticks.append(v)
    while len(ticks) > limit:
        ticks = ticks[::2]
    return ticks


def _lin_ticks(lo, hi, limit=6):
    span = hi - lo if hi > lo else 1.0
    raw = span / limit
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:g}"


class _Axes:
    def __init__(self, box, xs, ys, logx, logy):
        self.box, self.logx, self.logy = box, logx, logy
        self.xr = self._range(xs, logx)
        self.yr = self._range(ys, logy)

    @staticmethod
    def _range(vals, log):
        vals = [v for v in vals if v is not None and math.isfinite(v) and (v > 0 or not log)]
        if not vals:
            return (1.0, 10.0) if log else (0.0, 1.0)
        lo, hi = min(vals), max(vals)
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
            if hi - lo < 0.3:
                lo, hi = lo - 0.15, hi + 0.15
            return lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
        if hi == lo:
            lo, hi = lo - 1, hi + 1
        lo = 0.0 if lo >= 0 and lo < 0.5 * hi else lo
        return lo, hi + 0.05 * (hi - lo)

    def px(self, x, y):
        x0, y0, x1, y1 = self.box
        fx = ((math.log10(x) if self.logx else x) - self.xr[0]) / (self.xr[1] - self.xr[0])
        fy = ((math.log10(y) if self.logy else y) - self.yr[0]) / (self.yr[1] - self.yr[0])
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    def xticks(self, data=()):
        distinct = sorted(set(data))
        if 0 < len(distinct) <= 12:        # few swept values: tick exactly at them
            return distinct
        lo, hi = self.xr
        return _log_ticks(10 ** lo, 10 ** hi) if self.logx else _lin_ticks(lo, hi)

    def yticks(self):
        lo, hi = self.yr
        return _log_ticks(10 ** lo, 10 ** hi) if self.logy else _lin_ticks(lo, hi)


def _marker(d, kind, x, y, r, color):
    if kind == "square":
        d.rectangle((x - r, y - r, x + r, y + r), fill=color)
    elif kind == "triangle":
        d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=color)
    elif kind == "diamond":
        d.polygon([(x, y - r), (x - r, y), (x, y + r), (x + r, y)], fill=color)
    else:
        d.ellipse((x - r, y - r, x + r, y + r), fill=color)


def _panel(d, box, series, key, title, x_label, logy, fnt, small, tolerance=None):
    xs = [p["x"] for s in series for p in s["points"] if p.get(key) is not None]
    ys = [p[key] for s in series for p in s["points"] if p.get(key) is not None]
    if tolerance is not None:
        ys = ys + [tolerance]
    logx = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 4
    ax = _Axes(box, xs, ys, logx, logy)
    x0, y0, x1, y1 = box
    d.rectangle(box, outline=(60, 60, 60))
    lh = line_height(small)
    for t in ax.xticks(xs):
        px, _ = ax.px(t, 10 ** ax.yr[0] if logy else ax.yr[0])
        if x0 - 1 <= px <= x1 + 1:
            d.line((px, y1, px, y1 + 5), fill=(60, 60, 60))
            d.line((px, y0, px, y1), fill=(235, 235, 235))
            s = _fmt(t)
            d.text((px - text_width(small, s) / 2, y1 + 7), s, fill=(40, 40, 40), font=small)
    for t in ax.yticks():
        _, py = ax.px(10 ** ax.xr[0] if logx else ax.xr[0], t)
        if y0 - 1 <= py <= y1 + 1:
            d.line((x0 - 5, py, x0, py), fill=(60, 60, 60))
            d.line((x0, py, x1, py), fill=(235, 235, 235))
            s = _fmt(t)
            d.text((x0 - 8 - text_width(small, s), py - lh / 2), s, fill=(40, 40, 40), font=small)
    d.rectangle(box, outline=(60, 60, 60))
    d.text((x0, y0 - line_height(fnt) - 4), title, fill=(10, 10, 10), font=fnt)
    x_label = x_label + (" (log scale)" if logx else "")
    d.text(((x0 + x1) / 2 - text_width(small, x_label) / 2, y1 + 9 + lh), x_label, fill=(40, 40, 40), font=small)
    if tolerance is not None and tolerance > 0:
        _, ty = ax.px(10 ** ax.xr[0] if logx else ax.xr[0], tolerance)
        for sx in range(int(x0), int(x1), 12):
            d.line((sx, ty, min(sx + 6, x1), ty), fill=(200, 0, 0), width=2)
        d.text((x1 - text_width(small, "tolerance") - 6, ty - lh - 2), "tolerance", fill=(200, 0, 0), font=small)
    for i, s in enumerate(series):
        color, marker = COLORS[i % len(COLORS)], MARKERS[(i // len(COLORS)) % len(MARKERS)]
        pts = sorted((p["x"], p[key]) for p in s["points"] if p.get(key) is not None
                     and math.isfinite(p[key]) and (p[key] > 0 or not logy) and (p["x"] > 0 or not logx))
        xy = [ax.px(x, y) for x, y in pts]
        if len(xy) > 1:
            d.line(xy, fill=color, width=3)
        for x, y in xy:
            _marker(d, marker, x, y, 5, color)


def draw_chart(series, x_label, tolerance=None, width=1400, height=640, title=""):
    """series: [{"name": str, "points": [{"x", "error", "time"}]}]. Returns uint8 (H, W, 3)."""
    fnt, small = font(22), font(16)
    lh = line_height(small)
    legend = [wrap_text(s["name"], small, width // 3 - 40)[0] for s in series]
    per_row = int(max(1, (width - 80) // max(1, max([text_width(small, t) for t in legend] or [100]) + 50)))
    legend_h = ((len(series) + per_row - 1) // per_row) * (lh + 6) + 10
    img = Image.new("RGB", (width, height + legend_h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    if title:
        d.text((20, 10), title, fill=(10, 10, 10), font=fnt)
    top, bottom = 90, height - 70
    half = width // 2
    _panel(d, (100, top, half - 40, bottom), series, "error", "distance to reference (relative latent RMSE, log)",
           x_label, True, fnt, small, tolerance)
    _panel(d, (half + 80, top, width - 40, bottom), series, "time", "sampling time per cell (s)",
           x_label, False, fnt, small)
    y = height
    col_w = (width - 80) // per_row
    for i, name in enumerate(legend):
        color, marker = COLORS[i % len(COLORS)], MARKERS[(i // len(COLORS)) % len(MARKERS)]
        x = 40 + (i % per_row) * col_w
        yy = y + (i // per_row) * (lh + 6)
        d.line((x, yy + lh / 2, x + 28, yy + lh / 2), fill=color, width=3)
        _marker(d, marker, x + 14, yy + lh / 2, 5, color)
        d.text((x + 36, yy), name, fill=(20, 20, 20), font=small)
    return np.asarray(img, dtype=np.uint8).copy()
