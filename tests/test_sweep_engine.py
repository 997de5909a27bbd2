"""The step sweep's engine on its own (no ComfyUI, no model): planning, the cell loop, the answer
ranked by cost, the reference, resume after a cancel, failed cells, the files.

FakeSampling is not a sampler and does not pretend to be one: it returns the known answer plus an
error of exactly c * steps^-order along a fixed direction, and counts `calls_per_step * steps`
model calls; its seconds are those calls at 1 ms each, not measured. So every distance, every
count and the recommendation are known in advance."""
import json
import os

import numpy as np
import pytest
import torch

from sweep.engine import Hooks, Sampled, SweepRun, plan_sweep

SHAPE = (1, 4, 8, 8)
# name: (calls per step, order, c): error = c * steps ** -order
METHODS = {"euler": (1, 1, 1.0), "two": (2, 2, 0.5), "eight": (8, 4, 1.0), "broken": (1, 1, 1.0)}
SCHEDULERS = ["karras", "simple"]


class Stop(Exception):
    """The fake host's 'interrupted' (ComfyUI's InterruptProcessingException in the node)."""


class FakeSampling:
    def __init__(self, stop_after=None):
        gen = torch.Generator().manual_seed(0)
        self.answer = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
        direction = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
        rms = lambda t: t.pow(2).mean().sqrt()  # noqa: E731
        self.answer /= rms(self.answer)                      # RMS 1: relative distance = absolute
        self.direction = direction / rms(direction)
        self.runs = []
        self.stop_after = stop_after

    def sample(self, params, sampler_name, steps, on_step):
        if self.stop_after is not None and len(self.runs) >= self.stop_after:
            raise Stop()
        self.runs.append((sampler_name, steps))
        if sampler_name == "broken":
            raise RuntimeError("this sampler is broken on purpose")
        per_step, order, c = METHODS[sampler_name]
        for i in range(steps):
            if on_step is not None:
                on_step(i, None, steps)
        latent = (self.answer + c * steps ** -order * self.direction).to(torch.float32)
        calls = per_step * steps
        return Sampled(latent, calls, calls * 1e-3, calls * 1e-3, [0.0, 1e-3])

    def exact(self, params, steps, on_step):
        self.runs.append(("exact", steps))
        return Sampled(self.answer.to(torch.float32), 4 * steps, 0.0, 0.0, [])


class GreyDecoder:
    """No pictures to speak of: a 16 x 16 grey tile per cell (kind 'preview': no image metrics)."""
    kind = "preview"

    def batch_pictures(self, latents, max_side=4096):
        level = (latents.flatten(1).mean(1).clamp(-1, 1) * 100 + 128).to(torch.uint8)
        return None, np.ascontiguousarray(np.broadcast_to(level.numpy()[:, None, None, None],
                                                          (latents.shape[0], 16, 16, 3)))


def settings(**over):
    kw = dict(seed=1, steps=8, cfg=1.0, sampler_name="euler", scheduler="karras", denoise=1.0, x_axis="steps",
              x_values="2,4,8,16", y_axis="sampler", y_values="euler,two,eight", z_axis="none", z_values="",
              equal_cost=False, reference_sampler="euler", reference_steps=40, tolerance=0.01, cell_limit=64,
              cell_size=64, filename_prefix="t")
    kw.update(over)
    return kw


def sweep(tmp_path, fake, exact=True, **over):
    kw = settings(**over)
    method = "exact answer (test)" if exact else None
    plan = plan_sweep(kw, list(METHODS), SCHEDULERS, reference_method=method)
    hooks = Hooks(sample=fake.sample, decoder=GreyDecoder(), reference=fake.exact if exact else None,
                  reference_method=method, interrupts=(Stop,))
    return SweepRun(plan, hooks, str(tmp_path / "sweep"), {"model": "fake"}).execute()


def test_distances_counts_and_files_are_the_known_ones(tmp_path):
    fake = FakeSampling()
    got = sweep(tmp_path, fake)
    rep = got.report
    assert rep["status"] == "complete" and rep["counts"] == {"cells": 12, "done": 12, "ok": 12, "failed": 0,
                                                             "resumed": 0}
    for c in rep["cells"]:
        per_step, order, k = METHODS[c["params"]["sampler"]]
        assert c["nfe"] == per_step * c["params"]["steps"]
        assert c["rel_rmse"] == pytest.approx(k * c["params"]["steps"] ** -order, rel=1e-5, abs=1e-6)  # float32
    assert ("exact", 40) in fake.runs and ("euler", 40) not in fake.runs   # the reference is not a sampler run
    assert rep["reference"]["method"] == "exact answer (test)"
    files = set(os.listdir(tmp_path / "sweep"))
    assert {"grid.png", "chart.png", "report.json", "report.csv"} <= files
    with open(tmp_path / "sweep" / "report.json") as f:
        assert json.load(f)["recommended_steps"] == rep["recommended_steps"]
    assert len(got.singles) == 12 and got.grids[0].shape[-1] == 3 and got.chart.ndim == 3
    timing = rep["timing"]       # the writer thread (cells' files, the PNGs) worked, within the sweep's time
    assert 0.0 < timing["writer_s"] < timing["total_s"]


