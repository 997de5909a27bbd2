"""The step sweep's shift and boundary axes, pure (no ComfyUI): value syntax, bad input, plan labels,
the checks that need no model (a boundary needs the second model, and the reverse; a shift cannot
change a connected SIGMAS), and the keys: cells and references of different shifts / boundaries
never reuse each other, the same ones resume.

Expected values are written out by hand from the syntax the help page documents."""
import pytest
import torch

import sweep
from sweep import SweepAxisError, format_value, parse_axis
from sweep.boundary_axis import boundary_mode
from sweep.engine import Hooks, Sampled, SweepRun, plan_sweep
from schedulers.boundary import split_index_at_fraction, split_index_at_sigma

BASE = {"sampler": "euler", "scheduler": "simple", "steps": 8, "cfg": 1.0, "denoise": 1.0, "seed": 1,
        "controlnet_end": None}


# syntax -------------------------------------------------------------------------------------------
def test_shift_values_and_labels():
    assert parse_axis("shift", "1.5, 3, 5-8:1.5") == [1.5, 3.0, 5.0, 6.5, 8.0]
    assert parse_axis("shift", "3, 3.0") == [3.0]
    assert [format_value("shift", v) for v in (3.0, 1.5, 12.0)] == ["shift 3", "shift 1.5", "shift 12"]


@pytest.mark.parametrize("text", ["0", "-1", "3, 0", "-2-3:1", "0-2:1"])
def test_shift_at_or_below_zero_names_axis_token_and_fix(text):
    with pytest.raises(SweepAxisError) as err:
        parse_axis("shift", text)
    msg = str(err.value)
    assert msg.startswith("shift axis: '") and "above 0" in msg and "1 = no shift" in msg, msg


def test_boundary_values_in_three_units():
    assert parse_axis("boundary", "0.875, 0.9") == ["0.875", "0.9"]
    assert parse_axis("boundary", "0.8-0.9:0.05") == ["0.8", "0.85", "0.9"]
    assert parse_axis("boundary", "t875, T900, t800-900:50") == ["t875", "t900", "t800", "t850"]
    assert parse_axis("boundary", "50%, 60-80:10%, 70%-90%:20%") == ["50%", "60%", "70%", "80%", "90%"]
    assert parse_axis("boundary", "0, 100%") == ["0", "100%"]
    assert [format_value("boundary", v) for v in ("0.875", "t875", "75%")] == \
        ["boundary 0.875", "boundary t875", "boundary 75%"]
    assert boundary_mode("0.875") == ("sigma", 0.875)
    assert boundary_mode("t875") == ("timestep", 875.0)
    assert boundary_mode("75%") == ("fraction", 0.75)


@pytest.mark.parametrize("text, words", [
    ("-0.5", ["'-0.5'", "negative"]),
    ("120%", ["'120%'", "above 100%"]),
    ("x", ["'x'", "not a boundary", "t875", "75%"]),
    ("t", ["'t'", "not a boundary"]),
    ("0.9-0.8:0.05", ["'0.9-0.8:0.05'", "smaller value first"]),
    ("0.8-0.9", ["needs a step"]),
    ("", ["empty", "0.875, 0.9"]),
])
def test_bad_boundary_text_names_token_and_fix(text, words):
    with pytest.raises(SweepAxisError) as err:
        parse_axis("boundary", text)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_boundary_values_split_by_the_hand_off_rule():
    """What a stored value means, through schedulers/boundary.py: steps whose start sigma >= the
    boundary; a fraction of the steps, rounded."""
    sig = torch.tensor([1.0, 0.9, 0.75, 0.5, 0.25, 0.0])
    assert split_index_at_sigma(sig, boundary_mode("0.875")[1]) == 2          # 1.0 and 0.9
    assert split_index_at_sigma(sig, boundary_mode("0")[1]) == 5              # the whole schedule: unsplit
    assert split_index_at_fraction(sig, boundary_mode("40%")[1]) == 2
    assert split_index_at_fraction(sig, boundary_mode("100%")[1]) == 5


