"""Chart of a sweep drawn with Pillow's ImageDraw: distance to the reference and sampling time
against steps (or counted model calls), one line per sampler/scheduler/... group, with the
tolerance as a dashed line. The distance axis is logarithmic, and so is the x axis when its values
span a factor of 4 or more: each says so in its label. Every axis labels its ticks in one format."""
import math

import numpy as np
from PIL import Image, ImageDraw

from .grid import font, line_height, text_width, wrap_text

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
MARKERS = ("circle", "square", "triangle", "diamond")
MARKER_R = 5                      # markers are 11 px shapes; lines 3 px wide
LINE_W = 3


def _log_ticks(lo, hi, limit=8):
    """Ticks at 1, 2 and 5 times the powers of ten in [lo, hi]; over `limit` of them, the powers of
    ten alone (every one, or every k-th), so the labels keep one pattern."""
    def between(mantissas):
        out = []
        for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
            out += [m * 10.0 ** k for m in mantissas if lo * 0.999 <= m * 10.0 ** k <= hi * 1.001]
        return out
    ticks = between((1, 2, 5))
    if len(ticks) > limit:
        ticks = between((1,))
        step = -(-len(ticks) // limit)
        ticks = ticks[::step]
    return ticks


def _lin_ticks(lo, hi, limit=6):
    span = hi - lo if hi > lo else 1.0
    raw = span / limit
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def tick_labels(ticks):
    """One format for all tick labels of an axis: whole numbers when every tick is one (steps,
    model calls, 1 / 2 / 5 decades above 1), else the same scientific form for all (1e-03, 2e-03,
    5e-01, 1e+00), else plain decimals with one number of decimals (0.00, 0.25, 0.50)."""
    if all(float(t).is_integer() and abs(t) < 1e5 for t in ticks):
        return [str(int(t)) for t in ticks]
    nonzero = [abs(t) for t in ticks if t != 0]
    if nonzero and (min(nonzero) < 0.01 or max(nonzero) >= 1e5):
        return [f"{t:.0e}" for t in ticks]
    decimals = 0
    while decimals < 6 and any(abs(round(t, decimals) - t) > 1e-9 * max(1.0, abs(t)) for t in ticks):
        decimals += 1
    return [f"{t:.{decimals}f}" for t in ticks]


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


AXIS = (60, 60, 60)
GRID = (235, 235, 235)
LABEL = (40, 40, 40)
HEAD = (10, 10, 10)
TOL = (200, 0, 0)


def _marker(draw, kind, x, y, color, r=MARKER_R):
    x, y = round(x), round(y)
    if kind == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=color)
    elif kind == "triangle":                       # apex up, base at the bottom
        draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=color)
    elif kind == "diamond":
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=color)
    else:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color)


def _dashed(draw, x0, x1, y, color, on=7, off=5, width=2):
    """A horizontal dashed line `width` px thick centred on y (within half a pixel)."""
    row = int(math.floor(y))
    x = int(x0)
    while x <= x1:
        draw.rectangle((x, row, min(int(x1), x + on - 1), row + width - 1), fill=color)
        x += on + off


