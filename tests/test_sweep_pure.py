"""The step sweep's pure parts (no ComfyUI): axis syntax, planning, equal-cost step counts,
metrics against closed forms, recommended steps, drawing, report round trip, resume cache."""
import math
import os

import numpy as np
import pytest
import torch

import sweep
from sweep import SweepAxisError, parse_axis
from sweep.cache import png_bytes

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde_heun_gpu", "lab_rk4", "lab_rk4_38",
            "lab_rk_midpoint"]
BASE = {"sampler": "euler", "scheduler": "karras", "steps": 20, "cfg": 7.0, "denoise": 1.0, "seed": 1,
        "controlnet_end": None}


# axes -----------------------------------------------------------------------------------------
def test_numeric_syntax_ranges_and_lists():
    assert parse_axis("steps", "8,12,16-32:4") == [8, 12, 16, 20, 24, 28, 32]
    assert parse_axis("steps", " 4-8 ") == [4, 5, 6, 7, 8]
    assert parse_axis("steps", "8, 8, 4") == [8, 4]                     # duplicates dropped, order kept
    assert parse_axis("cfg", "1.5-3:0.5") == [1.5, 2.0, 2.5, 3.0]
    assert parse_axis("cfg", "1e1") == [10.0]
    assert parse_axis("denoise", "0.25,1") == [0.25, 1.0]
    assert parse_axis("controlnet_end", "0-1:0.5") == [0.0, 0.5, 1.0]
    assert parse_axis("none", "whatever") == [None]


def test_name_syntax_with_wildcards():
    assert parse_axis("sampler", "euler, heun", SAMPLERS) == ["euler", "heun"]
    assert parse_axis("sampler", "lab_rk4*", SAMPLERS) == ["lab_rk4", "lab_rk4_38"]


@pytest.mark.parametrize("axis, text, words", [
    ("steps", "8,x,16", ["'x'", "whole number"]),
    ("steps", "8,12.5", ["'12.5'"]),
    ("steps", "0,4", ["'0'", "at least 1"]),
    ("steps", "32-16:4", ["'32-16:4'", "smaller value first"]),
    ("steps", "4-16:0", ["step must be positive"]),
    ("cfg", "1-3", ["'1-3'", "needs a step"]),
    ("denoise", "0,0.5", ["'0'", "above 0"]),
    ("steps", "", ["empty"]),
    ("sampler", "eulr", ["'eulr'", "did you mean", "euler"]),
    ("sampler", "zz*", ["'zz*'", "matches no"]),
    ("steps", "1-100000", ["values", "larger step"]),
])
def test_bad_axis_text_names_token_and_fix(axis, text, words):
    with pytest.raises(SweepAxisError) as err:
        parse_axis(axis, text, SAMPLERS)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


# planning ---------------------------------------------------------------------------------------
def test_plan_shape_order_and_labels():
    axes = [("steps", [4, 8, 16]), ("sampler", ["euler", "heun"]), ("cfg", [3.0, 5.0])]
    cells, shape = sweep.plan_cells(axes, BASE)
    assert shape == (2, 2, 3) and len(cells) == 12
    c = cells[7]                                          # grid 1, row 0, col 1
    assert (c.grid, c.row, c.col) == (1, 0, 1)
    assert c.params == dict(BASE, steps=8, sampler="euler", cfg=5.0, shift=None, boundary=None)
    assert c.labels == {"steps": "steps 8", "sampler": "euler", "cfg": "cfg 5"}
    order = sweep.run_order(cells)
    assert [x.params["cfg"] for x in order] == [3.0] * 6 + [5.0] * 6     # grouped by reference


def test_plan_guards():
    with pytest.raises(SweepAxisError, match="cell_limit"):
        sweep.plan_cells([("steps", list(range(1, 11))), ("seed", list(range(10)))], BASE, cell_limit=64)
    with pytest.raises(SweepAxisError, match="twice"):
        sweep.plan_cells([("steps", [4]), ("steps", [8])], BASE)
    with pytest.raises(SweepAxisError, match="equal_cost needs a steps axis"):
        sweep.plan_cells([("sampler", ["euler"])], BASE, equal_cost=True)


