"""What a finished sweep shows: the labelled grids (captions that say what each number is, a title
that names only the settings no axis varies), the chart, the IMAGE batches and the payload of the
node's result viewer (web/js/sweep_viewer.js)."""
import math
from dataclasses import dataclass

import numpy as np
import torch

from .answer import answer_text
from .chart import draw_chart
from .grid import GridLayout, draw_grid

__all__ = ["SweepOutputs", "caption", "grids", "chart", "viewer_payload", "images_tensor", "answer_text"]
REF_MARK = " (ref)"


@dataclass
class SweepOutputs:
    grids: list                     # uint8 (H, W, 3), one per z value
    singles: list                   # every cell's picture at grid-cell size, in cell order
    chart: object                   # uint8 (H, W, 3)
    report: dict
    report_text: str
    grid_files: list                # file names of the grids in the sweep folder
    tensors: tuple = None           # (grids, singles, chart) as IMAGE batches (float32 in [0, 1])


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def caption(r):
    """The text under a cell: steps and counted model calls; sampling seconds and the distance to
    the reference ("dist", explained in the title); with images, PSNR and SSIM of the 8-bit
    pictures. The title says what each is: a latent distance may be above zero where the 8-bit
    pictures are equal (PSNR inf)."""
    if r["status"] != "ok":
        return "failed"
    lines = [f"{r['params']['steps']} steps | {r['nfe']} calls", f"{r['sample_s']:.2f} s"]
    if r.get("rel_rmse") is not None:
        lines[1] += f" | dist {_fmt(r['rel_rmse'], '.1e')}"
        if r.get("ssim") is not None:
            psnr = r.get("psnr")          # infinite (identical pixels) reads back from report.json as null
            same = psnr is None or psnr == float("inf")
            lines.append(f"PSNR {'inf' if same else _fmt(psnr, '.1f')} | SSIM {_fmt(r['ssim'], '.3f')}")
    return "\n".join(lines)


def _marked(run):
    """label -> label with REF_MARK, for the sampler axis value that is the reference's own sampler
    (on models whose reference is a sampler: that row is measured against its own method)."""
    ref = run.ref_desc
    if ref["sampler"] == "none" or "method" in ref:
        return lambda axis, label: label
    return lambda axis, label: label + REF_MARK if axis == "sampler" and label == ref["sampler"] else label


def _fixed_text(fixed):
    parts = []
    for key in ("seed", "cfg", "sampler", "scheduler", "steps", "denoise"):
        if key not in fixed:
            continue
        v = fixed[key]
        if key == "sampler":
            parts.append("connected SAMPLER" if v == "input" else str(v))
        elif key == "scheduler":
            parts.append("connected SIGMAS" if v == "input" else str(v))
        elif key == "steps":
            parts.append(f"{v} steps")
        else:
            parts.append(f"{key} {v:g}" if isinstance(v, float) else f"{key} {v}")
    return "fixed: " + (", ".join(parts) if parts else "nothing (every setting is an axis)")


def _reference_text(run):
    ref = run.ref_desc
    if ref["sampler"] == "none":
        return "no reference: no distances", ""
    if "method" in ref:
        what = f"reference: {ref['method']}"
    else:
        what = (f"reference: {ref['sampler']} x {ref['steps']} steps, {ref['scheduler']}; its own row is marked "
                f"{REF_MARK.strip()}")
    images = "; PSNR (dB; inf = equal pixels), SSIM: 8-bit pictures" if run.decoder_kind in ("vae", "lab") else ""
    return what, "dist: relative latent RMSE" + images


def titles(run):
    """One title per grid: what varies where, what is fixed, what the reference and numbers are."""
    kw = run.kw
    names = [f"{a} ({w})" for (a, _), w in zip(run.axes, ("columns", "rows", "grids")) if a != "none"]
    ref_line, numbers = _reference_text(run)
    if kw["equal_cost"]:
        numbers += "; equal model calls (NFE) per column"
    by_pos = {(c.grid, c.row, c.col): c for c in run.cells}
    za = run.axes[2][0]
    out = []
    for g in range(run.shape[0]):
        zlab = by_pos[(g, 0, 0)].labels.get(za, "")
        lines = [f"Step sweep{': ' + zlab if zlab else ''} - " + " x ".join(names), _fixed_text(run.plan.fixed),
                 ref_line] + ([numbers] if numbers else [])
        out.append("\n".join(lines))
    return out