def _panel(draw, box, series, key, title, x_label, logy, fnt, small, tolerance=None):
    """Grid, ticks, labels and frame of one panel; returns its lines [(series index or
    "tolerance", pixel points or y)] to draw over everything else."""
    xs = [p["x"] for s in series for p in s["points"] if p.get(key) is not None]
    ys = [p[key] for s in series for p in s["points"] if p.get(key) is not None]
    if tolerance is not None:
        ys = ys + [tolerance]
    logx = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 4
    ax = _Axes(box, xs, ys, logx, logy)
    x0, y0, x1, y1 = box
    lh = line_height(small)
    labels = []
    xt = [t for t in ax.xticks(xs) if x0 - 1 <= ax.px(t, 10 ** ax.yr[0] if logy else ax.yr[0])[0] <= x1 + 1]
    for t, s in zip(xt, tick_labels(xt)):
        px = round(ax.px(t, 10 ** ax.yr[0] if logy else ax.yr[0])[0])
        draw.line((px, y0, px, y1), fill=GRID)
        draw.line((px, y1, px, y1 + 5), fill=AXIS)
        labels.append((px - text_width(small, s) / 2, y1 + 7, s))
    yt = [t for t in ax.yticks() if y0 - 1 <= ax.px(10 ** ax.xr[0] if logx else ax.xr[0], t)[1] <= y1 + 1]
    for t, s in zip(yt, tick_labels(yt)):
        py = round(ax.px(10 ** ax.xr[0] if logx else ax.xr[0], t)[1])
        draw.line((x0, py, x1, py), fill=GRID)
        draw.line((x0 - 5, py, x0, py), fill=AXIS)
        labels.append((x0 - 8 - text_width(small, s), py - lh / 2, s))
    draw.rectangle(box, outline=AXIS)
    for x, y, s in labels:
        draw.text((x, y), s, fill=LABEL, font=small)
    draw.text((x0, y0 - line_height(fnt) - 4), title + (" (log scale)" if logy else ""), fill=HEAD, font=fnt)
    x_label = x_label + (" (log scale)" if logx else "")
    draw.text(((x0 + x1) / 2 - text_width(small, x_label) / 2, y1 + 9 + lh), x_label, fill=LABEL, font=small)
    lines = []
    if tolerance is not None and tolerance > 0:
        _, ty = ax.px(10 ** ax.xr[0] if logx else ax.xr[0], tolerance)
        lines.append(("tolerance", ty))
        draw.text((x1 - text_width(small, "tolerance") - 6, ty - lh - 2), "tolerance", fill=TOL, font=small)
    for i, s in enumerate(series):
        pts = sorted((p["x"], p[key]) for p in s["points"] if p.get(key) is not None
                     and math.isfinite(p[key]) and (p[key] > 0 or not logy) and (p["x"] > 0 or not logx))
        lines.append((i, [ax.px(x, y) for x, y in pts]))
    return lines


def _series_style(i):
    return COLORS[i % len(COLORS)], MARKERS[(i // len(COLORS)) % len(MARKERS)]


def _draw_lines(draw, panels):
    """Over the text: the dashed tolerance lines (2 px, 7 on / 5 off), every series' line, then
    the markers on top."""
    markers = []
    for (x0, _, x1, _), items in panels:
        for i, xy in items:
            if i == "tolerance":
                _dashed(draw, x0, x1, xy, TOL)
                continue
            color, marker = _series_style(i)
            if len(xy) > 1:
                draw.line([(round(x), round(y)) for x, y in xy], fill=color, width=LINE_W, joint="curve")
            markers += [(marker, x, y, color) for x, y in xy]
    for marker, x, y, color in markers:
        _marker(draw, marker, x, y, color)


def draw_chart(series, x_label, tolerance=None, width=1000, height=480, title=""):
    """series: [{"name": str, "points": [{"x", "error", "time"}]}]. Returns uint8 (H, W, 3):
    two panels (log distance with the dashed tolerance line, and time, against x) over a legend."""
    fnt, mid, small = font(22), font(18), font(16)
    lh = line_height(small)
    legend = [wrap_text(s["name"], small, width // 3 - 40)[0] for s in series]
    per_row = int(max(1, (width - 80) // max(1, max([text_width(small, t) for t in legend] or [100]) + 50)))
    legend_h = ((len(series) + per_row - 1) // per_row) * (lh + 6) + 10
    img = Image.new("RGB", (width, height + legend_h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((20, 10), title, fill=HEAD, font=fnt)
    top, bottom = 90, height - 70
    half = width // 2
    left = (100, top, half - 40, bottom)
    right = (half + 80, top, width - 40, bottom)
    lines_l = _panel(draw, left, series, "error", "distance to reference (relative RMSE)", x_label, True, mid,
                     small, tolerance)
    lines_r = _panel(draw, right, series, "time", "sampling time per cell (s)", x_label, False, mid, small)
    col_w = (width - 80) // per_row
    _draw_lines(draw, [(left, lines_l), (right, lines_r)])
    for i, name in enumerate(legend):
        x = 40 + (i % per_row) * col_w
        yy = height + (i // per_row) * (lh + 6)
        color, marker = _series_style(i)
        draw.text((x + 36, yy), name, fill=(20, 20, 20), font=small)
        draw.rectangle((x, round(yy + lh / 2) - 1, x + 28, round(yy + lh / 2) + 1), fill=color)
        _marker(draw, marker, x + 14, yy + lh / 2, color)
    return np.array(img, dtype=np.uint8)
