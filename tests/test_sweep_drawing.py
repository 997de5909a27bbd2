"""The step sweep's drawing (no ComfyUI, Pillow's text): wrapping, the labelled grid (cells,
headers, captions, failed cells) and the chart (series where their values map, the tolerance line
at its height, one tick format per axis, log axes labelled as such)."""
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

import sweep
from sweep.grid import GridLayout, draw_grid, font, line_height, text_width, wrap_text


def _ink(arr):
    """Ink coverage 0..255 of dark text on white."""
    return 255 - arr.astype(np.int32).min(axis=-1)


# text ------------------------------------------------------------------------------------------
def test_wrap_text_fits_and_keeps_characters():
    f = font(16)
    name = "dpmpp_2m_sde_heun_gpu_with_a_really_long_suffix"
    lines = sweep.wrap_text(name, f, 90)
    assert len(lines) > 1 and all(text_width(f, ln) <= 90 for ln in lines)
    assert "".join(lines) == name
    assert sweep.wrap_text("euler", f, 500) == ["euler"]


def test_grid_places_cells_and_draws_headers():
    rng = np.random.default_rng(0)
    tiles = [[rng.integers(0, 255, (40, 56, 3), dtype=np.uint8) for _ in range(3)] for _ in range(2)]
    layout = GridLayout(56, 40, 2, 3, ["steps 4", "steps 8", "steps 16"], ["euler", "a_very_long_sampler_name_x"],
                        ["4 calls | 0.1 s"] * 6)
    fails = [[None, None, "RuntimeError: boom"], [None] * 3]
    img = draw_grid(layout, "title", tiles, [["4 calls | 0.1 s"] * 3] * 2, fails)
    assert img.shape == (layout.height, layout.width, 3) and img.dtype == np.uint8
    for r in range(2):
        for c in range(3):
            x0, y0, x1, y1 = layout.cell_box(r, c)
            if fails[r][c] is None:
                assert np.array_equal(img[y0:y1, x0:x1], tiles[r][c])
            else:
                assert not np.array_equal(img[y0:y1, x0:x1], tiles[r][c])
    x0, y0, x1, _ = layout.cell_box(0, 0)
    assert (img[layout.title_h:y0, x0:x1] < 100).any()          # header text is drawn above the first column
    assert layout.row_w > 0 and (img[y0:y0 + 40, :layout.row_w] < 100).any()
    big = GridLayout(512, 512, 1, 1, ["x"], [""], [""])
    assert big.fs > layout.fs                                     # headers grow with the cells


def test_grid_failed_cell_and_resized_tile():
    layout = GridLayout(64, 48, 1, 2, ["a", "b"], ["", ""], ["", ""])
    odd = np.zeros((24, 32, 3), np.uint8)
    odd[:, 16:] = 255                                             # left black, right white
    img = draw_grid(layout, "t", [[odd, None]], [["", ""]], [[None, "ValueError: bad option"]])
    x0, y0, x1, y1 = layout.cell_box(0, 0)
    assert img[y0 + 5, x0 + 5].max() < 30 and img[y0 + 5, x1 - 5].min() > 225    # resized to the cell
    x0, y0, x1, y1 = layout.cell_box(0, 1)
    box = img[y0:y1, x0:x1].astype(int)
    assert (box == 205).all(-1).mean() > 0.7                      # grey box ...
    assert ((box[..., 0] - box[..., 1]) > 40).any()               # ... with red error text inside it


def test_grid_captions_are_complete_and_unclipped():
    rng = np.random.default_rng(1)
    caps = [["8 steps | 8 calls | 0.01 s\nd 1.2e-02 | 31.5 dB\nssim 0.912", "16 steps | 31 calls | 0.02 s"],
            ["4 steps | 4 calls | 0.00 s\nd 3.4e-01", "a_long_caption_that_wraps_over_several_lines_of_the_cell"]]
    tiles = [[rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(2)] for _ in range(2)]
    layout = GridLayout(128, 96, 2, 2, ["a", "b"], ["r1", "r2"], [c for row in caps for c in row])
    img = draw_grid(layout, "t", tiles, caps, [[None, None], [None, None]])
    inner = layout.cell_w - 2 * layout.pad
    assert len(wrap_text(caps[1][1], layout.small, inner)) == layout.caption_lines >= 3  # the long one wraps
    for r in range(2):
        for c in range(2):
            x0, _, x1, y1 = layout.cell_box(r, c)
            top = y1 + layout.pad // 2
            band = img[y1:y1 + layout.caption_h + layout.gap]       # everything between this cell and the next
            lines = wrap_text(caps[r][c], layout.small, inner)
            # Pillow draws the same lines at the same places: the whole caption, nothing cut off
            ref = Image.new("RGB", (layout.width, band.shape[0]), (255, 255, 255))
            d = ImageDraw.Draw(ref)
            for k, line in enumerate(lines):
                d.text((x0 + (layout.cell_w - text_width(layout.small, line)) / 2, top - y1 + k * layout.lh_small),
                       line, fill=(90, 90, 90), font=layout.small)
            ref_ink = _ink(np.asarray(ref))[:, x0:x1]
            got_ink = _ink(band)[:, x0:x1]
            assert ref_ink.sum() > 0 and np.abs(ref_ink - got_ink).mean() < 0.5
            assert abs(int(got_ink.sum()) - int(ref_ink.sum())) <= 0.02 * ref_ink.sum()
            for k in range(len(lines)):                             # every line has its own ink
                rows = got_ink[top - y1 + k * layout.lh_small: top - y1 + (k + 1) * layout.lh_small]
                assert rows.sum() > 0.5 * ref_ink[top - y1 + k * layout.lh_small:
                                                  top - y1 + (k + 1) * layout.lh_small].sum()
    # the lowest caption line's descenders fit inside the canvas too
    assert layout.height >= layout.cell_box(1, 0)[3] + layout.caption_h