def test_equal_cost_steps_fit_the_budget():
    # heun: 2 calls per step, the last step (to sigma 0) is a plain Euler step -> 2n - 1 calls
    assert sweep.steps_for_budget(12, 2, -1) == (6, 11)
    assert sweep.steps_for_budget(13, 2, -1) == (7, 13)
    assert sweep.steps_for_budget(16, 4, -3) == (4, 13)           # RK4 with a 1-call last step
    assert sweep.steps_for_budget(12, 1, 0) == (12, 12)
    assert sweep.steps_for_budget(3, 4, 0) == (1, 4)              # below one step: still one step
    assert sweep.calls_from_probe(2, 3, 3, 5) == (2.0, -1.0)
    cells, _ = sweep.plan_cells([("steps", [12, 24]), ("sampler", ["euler", "heun"])], BASE, equal_cost=True)
    table = {"euler": (1, 0, "spec"), "heun": (2, -1, "probe")}
    sweep.resolve_equal_cost(cells, lambda c: table[c.params["sampler"]])
    assert [c.params["steps"] for c in cells] == [12, 24, 6, 12]
    assert [c.planned_calls for c in cells] == [12, 24, 11, 23]
    assert cells[0].labels["steps"] == "NFE 12"


def test_resample_sigmas_log_linear():
    geo = torch.tensor([16.0 * 0.5 ** k for k in range(9)] + [0.0])       # 9 geometric sigmas + 0
    same = sweep.resample_sigmas(geo, 9)
    assert torch.equal(same, geo)
    fine = sweep.resample_sigmas(geo, 17)                                  # geometric stays geometric
    expect = torch.tensor([16.0 * 0.5 ** (k / 2) for k in range(17)] + [0.0])
    assert fine.shape == (18,) and torch.allclose(fine, expect, rtol=1e-5)
    assert torch.allclose(sweep.resample_sigmas(geo, 1), torch.tensor([16.0, 0.0]))


def test_stable_keys():
    assert sweep.stable_hash({"a": 1, "b": [1, 2]}) == sweep.stable_hash({"b": [1, 2], "a": 1})
    assert sweep.stable_hash({"a": 1}) != sweep.stable_hash({"a": 2})
    t = torch.arange(6.0).reshape(2, 3)
    assert sweep.tensor_digest(t) == sweep.tensor_digest(t.clone())
    assert sweep.tensor_digest(t) != sweep.tensor_digest(t.reshape(3, 2))


# metrics ----------------------------------------------------------------------------------------
def test_metrics_closed_forms():
    a = torch.zeros(2, 4, 3, 3)
    b = torch.full((2, 4, 3, 3), 0.5)
    assert sweep.latent_rmse(a, b) == pytest.approx(0.5)
    assert sweep.relative_rmse(a, b) == pytest.approx(1.0)
    img = torch.full((1, 16, 16, 3), 0.4)
    assert sweep.psnr(img + 0.1, img) == pytest.approx(20.0)                # MSE 0.01 -> 20 dB
    assert math.isinf(sweep.psnr(img, img))
    # constant images: SSIM = (2ab + C1) / (a^2 + b^2 + C1) (both variances are zero)
    c1 = 0.01 ** 2
    expect = (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1)
    assert sweep.ssim(torch.full((1, 20, 20, 3), 0.5), torch.full((1, 20, 20, 3), 0.25)) == pytest.approx(expect, rel=1e-5)
    noise = torch.rand(2, 24, 24, 3, generator=torch.Generator().manual_seed(0))
    assert sweep.ssim(noise, noise) == pytest.approx(1.0, rel=1e-5)
    assert sweep.ssim(noise, 1 - noise) < 0


def test_recommended_steps():
    pts = [(4, 0.1), (8, 0.03), (16, 0.01), (32, 0.005)]
    assert sweep.recommended_steps(pts, 0.02) == 16
    assert sweep.recommended_steps(pts, 0.2) == 4
    assert sweep.recommended_steps(pts, 0.001) is None
    assert sweep.recommended_steps([(4, 0.01), (8, 0.05), (16, 0.01)], 0.02) == 16   # must stay within
    assert sweep.recommended_steps([(4, 0.01), (8, None), (16, 0.01)], 0.02) == 4    # failed cells ignored


# png ---------------------------------------------------------------------------------------------
def test_png_writer_round_trips_pixels_and_metadata():
    """The sweep's PNGs are Pillow's, with ComfyUI's workflow metadata as text chunks (SaveImage's way)."""
    from io import BytesIO
    from PIL import Image
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    arr[10:20] = 255                                              # flat rows too
    for level in (0, 1, 4, 9):
        data = png_bytes(arr, {"prompt": '{"1": {}}', "workflow": "{}"}, level=level)
        with Image.open(BytesIO(data)) as im:
            assert im.mode == "RGB" and np.array_equal(np.asarray(im), arr)
            assert im.info["prompt"] == '{"1": {}}' and im.info["workflow"] == "{}"