def grids(run):
    """(grid images, every cell's picture, grid metadata for the report and the viewer)."""
    g_n, rows, cols = run.shape
    records, thumbs = run.records, run.thumbs
    ref = next((t for t in thumbs.values() if t is not None), None)
    ch, cw = (ref.shape[0], ref.shape[1]) if ref is not None else (128, 128)
    by_pos = {(c.grid, c.row, c.col): c for c in run.cells}
    (xa, _), (ya, _), _ = run.axes
    mark = _marked(run)
    col_labels = [mark(xa, by_pos[(0, 0, c)].labels.get(xa, "")) for c in range(cols)]
    row_labels = [mark(ya, by_pos[(0, r, 0)].labels.get(ya, "")) for r in range(rows)]
    captions = {c.index: caption(records[c.index]) for c in run.cells}
    heads = titles(run)
    layout = GridLayout(cw, ch, rows, cols, col_labels, row_labels, list(captions.values()), titles=heads)
    images, blank = [], np.full((ch, cw, 3), 205, dtype=np.uint8)
    meta = {"columns": col_labels, "rows": row_labels, "titles": heads,
            "size": [layout.width, layout.height], "font_px": layout.fs,
            "cell_boxes": [list(layout.cell_box(c.row, c.col)) for c in run.cells]}
    for g in range(g_n):
        cells = [[None] * cols for _ in range(rows)]
        caps = [[""] * cols for _ in range(rows)]
        fails = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                cell = by_pos[(g, r, c)]
                rec = records[cell.index]
                cells[r][c] = thumbs.get(cell.index)
                caps[r][c] = captions[cell.index]
                fails[r][c] = None if rec["status"] == "ok" else (rec.get("error") or "failed")
        images.append(draw_grid(layout, heads[g], cells, caps, fails))
    singles = [thumbs.get(c.index) if thumbs.get(c.index) is not None else blank for c in run.cells]
    return images, singles, meta


def chart(run):
    (xa, _), (ya, _), (za, _) = run.axes
    mark = _marked(run)
    series = {}
    for c in run.cells:
        r = run.records[c.index]
        if r["status"] != "ok":
            continue
        name = " / ".join(mark(a, c.labels[a]) for a in (ya, za, xa) if a not in ("none", "steps") and a in c.labels)
        x = r["nfe"] if run.kw["equal_cost"] else c.params["steps"]
        series.setdefault(name or "sweep", []).append({"x": x, "error": r.get("rel_rmse"), "time": r.get("sample_s")})
    x_label = "model calls (NFE, counted)" if run.kw["equal_cost"] else "steps"
    tol = float(run.kw["tolerance"]) if run.ref_desc["sampler"] != "none" else None
    return draw_chart([{"name": k, "points": v} for k, v in series.items()], x_label, tol,
                      title=f"Step sweep: distance to the reference and sampling time vs {x_label}")


def images_tensor(arrays):
    """uint8 (H, W, 3) arrays of one size -> ComfyUI IMAGE batch, float32 in [0, 1]."""
    batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
    return torch.from_numpy(batch).to(torch.float32).div_(255.0)


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def viewer_payload(rep, grid_images):
    """Per-cell records for the sweep viewer (web/js/sweep_viewer.js), sent as ui["sampler_lab_sweep"]:
    settings that can be copied onto a KSampler, the measured metrics, and where each cell sits in
    which grid image (filename/subfolder/type for /view); the recommendation whole. JSON-safe:
    non-finite numbers become None."""
    ref = rep["reference"]
    cells = []
    for c in rep["cells"]:
        p = c["params"]
        settings = {"steps": int(p["steps"]), "cfg": float(p["cfg"]), "denoise": float(p["denoise"]), "seed": int(p["seed"])}
        if p["sampler"] != "input":
            settings["sampler_name"] = p["sampler"]
        if p["scheduler"] != "input":
            settings["scheduler"] = p["scheduler"]
        cells.append({"index": c["index"], "grid": c["grid"], "row": c["row"], "col": c["col"],
                      "labels": c["labels"], "status": c["status"], "error": c.get("error"), "source": c.get("source"),
                      "settings": settings, "nfe": c.get("nfe"), "sample_s": _finite(c.get("sample_s")),
                      "is_reference_sampler": "method" not in ref and p["sampler"] == ref["sampler"],
                      **{k: _finite(c.get(k)) for k in ("rmse", "rel_rmse", "psnr", "ssim")}})
    grid = rep.get("grid", {})
    ans = rep.get("recommendation") or {}
    return {"version": 1, "images": grid_images, "size": grid.get("size"), "cell_boxes": grid.get("cell_boxes"),
            "columns": grid.get("columns"), "rows": grid.get("rows"), "shape": rep["shape"],
            "axes": [a["axis"] for a in rep["axes"]], "reference": {k: ref[k] for k in ("sampler", "steps")},
            "reference_method": ref.get("method"),
            "tolerance": _finite(rep["settings"]["tolerance"]), "metric": rep["tolerance_metric"],
            "recommended_steps": rep["recommended_steps"],
            "recommendation": {k: _finite(ans.get(k)) if isinstance(ans.get(k), float) else ans.get(k)
                               for k in ("sampler", "scheduler", "sampler_name", "scheduler_name", "steps",
                                         "model_calls", "sample_s", "distance", "reached", "is_reference_sampler")},
            "recommendation_text": answer_text(ans) if ans else None,
            "cells": cells}
