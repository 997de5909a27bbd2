"""bench.accuracy.merge_runs: partial re-runs take the place of the rows they made again, and a
schedules-only re-run ranks the headlines again. Synthetic rows with hand-set means (no sampling)."""
import pytest

pytest.importorskip("torch")


def row(sampler, scheduler, mean, nfe=8, origin=("core", "core"), kind="ode", **extra):
    r = {"family": "mixture", "param": "eps", "cfg": 1.0, "nfe": nfe, "kind": kind, "sampler": sampler,
         "scheduler": scheduler, "sampler_origin": origin[0], "scheduler_origin": origin[1], "status": "ok",
         "full_start": True, "mean": mean, "steps": nfe, "sigmas": [1.0, 0.0]}
    r.update(extra)
    return r


def run(rows, heads, **meta):
    return {"rows": rows, "headline": heads, "meta": dict({"units": [], "seconds": 10.0, "quick": False}, **meta)}


def full_run():
    from bench.accuracy import headline
    rows = [row("euler", "karras", 0.30), row("dpmpp_2m", "karras", 0.20),
            row("euler", "node:LaplaceScheduler", None, status="error"),
            row("lab_rk4", "karras", 0.25, origin=("pack", "core")),
            row("lab_rk4", "node:LaplaceScheduler", None, origin=("pack", "core"), status="error"),
            row("lab_rk4", "karras", 0.50, origin=("pack", "core"), kind="trick", variant="off")]
    return run(rows, {"mixture": headline(rows, "mixture", (8,))})


def test_a_schedules_rerun_replaces_its_rows_and_ranks_again():
    from bench.accuracy import merge_runs
    rerun = run([row("euler", "node:LaplaceScheduler", 0.10), row("lab_rk4", "node:LaplaceScheduler", 0.40,
                                                                   origin=("pack", "core"))], {},
                schedules_only=["node:LaplaceScheduler"], families=["mixture"], seconds=2.5)
    before = full_run()
    assert before["headline"]["mixture"][0]["builtin"]["sampler"] == "dpmpp_2m"
    rows, heads, meta = merge_runs([before, rerun])
    laplace = [r for r in rows if r["scheduler"] == "node:LaplaceScheduler"]
    assert sorted(r["mean"] for r in laplace) == [0.10, 0.40]            # the error rows are gone
    assert len(rows) == 6 and meta["seconds"] == 12.5 and meta["rerun"] == ["node:LaplaceScheduler"]
    h = heads["mixture"][0]
    assert (h["builtin"]["sampler"], h["builtin"]["scheduler"]) == ("euler", "node:LaplaceScheduler")
    assert h["pack"]["mean"] == 0.25 and h["tried_builtin"] == 3
    assert any(r["kind"] == "trick" for r in rows)                      # other rows stay


def test_without_a_partial_rerun_everything_is_kept_as_written():
    from bench.accuracy import merge_runs
    before = full_run()
    rows, heads, meta = merge_runs([before])
    assert rows == before["rows"] and heads == before["headline"] and "rerun" not in meta


def test_a_tricks_rerun_replaces_only_the_trick_rows():
    from bench.accuracy import merge_runs
    tricks = run([row("lab_rk4", "karras", 0.45, origin=("pack", "core"), kind="trick", variant="off")], {},
                 tricks_only=True)
    rows, heads, _ = merge_runs([full_run(), tricks])
    assert [r["mean"] for r in rows if r["kind"] == "trick"] == [0.45]
    assert len(rows) == 6 and heads == full_run()["headline"]
