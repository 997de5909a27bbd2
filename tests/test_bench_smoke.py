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
    with open(out / "accuracy_quick.json", encoding="utf-8") as f:
        return out, json.load(f)


def ok_rows(data, **where):
    return [r for r in data["rows"] if r["status"] == "ok" and all(r.get(k) == v for k, v in where.items())]


def test_accuracy_outputs_are_well_formed(accuracy):
    out, data = accuracy
    assert data["meta"]["quick"] and data["rows"]
    for fam in ("mixture", "labnet"):
        md = (out / f"accuracy_{fam}_quick.md").read_text(encoding="utf-8")
        assert "| param | cfg | NFE | best built-in |" in md and "## Targets" in md
        assert data["headline"][fam] and data["targets"][fam]
    assert "Spearman" in (out / "accuracy_carry_over_quick.md").read_text(encoding="utf-8")
    from PIL import Image
    with Image.open(out / "accuracy_quick.png") as img:
        assert img.format == "PNG"


def test_headline_pairs_are_the_best_by_the_mean_of_their_side(accuracy):
    """Ranking is by the mean, each side's winner is the minimum over that side's full-start ok pairs, and the
    built-in side holds core samplers on core schedules only (dropdown schedulers and SIGMAS nodes)."""
    from bench.accuracy import builtin
    _, data = accuracy
    for fam, heads in data["headline"].items():
        for h in heads:
            pool = [r for r in ok_rows(data, family=fam, param=h["param"], cfg=h["cfg"], nfe=h["nfe"], kind="ode")
                    if r.get("full_start")]
            side = [r for r in pool if builtin(r)]
            assert h["builtin"]["mean"] == min(r["mean"] for r in side)
            assert all(r["sampler_origin"] == "core" and r["scheduler_origin"] == "core" for r in side)
            packs = [r for r in pool if not builtin(r) and not r.get("optimizer")]
            assert h["pack"]["mean"] == min(r["mean"] for r in packs)
            lo, hi = h["builtin"]["mean_ci"]
            assert lo <= h["builtin"]["mean"] <= hi
    scheds = {r["scheduler"] for r in ok_rows(data) if r["scheduler_origin"] == "core"}
    assert {"karras", "normal", "simple", "node:AlignYourStepsScheduler"} <= scheds, scheds


@pytest.mark.parametrize("family", ["eps", "flow"])
def test_every_core_sigmas_node_gives_a_schedule_the_bench_can_score(pack, family):
    """The built-in side is complete only if each core SIGMAS node's schedule is scored: `steps` steps
    (steps + 1 values), non-increasing, ending at 0. Core's LaplaceScheduler alone ends at sigma_min with no
    final 0; without the bench's appended 0 every one of its pairs was an error (this fails then)."""
    from bench import common, fair
    model = common.node("SamplerLabModel").build(family, 3.0, 6, 3, 0.05, 0, "float32")[0]
    ms = model.get_model_object("model_sampling")
    for name, fn in fair.core_node_schedules(family, model, ms).items():
        for steps in (3, 8):
            sigmas = fn(steps)
            if sigmas is None:            # a node that does not offer this step count (SDTurbo > 10)
                continue
            assert sigmas.numel() == steps + 1 and float(sigmas[-1]) == 0.0, (name, steps, sigmas)
            # non-increasing: core's LaplaceScheduler clamps to sigma_max, so at its defaults (mu = 0) on a
            # flow model (sigma_max = 1) its first values repeat; that is the node's schedule, scored as such
            assert bool((sigmas[:-1] >= sigmas[1:]).all()) and float(sigmas[0]) > float(sigmas[-2]), (name, steps)


def test_counted_nfe_equals_requested_nfe(accuracy):
    _, data = accuracy
    assert not [r for r in data["rows"] if r["status"] == "nfe_mismatch"]
    for r in ok_rows(data):
        if r["exact_nfe"]:
            assert r["counted_nfe"] == [r["nfe"]], r


def test_error_is_scored_from_the_latent_comfyui_handed_the_sampler(accuracy):
    """The exact reference starts from our reconstruction of KSAMPLER's noise_scaling; the first model input
    of every run must be that latent (else the reference answers a different question)."""
    _, data = accuracy
    rows = ok_rows(data, family="mixture", kind="ode")
    assert rows and all(r["max_start_error"] < 1e-5 * 15 for r in rows)


@pytest.mark.parametrize("sampler", ["uni_pc", "dpmpp_2m", "lab_dpmpp2m_unic"])
def test_error_falls_with_nfe_for_high_order_samplers(accuracy, sampler):
    """On the exact mixture, 2nd/3rd-order samplers: NFE 5 -> 10 cuts the mean error by more than 2x (first
    order would give ~2x) wherever every sample keeps the reference's mode."""
    _, data = accuracy
    checked = 0
    for cfg in (1.0, 3.0):
        rows = sorted(ok_rows(data, family="mixture", sampler=sampler, scheduler="karras", cfg=cfg, kind="ode"),
                      key=lambda r: r["nfe"])
        assert [r["nfe"] for r in rows] == [5, 10]
        if any(r["agreement"] < 1 for r in rows):
            continue
        assert rows[1]["mean"] < rows[0]["mean"] / 2, (cfg, rows[0]["mean"], rows[1]["mean"])
        checked += 1
    assert checked >= 1


