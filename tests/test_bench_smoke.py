"""Smoke runs of the benchmarks (bench/) with tiny settings: the outputs are well formed and the
numbers obey invariants that a broken harness or sampler would violate. No timing assertions."""
import json
import math
import os

import pytest

import comfy_runtime


@pytest.fixture(scope="module")
def pack():
    return comfy_runtime.load()


@pytest.fixture(scope="module")
def accuracy(pack, tmp_path_factory):
    from bench import accuracy
    out = tmp_path_factory.mktemp("bench")
    assert accuracy.main(["--quick", "--workers", "1", "--out", str(out)]) == 0
    with open(out / "accuracy.json", encoding="utf-8") as f:
        return out, json.load(f)


def ode_rows(data, **where):
    return [r for r in data["rows"] if r["kind"] == "ode" and r["status"] == "ok"
            and all(r[k] == v for k, v in where.items())]


def test_accuracy_outputs_are_well_formed(accuracy):
    out, data = accuracy
    assert data["meta"]["quick"] and data["rows"] and data["targets"]
    md = (out / "accuracy.md").read_text(encoding="utf-8")
    assert "| param | cfg | NFE | best pack pair |" in md and "Targets:" in md
    from PIL import Image
    with Image.open(out / "accuracy.png") as img:
        assert img.format == "PNG" and img.size[0] == 3 * 420   # one panel per parameterisation
    for h in data["headline"]:
        assert h["pack"] and h["builtin"], h
        assert math.isclose(h["ratio"], h["builtin"]["median_rmse"] / h["pack"]["median_rmse"], rel_tol=1e-9)


def test_counted_nfe_equals_requested_nfe(accuracy):
    _, data = accuracy
    mismatched = [(r["sampler"], r["scheduler"], r["nfe"], r["counted_nfe"]) for r in data["rows"]
                  if r["status"] == "nfe_mismatch"]
    assert not mismatched
    for r in data["rows"]:
        if r["status"] == "ok" and r["exact_nfe"]:
            assert r["counted_nfe"] == [r["nfe"]], r


def test_error_is_scored_from_the_latent_comfyui_handed_the_sampler(accuracy):
    """The reference starts from our reconstruction of KSAMPLER's noise_scaling; the first model input
    of every run must be that latent (else the reference answers a different question)."""
    _, data = accuracy
    for r in ode_rows(data):
        assert r["max_start_error"] < 1e-5 * 15, (r["sampler"], r["scheduler"], r["max_start_error"])


@pytest.mark.parametrize("sampler", ["uni_pc", "dpmpp_2m", "lab_dpmpp2m_unic"])
def test_error_falls_with_nfe_for_high_order_samplers(accuracy, sampler):
    """Deterministic 2nd/3rd-order samplers: error strictly falls with NFE 5 -> 10 -> 20 and drops by
    more than 4x over the 4x NFE range (first order would give ~4x; these are higher order). Checked
    in the asymptotic regime only: every sample already ends in the reference's mixture component
    (a sample that lands in another mode adds an O(1) error that no order of accuracy removes)."""
    _, data = accuracy
    checked = 0
    for param in ("eps", "v", "flow"):
        for cfg in (1.0, 3.0):
            rows = sorted(ode_rows(data, sampler=sampler, scheduler="karras", param=param, cfg=cfg),
                          key=lambda r: r["nfe"])
            assert [r["nfe"] for r in rows] == [5, 10, 20]
            if any(r["mode_agreement"] < 1 for r in rows):
                continue
            errs = [r["median_rmse"] for r in rows]
            assert errs[0] > errs[1] > errs[2], (param, cfg, errs)
            assert errs[2] < errs[0] / 4, (param, cfg, errs)
            checked += 1
    assert checked >= 2, f"only {checked} of 6 cases were in the asymptotic regime"


def test_eps_and_v_models_solve_the_same_ode(accuracy):
    """In ComfyUI's x-space eps and v models share x = x0 + sigma n and the same exact denoiser, so every
    deterministic pair must score the same on both (a wrong v conversion would break this)."""
    _, data = accuracy
    eps = {(r["sampler"], r["scheduler"], r["cfg"], r["nfe"]): r["median_rmse"] for r in ode_rows(data, param="eps")}
    v = {(r["sampler"], r["scheduler"], r["cfg"], r["nfe"]): r["median_rmse"] for r in ode_rows(data, param="v")}
    assert eps.keys() == v.keys() and eps
    for k, e in eps.items():
        assert abs(e - v[k]) <= 1e-2 * e + 1e-5, (k, e, v[k])