# chart ------------------------------------------------------------------------------------------
def _marker_centres(img, color, region):
    """Centres of the solid blobs (markers: 11 px discs) of one colour inside region (x0, y0, x1,
    y1): a pixel counts when its whole 7 x 7 neighbourhood has the colour (3 px lines never do)."""
    x0, y0, x1, y1 = region
    m = (np.abs(img[y0:y1, x0:x1].astype(int) - color).sum(-1) < 10).astype(np.int32)
    s = np.pad(m, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    k = 7
    full = (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) == k * k
    ys, xs = np.nonzero(full)
    ys, xs = ys + k // 2 + y0, xs + k // 2 + x0
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    groups = np.split(np.arange(xs.size), np.nonzero(np.diff(xs) > 8)[0] + 1) if xs.size else []
    whole = (np.abs(img.astype(int) - color).sum(-1) < 10)
    gy, gx = np.mgrid[-8:9, -8:9]
    centres = []
    for g in groups:                    # refine: centroid of the colour within the marker's radius
        cx, cy = xs[g].mean(), ys[g].mean()
        for _ in range(4):
            px, py = np.rint(cx).astype(int) + gx, np.rint(cy).astype(int) + gy
            near = ((px - cx) ** 2 + (py - cy) ** 2 <= 5.5 ** 2) & whole[py.clip(0, img.shape[0] - 1),
                                                                        px.clip(0, img.shape[1] - 1)]
            cx, cy = px[near].mean(), py[near].mean()
        centres.append((cx, cy))
    return centres


def test_chart_draws_series():
    series = [{"name": "euler", "points": [{"x": 4, "error": 0.1, "time": 0.2}, {"x": 8, "error": 0.05, "time": 0.4}]},
              {"name": "heun", "points": [{"x": 4, "error": 0.05, "time": 0.4}, {"x": 8, "error": None, "time": 0.8}]}]
    img = sweep.draw_chart(series, "steps", tolerance=0.06, width=800, height=400)
    assert img.shape[1] == 800 and img.shape[0] > 400 and img.dtype == np.uint8
    assert (img[..., 0] > 200).sum() > 0 and (np.abs(img.astype(int) - [31, 119, 180]).sum(-1) < 30).any()
    empty = sweep.draw_chart([], "steps", tolerance=None, width=600, height=300, title="nothing yet")
    assert empty.shape[1] == 600 and (empty < 100).any()            # axes and title still drawn


def test_chart_points_land_where_their_values_map():
    """Power laws error = c * x^-p on log-log axes are straight lines whose pixel slopes are in the
    ratio of their orders; time on a linear axis keeps the ratios of its differences."""
    steps = [4, 8, 16, 32]
    orders = [1, 2]
    series = [{"name": f"order {p}", "points": [{"x": x, "error": 0.5 ** p * (4 / x) ** p, "time": 0.01 * (k + 1) * x}
                                                for x in steps]} for k, p in enumerate(orders)]
    width, height = 1400, 640
    img = sweep.draw_chart(series, "steps", width=width, height=height)
    colors = [(31, 119, 180), (255, 127, 14)]
    half = width // 2
    slopes = []
    for k, p in enumerate(orders):
        left = _marker_centres(img, colors[k], (0, 0, half, height))
        right = _marker_centres(img, colors[k], (half, 0, width, height))
        assert len(left) == 4 and len(right) == 4, (left, right)
        xs, ys = np.array(left).T
        gaps = np.diff(xs)
        assert np.abs(gaps - gaps.mean()).max() <= 1.0             # doubling steps: equal gaps (log x)
        fit = np.polyfit(xs, ys, 1)
        assert np.abs(np.polyval(fit, xs) - ys).max() <= 1.0       # collinear
        slopes.append(fit[0])
        assert (np.diff(ys) > 0).all()                             # error falls: lower on the image
        _, ty = np.array(right).T
        t = np.array([pt["time"] for pt in series[k]["points"]])
        linear = ty[0] + (t - t[0]) / (t[-1] - t[0]) * (ty[-1] - ty[0])
        assert np.abs(ty - linear).max() <= 1.0 and ty[0] - ty[-1] > 100     # a linear axis
        assert (np.diff(ty) < 0).all()                             # time grows: higher on the image
        legend = _marker_centres(img, colors[k], (0, height, width, img.shape[0]))
        assert len(legend) == 1                                    # one legend entry per series
    assert slopes[1] / slopes[0] == pytest.approx(2.0, abs=0.03)


def test_chart_tolerance_line_at_its_height():
    xs = [4, 8, 16]
    errors = [0.1, 0.01, 0.001]
    tol = math.sqrt(0.1 * 0.01)                                    # halfway between the first two, in log
    series = [{"name": "euler", "points": [{"x": x, "error": e, "time": 0.1} for x, e in zip(xs, errors)]}]
    width, height = 1000, 500
    img = sweep.draw_chart(series, "steps", tolerance=tol, width=width, height=height)
    (_, y1), (_, y2), _ = _marker_centres(img, (31, 119, 180), (0, 0, width // 2, height))
    red = (np.abs(img[:height, :width // 2].astype(int) - [200, 0, 0]).sum(-1) < 10)
    rows = np.nonzero(red.sum(1) > 100)[0]                         # the dashed line: many red pixels per row
    assert rows.size in (1, 2, 3)
    assert abs(rows.mean() - (y1 + y2) / 2) <= 1.0
    dashes = red[rows[0]]
    assert 0.35 < dashes.mean() * (width // 2) / max(1, np.ptp(np.nonzero(dashes)[0])) < 0.75   # dashed, not solid


def test_chart_keeps_line_heights_readable():
    assert line_height(font(16)) >= 18 and line_height(font(22)) >= 24


def test_wrap_keeps_numbers_with_their_units():
    f = font(12)
    text = "32 steps | 125 calls | 0.18 s"
    for width in range(40, 200, 7):
        lines = sweep.wrap_text(text, f, width)
        assert "s" not in [ln.strip() for ln in lines] and "".join(lines).replace(" ", "") == text.replace(" ", "")
    lines = sweep.wrap_text("d 2.3e-06 | inf dB", f, 60)
    assert "dB" not in [ln.strip() for ln in lines]


def test_row_headers_fit_sampler_names_and_wrap_long_ones():
    """A row header is as wide as the longest word of its labels (up to 1.5 cells): dpmpp_2m in
    128 px cells stays on one line (it broke at the underscore before); longer names still wrap."""
    short = GridLayout(128, 128, 4, 4, ["4"] * 4, ["euler", "dpmpp_2m", "heun", "lab_rk4"], [""] * 16)
    assert [len(lines) for lines in short.row_lines] == [1, 1, 1, 1]
    assert short.row_w >= text_width(short.font, "dpmpp_2m") + 2 * short.pad
    long_name = "dpmpp_2m_sde_heun_gpu_with_a_really_long_suffix"
    wide = GridLayout(128, 128, 1, 1, ["4"], [long_name], [""])
    assert wide.row_w <= int(128 * 1.5) and len(wide.row_lines[0]) > 1
    assert "".join(wide.row_lines[0]).replace(" ", "") == long_name


def test_chart_ticks_use_one_format_per_axis():
    from sweep.chart import tick_labels
    assert tick_labels([4, 8, 16, 32]) == ["4", "8", "16", "32"]
    assert tick_labels([0.001, 0.002, 0.005, 0.01, 0.02]) == ["1e-03", "2e-03", "5e-03", "1e-02", "2e-02"]
    assert tick_labels([0.05, 0.1, 0.2]) == ["0.05", "0.10", "0.20"]
    assert tick_labels([0.1, 0.2, 0.5, 1, 2]) == ["0.1", "0.2", "0.5", "1.0", "2.0"]
    assert tick_labels([0, 0.25, 0.5]) == ["0.00", "0.25", "0.50"]


def test_chart_says_which_axes_are_logarithmic(monkeypatch):
    from PIL import ImageDraw as draw_module
    import sweep.chart as chart
    drawn = []
    real = draw_module.ImageDraw.text

    def spy(self, xy, text, *args, **kwargs):
        drawn.append(text)
        return real(self, xy, text, *args, **kwargs)
    monkeypatch.setattr(draw_module.ImageDraw, "text", spy)
    series = [{"name": "euler", "points": [{"x": x, "error": 1 / x, "time": 0.01 * x} for x in (4, 8, 16, 32)]}]
    chart.draw_chart(series, "steps", tolerance=0.05)
    assert "distance to reference (relative RMSE) (log scale)" in drawn        # the distance axis
    assert drawn.count("steps (log scale)") == 2                               # x spans 8x: log on both panels
    assert "sampling time per cell (s)" in drawn                               # time: linear, said as is
    drawn.clear()
    series = [{"name": "euler", "points": [{"x": x, "error": 1 / x, "time": 0.01 * x} for x in (10, 12, 14)]}]
    chart.draw_chart(series, "steps")
    assert drawn.count("steps") == 2 and "steps (log scale)" not in drawn     # 1.4x: a linear x axis
