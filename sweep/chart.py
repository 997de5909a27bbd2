"""Chart of a sweep drawn straight onto a numpy canvas (no plotting library, no PIL image):
distance to the reference and sampling time against steps (or counted model calls), one line per
sampler/scheduler/... group, with the tolerance as a dashed line. Axis-aligned lines and boxes are
array slices, series lines are stamped along each segment at <= 0.5 px spacing, markers are small
precomputed masks and the text comes from sweep/text.py, so a chart costs a millisecond or two."""
import functools
import math

import numpy as np

from .grid import font, line_height, text_width, wrap_text
from .text import PIXEL, TextBatch

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


AXIS = (60, 60, 60)
GRID = (235, 235, 235)
LABEL = (40, 40, 40)
HEAD = (10, 10, 10)
TOL = (200, 0, 0)


@functools.lru_cache(maxsize=32)
def _shape(kind, r):
    """(dy, dx) offsets of a filled shape of radius r around its centre pixel."""
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    if kind == "square":
        keep = np.ones_like(dy, dtype=bool)
    elif kind == "triangle":       # apex up, base at the bottom
        keep = 2 * np.abs(dx) <= dy + r
    elif kind == "diamond":
        keep = np.abs(dx) + np.abs(dy) <= r
    elif kind == "disc":           # a line's cross-section: radius r + 0.5 (odd widths)
        keep = dx * dx + dy * dy <= (r + 0.5) ** 2
    else:
        keep = dx * dx + dy * dy <= r * r + r      # circle, as round as an 11 px disc gets
    return dy[keep].astype(np.int64), dx[keep].astype(np.int64), int(r)