# planning -----------------------------------------------------------------------------------------
def test_plan_labels_params_and_reference_groups():
    cells, shape = sweep.plan_cells([("shift", [2.0, 5.0]), ("boundary", ["0.875", "75%"])], BASE)
    assert shape == (1, 2, 2)
    assert [c.labels for c in cells] == [{"shift": "shift 2", "boundary": "boundary 0.875"},
                                         {"shift": "shift 5", "boundary": "boundary 0.875"},
                                         {"shift": "shift 2", "boundary": "boundary 75%"},
                                         {"shift": "shift 5", "boundary": "boundary 75%"}]
    assert [(c.params["shift"], c.params["boundary"]) for c in cells] == [(2.0, "0.875"), (5.0, "0.875"),
                                                                          (2.0, "75%"), (5.0, "75%")]
    assert len({c.reference_key() for c in cells}) == 4           # each shift and boundary: its own reference
    assert len({c.group_key() for c in cells}) == 4                # and its own convergence curve
    plain, _ = sweep.plan_cells([("steps", [4])], BASE)
    assert plain[0].params["shift"] is None and plain[0].params["boundary"] is None   # the model as connected


def settings(**over):
    kw = dict(seed=1, steps=4, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0, x_axis="shift",
              x_values="2,3", y_axis="none", y_values="", z_axis="none", z_values="", equal_cost=False,
              reference_sampler="none", reference_steps=8, tolerance=0.01, cell_limit=64, cell_size=64,
              filename_prefix="t")
    kw.update(over)
    return kw


@pytest.mark.parametrize("over, flags, words", [
    ({"x_axis": "boundary", "x_values": "0.9"}, {}, ["boundary axis", "connect model_low"]),
    ({"x_axis": "steps", "x_values": "4"}, {"second_model": True}, ["model_low is connected", "no axis is boundary"]),
    ({"x_axis": "boundary", "x_values": "0.9"}, {"second_model": True, "guider_input": True},
     ["boundary axis", "GUIDER holds one model"]),
    ({"x_axis": "shift", "x_values": "3"}, {"sigmas_steps": 8}, ["shift axis", "connected SIGMAS", "disconnect"]),
])
def test_checks_that_need_no_model(over, flags, words):
    with pytest.raises(SweepAxisError) as err:
        plan_sweep(settings(**over), ["euler"], ["simple"], **flags)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_a_single_boundary_on_z_with_a_second_model_plans():
    plan = plan_sweep(settings(x_axis="steps", x_values="4,8", z_axis="boundary", z_values="0.875"), ["euler"],
                      ["simple"], second_model=True)
    assert [c.params["boundary"] for c in plan.cells] == ["0.875", "0.875"]
    assert "boundary" not in plan.fixed and "shift" not in plan.fixed


# keys: no wrong reuse, resume of the same ---------------------------------------------------------
class Fake:
    """Latent = shift + (k for boundary 'k') + 1/steps, so a cell that reused another's would show."""
    kind = "preview"

    def __init__(self):
        self.runs = []

    def sample(self, params, sampler_name, steps, on_step):
        self.runs.append((params["shift"], params["boundary"], steps))
        value = (params["shift"] or 0.0) + float(str(params["boundary"] or "0").rstrip("%")) + 1.0 / steps
        return Sampled(torch.full((1, 4, 4, 4), value), steps, 1e-3, 1e-3, [0.0, 1e-3])

    def batch_pictures(self, latents, max_side=4096):
        import numpy as np
        return None, np.zeros((latents.shape[0], 8, 8, 3), dtype=np.uint8)


def run(tmp_path, fake, second_model=False, **over):
    plan = plan_sweep(settings(**over), ["euler"], ["simple"], second_model=second_model)
    return SweepRun(plan, Hooks(sample=fake.sample, decoder=fake), str(tmp_path / "s"), {}).execute().report


def test_cells_of_other_shifts_are_not_reused_and_the_same_resume(tmp_path):
    fake = Fake()
    first = run(tmp_path, fake, x_values="2,3")
    assert [c["source"] for c in first["cells"]] == ["run", "run"]
    fake.runs.clear()
    again = run(tmp_path, fake, x_values="3,4")
    assert [(c["params"]["shift"], c["source"]) for c in again["cells"]] == [(3.0, "cache"), (4.0, "run")]
    assert [r for r in fake.runs if r[2] == 4] == [(4.0, None, 4)]        # only shift 4 sampled (beside the warm-up)


def test_cells_of_other_boundaries_are_not_reused_and_the_same_resume(tmp_path):
    fake = Fake()
    run(tmp_path, fake, second_model=True, x_axis="boundary", x_values="0.5, 60%")
    fake.runs.clear()
    again = run(tmp_path, fake, second_model=True, x_axis="boundary", x_values="60%, 0.5, 0.7")
    assert [(c["params"]["boundary"], c["source"]) for c in again["cells"]] == \
        [("60%", "cache"), ("0.5", "cache"), ("0.7", "run")]
    assert again["grid"]["columns"] == ["boundary 60%", "boundary 0.5", "boundary 0.7"]