def test_eps_and_v_models_solve_the_same_ode(accuracy):
    """In ComfyUI's x-space eps and v share x = x0 + sigma n and the same exact denoiser, so v is checked,
    not ranked: one run on each must agree to float rounding (a wrong v conversion would break this)."""
    _, data = accuracy
    diffs = [m["v_minus_eps_max"] for m in data["meta"]["units"] if "v_minus_eps_max" in m]
    assert diffs and max(diffs) < 1e-3, diffs


def test_optimizer_pairs_come_from_the_shipped_node(accuracy):
    """The Schedule Optimizer rows: the node's own output, full-start schedules ending at 0, the NFE counted."""
    _, data = accuracy
    rows = [r for r in ok_rows(data) if r.get("optimizer")]
    assert {r["family"] for r in rows} == {"mixture", "labnet"} and {r["nfe"] for r in rows} == {5, 10}
    for r in rows:
        assert r["scheduler"] == "Schedule Optimizer node" and r["sigmas"][-1] == 0.0
        assert r["full_start"] and r["counted_nfe"] == [r["nfe"]], r


def test_reference_self_error_is_far_below_the_errors_ranked(accuracy):
    _, data = accuracy
    for m in data["meta"]["units"]:
        errs = [r["mean"] for r in ok_rows(data, family=m["family"], cfg=m["cfg"], kind="ode") if r["nfe"] == 10]
        assert m["reference_self_error"] < 0.1 * min(errs), (m, min(errs))


def test_labnet_headline_pairs_have_sample_quality(accuracy):
    _, data = accuracy
    for h in data["headline"]["labnet"]:
        q = h["builtin"]["quality"]
        assert q["fd_digits"] >= 0
        assert (q["accuracy"] is None) == (h["cfg"] == 1.0)


def test_overhead_quick_counts_calls_and_writes_tables(pack, tmp_path):
    from bench import overhead
    from bench.fair import CORE_ODE, CORE_SDE
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


def test_sweep_overhead_median_interval_matches_the_sign_test_table():
    """The paired median's 95 % interval uses the sign test's ranks, worked out by hand from binomial
    tails P(Bin(n, 1/2) <= k - 1) <= 0.025: n = 8: P(<= 1) = 9/256 = 0.035 > 0.025, so ranks 1..8
    (99.2 %); n = 12: P(<= 2) = 79/4096 = 0.019, ranks 3..10 (96.1 %); n = 16: P(<= 3) = 697/65536 =
    0.011, P(<= 4) = 0.038, ranks 4..13 (97.9 %); n = 20: P(<= 5) = 0.021, ranks 6..15 (95.9 %)."""
    from bench.sweep_overhead import median_interval
    for n, (lo, hi) in {8: (1, 8), 12: (3, 10), 16: (4, 13), 20: (6, 15)}.items():
        values = [10.0 * r for r in range(n, 0, -1)]            # unsorted on purpose
        assert median_interval(values) == (10.0 * lo, 10.0 * hi), n


def test_labnet_eps_reference_restarts_at_the_timestep_jumps(pack):
    """The full run's Lab Net eps reference through ComfyUI (Heun restarted at each jump of ComfyUI's
    nearest-timestep lookup): one step per timestep agrees with two far below any sampler's error, and
    with plain log-sigma RK4 to within that method's own jump-limited error (~1e-3)."""
    import torch
    from bench.accuracy import per_sample_rmse
    from bench.units import LabNetUnit
    sig = torch.tensor([0.3, 0.0])      # from sigma 0.3: a quarter of the 1000 timestep pieces, to keep it quick
    unit = LabNetUnit("eps", 1.0, 2)
    one, two = unit.reference(sig), unit.reference(sig, fine=True)
    assert "timestep" in unit.reference_label()
    assert per_sample_rmse(one, two).max() < 1e-5
    plain = LabNetUnit("eps", 1.0, 2, quick=True)
    gap = per_sample_rmse(one, plain.reference(sig)).max()
    assert 1e-7 < gap < 3e-3, gap


def test_trick_variants_really_switch_the_trick(accuracy):
    """Every tricks-table variant runs a different sampler than the default (a variant equal to the default,
    as when a default changed under the table, would compare a sampler with itself)."""
    from bench.accuracy import TRICKS
    _, data = accuracy
    rows = [r for r in ok_rows(data) if r["kind"] == "trick"]
    assert rows
    for sname, variants in TRICKS.items():
        default = next(iter(variants))
        assert "(default)" in default
        for key in {(r["family"], r["param"], r["cfg"], r["nfe"]) for r in rows if r["sampler"] == sname}:
            pool = {r["variant"]: r["mean"] for r in rows if r["sampler"] == sname
                    and (r["family"], r["param"], r["cfg"], r["nfe"]) == key}
            assert set(pool) == set(variants), (sname, key, pool)
            assert all(pool[v] != pool[default] for v in variants if v != default), (sname, key, pool)