def test_the_answer_is_the_cheapest_in_model_calls_not_the_fewest_steps(tmp_path):
    rep = sweep(tmp_path, FakeSampling()).report
    ans = rep["recommendation"]
    # eight: 4 steps (error 1/256) but 32 calls; two: 8 steps (0.5/64) at 16 calls; euler never (1/16 > 0.01)
    assert (ans["sampler"], ans["scheduler"], ans["steps"], ans["model_calls"]) == ("two", "karras", 8, 16)
    assert ans["reached"] and not ans["is_reference_sampler"]
    assert [(r["sampler"], r["steps"], r["model_calls"]) for r in ans["runners_up"]] == [("eight", 4, 32)]
    assert rep["recommended_steps"] == 8


def test_without_a_reachable_tolerance_the_answer_says_so(tmp_path):
    ans = sweep(tmp_path, FakeSampling(), tolerance=1e-9).report["recommendation"]
    assert not ans["reached"] and ans["steps"] == 16 and ans["sampler"] == "eight"     # the closest at most steps


def test_a_reference_by_sampler_marks_its_own_row(tmp_path):
    fake = FakeSampling()
    got = sweep(tmp_path, fake, exact=False, reference_sampler="two")
    rep = got.report
    assert ("two", 40) in fake.runs and "method" not in rep["reference"]
    assert rep["grid"]["rows"] == ["euler", "two (ref)", "eight"]
    from sweep.outputs import viewer_payload
    ui = viewer_payload(rep, [])
    assert {c["settings"]["sampler_name"] for c in ui["cells"] if c["is_reference_sampler"]} == {"two"}
    assert "marked (ref)" in rep["grid"]["titles"][0]


def test_the_title_names_only_what_no_axis_varies(tmp_path):
    rep = sweep(tmp_path, FakeSampling()).report
    title = rep["grid"]["titles"][0]
    assert "fixed: seed 1, cfg 1, karras, denoise 1" in title
    assert "euler" not in title.split("\n")[1] and "steps" not in title.split("\n")[1]


def test_cancel_keeps_finished_cells_and_a_rerun_resumes(tmp_path):
    with pytest.raises(Stop):
        sweep(tmp_path, FakeSampling(stop_after=1 + 1 + 3), y_values="euler")   # warm-up, reference, 3 cells
    with open(tmp_path / "sweep" / "report.json") as f:
        partial = json.load(f)
    assert partial["status"] == "interrupted" and [c["params"]["steps"] for c in partial["cells"]] == [2, 4, 8]
    fake = FakeSampling()
    rep = sweep(tmp_path, fake, y_values="euler").report
    assert [c["source"] for c in rep["cells"]] == ["cache", "cache", "cache", "run"]
    assert [r for r in fake.runs if r[0] == "euler" and r[1] != 2] == [("euler", 16)]   # only the missing cell
    assert rep["cells"][0]["rel_rmse"] == pytest.approx(0.5, rel=1e-5)                    # read back, same numbers


def test_a_failing_cell_fails_alone(tmp_path):
    rep = sweep(tmp_path, FakeSampling(), y_values="euler,broken").report
    status = {(c["params"]["sampler"], c["params"]["steps"]): c["status"] for c in rep["cells"]}
    assert [s for (name, _), s in status.items() if name == "broken"] == ["failed"] * 4
    assert all(s == "ok" for (name, _), s in status.items() if name == "euler")
    assert all("broken on purpose" in c["error"] for c in rep["cells"] if c["status"] == "failed")


def test_progress_counts_every_step_once(tmp_path):
    fake = FakeSampling()
    seen = []
    kw = settings(y_values="euler")
    plan = plan_sweep(kw, list(METHODS), SCHEDULERS, reference_method="exact")
    hooks = Hooks(sample=fake.sample, decoder=GreyDecoder(), reference=fake.exact, reference_method="exact",
                  progress=lambda done, total, x0: seen.append((done, total)), interrupts=(Stop,))
    SweepRun(plan, hooks, str(tmp_path / "p"), {}).execute()
    total = 2 + 4 + 8 + 16 + 40                  # the cells' steps and the reference's
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert all(b == total for _, b in seen) and all(x <= y for (x, _), (y, _) in zip(seen, seen[1:]))
    assert len(seen) == 1 + 2 + 4 + 8 + 16       # the start, then every cell step (this fake's reference is silent)
