"""Benchmark (dev tool, not a test): how long the step sweep's pictures take, best of N: drawing
with Pillow (sweep/grid.py, sweep/chart.py) and writing them as PNGs the way ComfyUI's SaveImage
does (Pillow, compress level 4). No millisecond targets: the sweep's one speed target is its whole
own work against its cells' sampling time (bench/sweep_overhead.py); this tells where it goes.

Cases:
  grid 4x4      draw_grid, 4x4 cells of 128 px, 3-line captions, headers, 3-line title.
                "same" redraws the same grid (wrapped lines and widths cached, as in the node,
                whose GridLayout wraps every caption first); "fresh" draws new caption numbers
                every run (layout built outside the timing, like the node does).
  layout 4x4    GridLayout for that grid with fresh captions (wraps every caption once).
  grid 10x10    draw_grid, 10x10 cells of 384 px, long sampler names.
  chart         draw_chart, 4 series x 4 points, both panels, legend, tolerance line.
  png           the 4x4 grid, the 10x10 grid and the chart as PNG bytes with workflow metadata.
torch is not used by the drawing; if it is installed it is held to 1 thread anyway, as in the
sweep's own measurements.

Run: .labenv/venv/bin/python bench/drawing_speed.py [--repeats N]
"""
import argparse
import itertools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sweep  # noqa: E402
from sweep.cache import png_bytes  # noqa: E402
from sweep.grid import GridLayout, draw_grid  # noqa: E402

SAMPLERS = ["euler", "heun", "dpmpp_2m_sde_heun_gpu", "lab_rk4", "euler_ancestral", "dpmpp_3m_sde",
            "lab_rk_midpoint", "uni_pc_bh2", "lab_a_rather_long_sampler_name_x", "ddim"]
_counter = itertools.count()


def _captions(rows, cols, fresh):
    k = next(_counter) if fresh else 0
    return [[f"{4 << c} steps | {(8 << c) - 1 + k} calls | {0.01 * (r + k % 7):.2f} s\n"
             f"d {1.2 * 10 ** -(c + 1) * (1 + k % 5):.1e} | {31.5 + k % 10:.1f} dB\nssim 0.9{(r + k) % 100:02d}"
             for c in range(cols)] for r in range(rows)]


def _grid_case(n, px, fresh):
    rng = np.random.default_rng(0)
    tiles = [[rng.integers(0, 255, (px, px, 3), dtype=np.uint8) for _ in range(n)] for _ in range(n)]
    fails = [[None] * n for _ in range(n)]
    fails[n // 2][n // 3] = "RuntimeError: the sampler blew up at step 3 (nan in x)"
    title = ("Step sweep - steps (columns) x sampler (rows)\nbase: seed 1, cfg 7, euler, karras, 20 steps, "
             "denoise 1\nd = distance to lab_rk4 x 64 steps")
    cols = [f"steps {4 << c}" for c in range(n)]
    rows = [SAMPLERS[r % len(SAMPLERS)] for r in range(n)]

    def args():
        caps = _captions(n, n, fresh)
        layout = GridLayout(px, px, n, n, cols, rows, [c for row in caps for c in row])
        return layout, title, tiles, caps, fails
    return args


def _chart_case():
    return [{"name": name, "points": [{"x": 4 << k, "error": 0.3 / 2 ** (k * (i + 1)), "time": 0.01 * (i + 1) * 2 ** k}
                                      for k in range(4)]}
            for i, name in enumerate(["euler", "heun", "dpmpp_2m", "lab_rk4"])]


def _chart(series):
    return sweep.draw_chart(series, "steps", tolerance=0.01,
                            title="Step sweep: distance to the reference and sampling time vs steps")


def best(fn, make_args, repeats):
    times = []
    for _ in range(repeats):
        a = make_args()
        t = time.perf_counter()
        fn(*a)
        times.append(time.perf_counter() - t)
    return min(times) * 1e3, float(np.median(times)) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    n = args.repeats
    series = _chart_case()
    cold = _grid_case(4, 128, False)()
    t = time.perf_counter()
    draw_grid(*cold)
    t_grid = time.perf_counter() - t
    t = time.perf_counter()
    _chart(series)
    t_chart = time.perf_counter() - t
    print(f"first draws in this process (fonts loaded once): grid 4x4 {t_grid * 1e3:.1f} ms, "
          f"chart {t_chart * 1e3:.1f} ms")
    meta = {"prompt": "{}" * 500, "workflow": "{}" * 2000}
    small, big, chart = draw_grid(*cold), draw_grid(*_grid_case(10, 384, False)()), _chart(series)
    cases = [
        ("grid 4x4 of 128 px, same captions", draw_grid, _grid_case(4, 128, False), n),
        ("grid 4x4 of 128 px, fresh captions", draw_grid, _grid_case(4, 128, True), n),
        ("GridLayout 4x4, fresh captions", GridLayout, _layout_args, n),
        ("grid 10x10 of 384 px", draw_grid, _grid_case(10, 384, False), max(5, n // 20)),
        ("chart 4 series x 4 points", _chart, lambda: (series,), n),
        (f"png of the grid 4x4 {small.shape[1]}x{small.shape[0]}", png_bytes, lambda: (small, meta), max(5, n // 4)),
        (f"png of the grid 10x10 {big.shape[1]}x{big.shape[0]}", png_bytes, lambda: (big, meta), max(3, n // 40)),
        (f"png of the chart {chart.shape[1]}x{chart.shape[0]}", png_bytes, lambda: (chart, meta), max(5, n // 4)),
    ]
    for name, fn, make, reps in cases:
        make()                                           # warm the caches of what is not timed
        fn(*make())
        b, med = best(fn, make, reps)
        print(f"{name:40s} best {b:7.3f} ms  median {med:7.3f} ms  ({reps} runs)")


def _layout_args():
    caps = _captions(4, 4, True)
    return (128, 128, 4, 4, [f"steps {4 << c}" for c in range(4)], SAMPLERS[:4], [c for row in caps for c in row])


if __name__ == "__main__":
    main()
