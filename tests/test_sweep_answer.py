"""sweep.answer: the cheapest group reaching the tolerance is the answer, with the winning value of
every other swept axis (a shift or boundary sweep's answer is incomplete without it)."""
from sweep.answer import answer, answer_text

REFERENCE = {"sampler": "lab_rk4", "steps": 48, "method": "ODE solution (test)"}


def settings(**axes):
    kw = {"sampler_name": "euler", "scheduler": "karras", "tolerance": 0.02, "x_axis": "steps", "y_axis": "sampler",
          "z_axis": "none"}
    kw.update(axes)
    return kw


def group(sampler, steps, nfe, reached=True, **params):
    g = {"sampler": sampler, "scheduler": "simple", "cfg": 3.0, "denoise": 1.0, "seed": 1, "controlnet_end": None,
         "shift": None, "boundary": None}
    g.update(params)
    return {"group": g, "steps": steps if reached else None, "reached": reached, "nfe": nfe, "error": 0.01,
            "sample_s": 1.0}


def test_the_answer_names_the_winning_shift_of_a_shift_sweep():
    recs = [group("euler", 16, 16, shift=1.0), group("euler", 12, 12, shift=3.0), group("heun", 8, 15, shift=3.0)]
    ans = answer(recs, [], settings(z_axis="shift"), REFERENCE, 32)
    assert ans["other_axes"] == {"shift": 3.0} and (ans["sampler"], ans["steps"]) == ("euler", 12)
    assert answer_text(ans) == "euler / simple, 12 steps, 12 model calls, at shift 3"


def test_a_boundary_and_a_cfg_axis_are_both_named():
    recs = [group("euler", 8, 8, cfg=5.0, boundary="t875"), group("euler", 8, 9, cfg=3.0, boundary="t900")]
    ans = answer(recs, [], settings(x_axis="cfg", y_axis="boundary", z_axis="none"), REFERENCE, 32)
    assert ans["other_axes"] == {"cfg": 5.0, "boundary": "t875"}
    assert answer_text(ans).endswith(", at cfg 5, boundary t875")


def test_without_other_axes_the_answer_reads_as_before():
    ans = answer([group("dpmpp_2m", 10, 10)], [], settings(), REFERENCE, 32)
    assert ans["other_axes"] == {} and answer_text(ans) == "dpmpp_2m / simple, 10 steps, 10 model calls"