def test_stochastic_scores_are_distances_to_the_data(accuracy):
    _, data = accuracy
    sde = [r for r in data["rows"] if r["kind"] == "sde" and r["status"] == "ok"]
    assert sde and all(r["cfg"] == 1.0 for r in sde)
    assert all(0 <= r["median_data_distance"] < 10 for r in sde)
    assert 0 <= data["exact_data_distance"] < 0.2   # exact samples sit at normalised distance ~1


def test_overhead_quick_counts_calls_and_writes_tables(pack, tmp_path):
    from bench import overhead
    from bench.accuracy import CORE_ODE, CORE_SDE
    assert overhead.main(["--quick", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "overhead.json", encoding="utf-8") as f:
        data = json.load(f)
    assert data["rows"] and "| size | pack sampler |" in (tmp_path / "overhead.md").read_text(encoding="utf-8")
    specs = pack.samplers.SAMPLERS
    for r in data["rows"]:
        p, c = r["pack"], r["core"]
        assert p["calls"] == specs[p["sampler"]].nfe(p["steps"]), p
        core_nfe = {**CORE_ODE, **CORE_SDE}.get(c["sampler"])
        if core_nfe is not None:
            assert c["calls"] == core_nfe(c["steps"]), c
        for m in (p, c):
            assert m["overhead_ms_per_call"] >= 0 and m["model_ms_per_call"] > 0
        assert r["fraction"] == pytest.approx(p["overhead_ms_per_call"] / r["step_ms"])


def test_memory_quick_counts_history_buffers(pack, tmp_path):
    from bench import memory
    assert memory.main(["--quick", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "memory.json", encoding="utf-8") as f:
        rows = json.load(f)["rows"]
    held = {m["sampler"]: m["peak_extra_latents"] for r in rows for m in (r["pack"], r["core"])}
    assert all(2 <= n <= 40 for n in held.values()), held          # at least the new x and denoised
    # a 3rd-order multistep keeps past denoised values; one-step ancestral Euler does not
    assert held["lab_dpmpp2m_unic"] > held["lab_ancestral_euler"], held
    assert os.path.isfile(tmp_path / "memory.md")


def test_optimized_schedule_pairs_are_fitted_on_other_noise_and_run_at_the_nfe(accuracy):
    """The Schedule Optimizer pairs: calibrated on seeds disjoint from the evaluation noise (stated in
    the output), full-start schedules ending at 0, the requested NFE counted, cached by settings."""
    out, data = accuracy
    from bench import optimized
    opt = data["meta"]["optimizer"]
    assert opt["scheduler"] == optimized.SCHEDULER and opt["calibration_seed"] != 0
    rows = ode_rows(data, scheduler=optimized.SCHEDULER)
    assert {r["nfe"] for r in rows} == {5, 10, 20} and {r["param"] for r in rows} == {"eps", "v", "flow"}
    for r in rows:
        assert r["full_start"] and r["counted_nfe"] == [r["nfe"]], r
        assert not is_builtin_row(r)
    md = (out / "accuracy.md").read_text(encoding="utf-8")
    assert "calibration" in md.lower()
    with open(out / optimized.CACHE_NAME, encoding="utf-8") as f:
        cache = json.load(f)
    assert len(cache) == len(rows) and all(v["sigmas"][-1] == 0.0 for v in cache.values())


def is_builtin_row(r):
    from bench.accuracy import is_builtin
    return is_builtin(r)


def test_sweep_overhead_bench_writes_its_table(pack, tmp_path, monkeypatch):
    """One repeat of the lab case: the harness runs the node and KSampler's function side by side and
    writes the table with the paired parts (no timing is asserted: one repeat is pure noise)."""
    import comfy.utils
    import folder_paths
    from bench import sweep_overhead
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_ENABLED", comfy.utils.PROGRESS_BAR_ENABLED)
    monkeypatch.setattr(folder_paths, "output_directory", folder_paths.get_output_directory())
    assert sweep_overhead.main(["--repeats", "1", "--cases", "0", "--out", str(tmp_path)]) in (0, 1)
    text = (tmp_path / "sweep_overhead.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| lab workflow"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "16" and int(cells[2]) > 16                  # 16 cells, counted model calls
    by_part = next(line for line in text.splitlines() if line.startswith("Paired, by part"))
    for part in ("warm-up", "reference", "cells", "the rest"):
        assert f"{part} " in by_part