class _Marks:
    """Solid shapes on a contiguous uint8 (H, W, 3) image. Rectangles (grid lines, ticks, box
    edges, swatches) are painted at once as slices; series lines, markers and dashes are
    collected in drawing order and painted by paint() with one scatter of whole pixels (later
    shapes on top, except where shapes of one batched call overlap each other)."""

    def __init__(self, img):
        self.img, self.idx, self.val = img, [], []
        self.h, self.w = img.shape[:2]
        self.pix2d = img.view(PIXEL)[..., 0]          # (H, W) of whole pixels

    def rect(self, x0, y0, x1, y1, color):
        """Pixels x0..x1, y0..y1 (inclusive, rounded, clipped), painted at once (a slice)."""
        xa, xb = max(0, int(round(min(x0, x1)))), min(self.w, int(round(max(x0, x1))) + 1)
        ya, yb = max(0, int(round(min(y0, y1)))), min(self.h, int(round(max(y0, y1))) + 1)
        if xa < xb and ya < yb:
            self.pix2d[ya:yb, xa:xb] = _pixel(color)[0]

    def outline(self, box, color):
        x0, y0, x1, y1 = box
        for b in ((x0, y0, x1, y0), (x0, y1, x1, y1), (x0, y0, x0, y1), (x1, y0, x1, y1)):
            self.rect(*b, color)

    def _add(self, flat, val):
        if flat.size:
            self.idx.append(flat)
            self.val.append(val)

    def stamp(self, xs, ys, shape, colors, dedupe=False):
        """The shape (from _shape) centred on every point (xs, ys), clipped to the image;
        colors: one RGB or a _pixel array with one colour per point. dedupe: drop a point on the
        same pixel as the one before it (samples along a line)."""
        h, w = self.h, self.w
        cy = np.rint(np.asarray(ys, dtype=np.float64)).astype(np.int64)
        cx = np.rint(np.asarray(xs, dtype=np.float64)).astype(np.int64)
        colors = colors if isinstance(colors, np.ndarray) and colors.dtype == PIXEL else _pixel(colors)
        if dedupe and cy.size > 1:
            step = np.empty(cy.size, dtype=bool)
            step[0] = True
            step[1:] = (cy[1:] != cy[:-1]) | (cx[1:] != cx[:-1])
            cy, cx = cy[step], cx[step]
            if colors.size > 1:
                colors = colors[step]
        oy, ox, r = shape
        if cy.size == 0:
            return
        # offsets on the outer axis, points on the inner (long) one: fast broadcasting
        val = np.broadcast_to(colors.reshape(1, -1), (oy.size, cy.size))
        if cy.min() >= r and cy.max() < h - r and cx.min() >= r and cx.max() < w - r:
            self._add(((oy * w + ox)[:, None] + (cy * w + cx)[None, :]).ravel(), val.ravel())
            return
        py = oy[:, None] + cy[None, :]
        px = ox[:, None] + cx[None, :]
        keep = (py >= 0) & (py < h) & (px >= 0) & (px < w)
        self._add(py[keep] * w + px[keep], val[keep])

    def pixels(self, flat, color):
        flat = np.asarray(flat, dtype=np.int64)
        self._add(flat, np.broadcast_to(_pixel(color), flat.shape))

    def polylines(self, lines, width=3):
        """lines: [(xy points, RGB)]; every segment sampled at <= 0.5 px spacing and a disc
        stamped at each pixel the samples pass (all lines in one go)."""
        segs = [(np.asarray(xy, dtype=np.float64), c) for xy, c in lines if len(xy) > 1]
        if not segs:
            return
        p0 = np.concatenate([p[:-1] for p, _ in segs])
        d = np.concatenate([np.diff(p, axis=0) for p, _ in segs])
        col = np.concatenate([np.repeat(_pixel(c), len(p) - 1) for p, c in segs])
        n = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) / 0.5).astype(np.int64)) + 1   # both ends
        which = np.repeat(np.arange(len(d)), n)
        t = (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n - 1, n)
        self.stamp(p0[which, 0] + d[which, 0] * t, p0[which, 1] + d[which, 1] * t,
                   _shape("disc", (width - 1) // 2), col[which], dedupe=True)

    def paint(self):
        if self.idx:
            self.img.view(PIXEL).reshape(-1)[np.concatenate(self.idx)] = np.concatenate(self.val)
        self.idx, self.val = [], []


def _pixel(color):
    """RGB as a (1,) array of one 3-byte item (what the canvas is viewed as)."""
    return np.asarray(tuple(int(c) for c in color[:3]), dtype=np.uint8).view(PIXEL)


def _panel(under, text, box, series, key, title, x_label, logy, fnt, small, tolerance=None):
    xs = [p["x"] for s in series for p in s["points"] if p.get(key) is not None]
    ys = [p[key] for s in series for p in s["points"] if p.get(key) is not None]
    if tolerance is not None:
        ys = ys + [tolerance]
    logx = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 4
    ax = _Axes(box, xs, ys, logx, logy)
    x0, y0, x1, y1 = box
    lh = line_height(small)
    for t in ax.xticks(xs):
        px, _ = ax.px(t, 10 ** ax.yr[0] if logy else ax.yr[0])
        if x0 - 1 <= px <= x1 + 1:
            under.rect(px, y0, px, y1, GRID)
            under.rect(px, y1, px, y1 + 5, AXIS)
            s = _fmt(t)
            text.add(px - text_width(small, s) / 2, y1 + 7, s, small, LABEL)
    for t in ax.yticks():
        _, py = ax.px(10 ** ax.xr[0] if logx else ax.xr[0], t)
        if y0 - 1 <= py <= y1 + 1:
            under.rect(x0, py, x1, py, GRID)
            under.rect(x0 - 5, py, x0, py, AXIS)
            s = _fmt(t)
            text.add(x0 - 8 - text_width(small, s), py - lh / 2, s, small, LABEL)
    under.outline(box, AXIS)
    text.add(x0, y0 - line_height(fnt) - 4, title, fnt, HEAD)
    x_label = x_label + (" (log scale)" if logx else "")
    text.add((x0 + x1) / 2 - text_width(small, x_label) / 2, y1 + 9 + lh, x_label, small, LABEL)
    lines = []
    if tolerance is not None and tolerance > 0:
        _, ty = ax.px(10 ** ax.xr[0] if logx else ax.xr[0], tolerance)
        lines.append(("tolerance", ty))
        text.add(x1 - text_width(small, "tolerance") - 6, ty - lh - 2, "tolerance", small, TOL)
    for i, s in enumerate(series):
        pts = sorted((p["x"], p[key]) for p in s["points"] if p.get(key) is not None
                     and math.isfinite(p[key]) and (p[key] > 0 or not logy) and (p["x"] > 0 or not logx))
        lines.append((i, [ax.px(x, y) for x, y in pts]))
    return lines


def _series_style(i):
    return COLORS[i % len(COLORS)], MARKERS[(i // len(COLORS)) % len(MARKERS)]


def _draw_lines(marks, img, panels):
    """Over the text: the dashed tolerance lines (2 px, 7 on / 5 off), every series' line, then
    the markers on top."""
    h, w = img.shape[:2]
    lines, points = [], {}
    for (x0, _, x1, _), items in panels:
        for i, xy in items:
            if i == "tolerance":
                row = int(math.floor(xy))         # rows floor(y), floor(y) + 1: centred within 0.5 px
                cols = np.arange(max(0, int(x0)), min(w, int(x1) + 1))
                cols = cols[(cols - int(x0)) % 12 <= 6]
                rows = np.arange(max(0, row), min(h, row + 2))
                marks.pixels((rows[:, None] * w + cols[None, :]).ravel(), TOL)
                continue
            color, marker = _series_style(i)
            lines.append((xy, color))
            got = points.setdefault(marker, ([], []))
            got[0].extend(xy)
            got[1].extend([color] * len(xy))
    marks.polylines(lines, 3)
    for marker, (xy, colors) in points.items():
        if xy:
            xy = np.asarray(xy, dtype=np.float64)
            colors = np.array(colors, dtype=np.uint8).view(PIXEL).reshape(-1)
            marks.stamp(xy[:, 0], xy[:, 1], _shape(marker, 5), colors)


def draw_chart(series, x_label, tolerance=None, width=1000, height=480, title=""):
    """series: [{"name": str, "points": [{"x", "error", "time"}]}]. Returns uint8 (H, W, 3):
    two panels (log distance with the dashed tolerance line, and time, against x) over a legend."""
    fnt, mid, small = font(22), font(18), font(16)
    lh = line_height(small)
    legend = [wrap_text(s["name"], small, width // 3 - 40)[0] for s in series]
    per_row = int(max(1, (width - 80) // max(1, max([text_width(small, t) for t in legend] or [100]) + 50)))
    legend_h = ((len(series) + per_row - 1) // per_row) * (lh + 6) + 10
    img = np.full((height + legend_h, width, 3), 255, dtype=np.uint8)
    text = TextBatch()
    if title:
        text.add(20, 10, title, fnt, HEAD)
    top, bottom = 90, height - 70
    half = width // 2
    left = (100, top, half - 40, bottom)
    right = (half + 80, top, width - 40, bottom)
    under = _Marks(img)
    lines_l = _panel(under, text, left, series, "error", "distance to reference (relative RMSE)",
                     x_label, True, mid, small, tolerance)
    lines_r = _panel(under, text, right, series, "time", "sampling time per cell (s)", x_label, False, mid, small)
    col_w = (width - 80) // per_row
    swatches = []
    for i, name in enumerate(legend):
        x = 40 + (i % per_row) * col_w
        yy = height + (i // per_row) * (lh + 6)
        swatches.append((i, x, yy + lh / 2))
        text.add(x + 36, yy, name, small, (20, 20, 20))
    under.paint()
    text.draw(img)
    marks = _Marks(img)
    _draw_lines(marks, img, [(left, lines_l), (right, lines_r)])
    by_kind = {}
    for i, x, y in swatches:
        color, marker = _series_style(i)
        marks.rect(x, y - 1, x + 28, y + 1, color)
        by_kind.setdefault(marker, []).append((x + 14, y) + tuple(color))
    for marker, pts in by_kind.items():
        pts = np.array(pts, dtype=np.float64)
        marks.stamp(pts[:, 0], pts[:, 1], _shape(marker, 5), pts[:, 2:].astype(np.uint8).view(PIXEL).reshape(-1))
    marks.paint()
    return img