# report and cache -------------------------------------------------------------------------------
def _records():
    cells, _ = sweep.plan_cells([("steps", [4, 8]), ("sampler", ["euler", "heun"])], BASE)
    recs = []
    for c in cells:
        recs.append({"index": c.index, "grid": c.grid, "row": c.row, "col": c.col, "params": dict(c.params),
                     "labels": c.labels, "nfe_budget": None, "nfe": c.params["steps"], "status": "ok", "source": "run",
                     "sample_s": 0.125 * (c.index + 1), "call_s": 0.13 * (c.index + 1), "rmse": 0.1 / c.params["steps"],
                     "rel_rmse": 0.2 / c.params["steps"], "psnr": math.inf if c.index == 3 else 30.5, "ssim": 0.9,
                     "image": f"cells/{c.index}.png", "error": None})
    recs[1].update(status="failed", error="RuntimeError: x, with a comma", rel_rmse=None)
    return recs


def test_report_round_trips_json_and_csv():
    recs = _records()
    rep = {"cells": recs, "recommended": sweep.recommendations(recs, 0.03)}
    back = sweep.load_report(sweep.to_json(rep))
    assert back["cells"][0] == recs[0] and back["cells"][3]["psnr"] is None     # inf is not JSON: None
    rows = sweep.load_csv(sweep.to_csv(recs))
    assert len(rows) == 4 and rows[1]["error"] == "RuntimeError: x, with a comma"
    for row, rec in zip(rows, recs):
        for k in ("index", "steps", "sampler", "cfg", "nfe", "sample_s", "rel_rmse", "status"):
            expect = rec["params"][k] if k in rec["params"] else rec[k]
            assert row[k] == expect, k
    by_sampler = {r["group"]["sampler"]: r for r in back["recommended"]}
    assert by_sampler["euler"]["steps"] is None     # 4 steps: 0.05 > tolerance; 8 steps failed
    assert by_sampler["heun"]["steps"] == 8


def test_cache_round_trip(tmp_path):
    cache = sweep.SweepCache(str(tmp_path / "s"))
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    rec = {"status": "ok", "nfe": 3, "psnr": math.inf}
    cache.save_cell("k1", rec, img)                                                    # a VAE-decoded cell
    got_rec, got_img, got_lat = cache.load_cell("k1")
    assert got_rec == {"status": "ok", "nfe": 3, "psnr": None} and np.array_equal(got_img, img) and got_lat is None
    cache.save_cell("k2", {"status": "failed", "error": "x"})
    assert cache.load_cell("k2") is None and cache.load_cell("missing") is None
    data = png_bytes(img, {sweep.cache.RECORD_CHUNK: '{"status": "ok"}'})
    (tmp_path / "s" / "cells" / "k3.png").write_bytes(data[: len(data) // 2])          # cut short
    (tmp_path / "s" / "cells" / "k4.png").write_bytes(png_bytes(img))                  # no record
    (tmp_path / "s" / "cells" / "k5.png").write_bytes(png_bytes(img, {sweep.cache.RECORD_CHUNK: "{broken"}))
    assert all(cache.load_cell(k) is None for k in ("k3", "k4", "k5"))
    cache.save_cell("k6", rec, img, {"prompt": "{}"}, level=0)                          # stored, with metadata
    assert np.array_equal(cache.load_cell("k6")[1], img)
    # cells measured together: one batch, latents stacked in record order
    lats = np.random.default_rng(0).standard_normal((3, 1, 4, 2, 5)).astype(np.float32)
    recs = [{"status": "ok", "key": f"b{i}", "rmse": 0.1 * i} for i in range(3)]
    cache.save_batch("b0", recs, lats)
    (tmp_path / "s" / "cells" / "x.json").write_text('{"batch": [{"status": "ok", "key": "lost"}]}')  # no latents
    (tmp_path / "s" / "cells" / "y.json").write_text("{broken")
    fresh = sweep.SweepCache(str(tmp_path / "s"))                                        # a later run reads them
    for i in range(3):
        r, image, lat = fresh.load_cell(f"b{i}")
        assert r == recs[i] and image is None and np.array_equal(lat.numpy(), lats[i])
    assert fresh.load_cell("lost") is None
    assert sorted(os.listdir(tmp_path / "s" / "cells")) == ["b0.json", "b0.npy", "k1.png", "k2.json", "k3.png",
                                                           "k4.png", "k5.png", "k6.png", "x.json", "y.json"]
    lat = torch.randn(1, 4, 5, 5)
    cache.save_reference("r", lat, img[None], {"nfe": 9})
    l2, i2, info = cache.load_reference("r")
    assert torch.equal(l2, lat) and np.array_equal(i2, img[None]) and info == {"nfe": 9}
