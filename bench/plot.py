"""Log-log line plots drawn with Pillow (no matplotlib): one panel per title, series of (x, y) points."""
import math

from PIL import Image, ImageDraw, ImageFont

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


def _ticks(lo, hi):
    """Powers of ten spanning [lo, hi] (log axis)."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10.0 ** k for k in range(a, b + 1)]


def loglog_panels(panels, path, xlabel="NFE", ylabel="median RMSE", size=(420, 340)):
    """panels: [(title, [(label, dashed, color_index, [(x, y), ...]), ...])]. Writes a PNG; returns path."""
    font = ImageFont.load_default()
    w, h = size
    img = Image.new("RGB", (w * len(panels), h + 60), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 58, 12, 28, 44
    for p, (title, series) in enumerate(panels):
        ox = p * w
        pts = [(x, y) for _, _, _, s in series for x, y in s if y and y > 0]
        if not pts:
            continue
        xs, ys = [x for x, _ in pts], [y for _, y in pts]
        x0, x1 = math.log(min(xs)), math.log(max(xs))
        yt = _ticks(min(ys), max(ys))
        y0, y1 = math.log(yt[0]), math.log(yt[-1])
        x1 = x1 if x1 > x0 else x0 + 1
        y1 = y1 if y1 > y0 else y0 + 1

        def to_px(x, y):
            px = ox + left + (math.log(x) - x0) / (x1 - x0) * (w - left - right)
            py = top + (y1 - math.log(y)) / (y1 - y0) * (h - top - bottom)
            return px, py
        draw.rectangle([ox + left, top, ox + w - right, h - bottom], outline="black")
        draw.text((ox + left, 8), title, fill="black", font=font)
        for t in yt:
            _, py = to_px(min(xs), t)
            draw.line([ox + left, py, ox + w - right, py], fill=(225, 225, 225))
            draw.text((ox + 4, py - 6), f"1e{int(round(math.log10(t)))}", fill="black", font=font)
        for t in sorted(set(xs)):
            px, _ = to_px(t, yt[0])
            draw.line([px, top, px, h - bottom], fill=(235, 235, 235))
            draw.text((px - 6, h - bottom + 4), str(int(t)), fill="black", font=font)
        draw.text((ox + left + (w - left) // 2 - 10, h - bottom + 20), xlabel, fill="black", font=font)
        for label, dashed, ci, s in series:
            s = [(x, y) for x, y in sorted(s) if y and y > 0]
            color = COLORS[ci % len(COLORS)]
            for (xa, ya), (xb, yb) in zip(s, s[1:]):
                a, b = to_px(xa, ya), to_px(xb, yb)
                if dashed:
                    n = 8
                    for k in range(0, n, 2):
                        draw.line([a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n,
                                   a[0] + (b[0] - a[0]) * (k + 1) / n, a[1] + (b[1] - a[1]) * (k + 1) / n],
                                  fill=color, width=2)
                else:
                    draw.line([a, b], fill=color, width=2)
            for x, y in s:
                px, py = to_px(x, y)
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
    # legend (from the first panel's series)
    lx = 10
    for label, dashed, ci, _ in panels[0][1]:
        color = COLORS[ci % len(COLORS)]
        y = h + 20
        draw.line([lx, y, lx + 24, y], fill=color, width=2 if not dashed else 1)
        draw.text((lx + 28, y - 6), label + (" (dashed)" if dashed else ""), fill="black", font=font)
        lx += 40 + 7 * len(label) + (56 if dashed else 0)
    draw.text((10, h + 40), ylabel + " vs " + xlabel + " (log-log)", fill="black", font=font)
    img.save(path)
    return path
