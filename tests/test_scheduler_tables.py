"""Published tables and documented rules: Align Your Steps, GITS, diffusers spacings.

Expected numbers are typed here from their sources (not read from the pack's data files):
- AYS: Sabour, Fidler, Kreis, "Align Your Steps", ICML 2024, arXiv:2404.14507; noise levels and
  timesteps from NVIDIA's quick-start page
  https://research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html
  (the same sigmas are diffusers' AysSchedules in src/diffusers/schedulers/scheduling_utils.py).
- GITS: Chen et al., "On the Trajectory Regularity of ODE-based Diffusion Sampling", ICML 2024,
  arXiv:2405.11326; rows from https://github.com/zju-pi/diff-sampler (gits-main) as carried by
  ComfyUI comfy_extras/nodes_gits.py.
- diffusers spacings: DDIMScheduler / EulerDiscreteScheduler.set_timesteps, written here again
  with numpy from the documented formulas.
"""
import math

import numpy as np
import pytest
import torch

from schedulers import ays, common, gits, spacing
from schedulers.model_sigmas import discrete_vp_sigmas, flow_model_sigmas, sd_model_sigmas
from schedulers.spec import ModelSigmas

# NVIDIA AYS how-to page: 10-step noise levels (11 values, last = the model's sigma_min).
AYS_PUBLISHED = {
    "sd15": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
    "svd": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}
# Same page: the discrete timesteps of the SD1.5 / SDXL schedules.
AYS_TIMESTEPS = {
    "sd15": [999, 850, 736, 645, 545, 455, 343, 233, 124, 24, 0],
    "sdxl": [999, 845, 730, 587, 443, 310, 193, 116, 53, 13, 0],
}
# GITS rows (coeff, steps) -> steps + 1 sigmas.
GITS_ROWS = {
    (0.80, 2): [14.61464119, 7.49001646, 0.02916753],
    (0.80, 4): [14.61464119, 11.54541874, 7.49001646, 3.07277966, 0.02916753],
    (1.20, 5): [14.61464119, 2.84484982, 1.24153244, 0.59516323, 0.25053367, 0.02916753],
    (1.20, 8): [14.61464119, 5.85520077, 2.45070267, 1.36964464, 0.803307, 0.45573691, 0.25053367,
                0.09824532, 0.02916753],
    (1.50, 3): [14.61464119, 0.803307, 0.25053367, 0.02916753],
}


def svd_model_sigmas():
    """An EDM-style continuous model like SVD: 1000 log-uniform sigmas in [0.002, 700]."""
    sig = torch.exp(torch.linspace(math.log(0.002), math.log(700.0), 1000, dtype=torch.float64))
    return ModelSigmas(sigmas=sig.to(torch.float32), kind="ve")


def f32(values):
    return torch.tensor(values, dtype=torch.float64).to(torch.float32)


# ---------------------------------------------------------------- Align Your Steps

def test_ays_data_file_holds_the_published_numbers():
    for name, published in AYS_PUBLISHED.items():
        assert ays.ays_table(name)["sigmas"] == published
    assert "arXiv:2404.14507" in common.load_table("ays.json")["citation"]


@pytest.mark.parametrize("name,ms", [("sd15", sd_model_sigmas()), ("sdxl", sd_model_sigmas()),
                                     ("svd", svd_model_sigmas())])
def test_ays_native_ten_steps_are_the_published_table(name, ms):
    out = ays.ays(ms, 10, model_type=name)
    expected = f32(AYS_PUBLISHED[name][:10] + [0.0])
    assert torch.equal(out, expected), (out, expected)


@pytest.mark.parametrize("name", ["sd15", "sdxl", "svd"])
def test_ays_interpolation_rule(name):
    table = np.array(AYS_PUBLISHED[name], dtype=np.float64)
    ms = svd_model_sigmas() if name == "svd" else sd_model_sigmas()
    # 20 steps: every other point is a knot, the points between are geometric means.
    out = ays.ays(ms, 20, model_type=name).double().numpy()
    np.testing.assert_allclose(out[0:20:2], table[:10], rtol=1e-6)
    np.testing.assert_allclose(out[1:20:2], np.sqrt(table[:-1] * table[1:]), rtol=1e-6)
    assert out[20] == 0.0
    # Any count: log-sigma linear over normalised position (numpy's interp, written here).
    for steps in (1, 3, 7, 33, 100):
        xs = np.linspace(0.0, 1.0, table.size)
        expect = np.exp(np.interp(np.linspace(0.0, 1.0, steps + 1), xs, np.log(table)))
        got = ays.ays(ms, steps, model_type=name).double().numpy()
        np.testing.assert_allclose(got[:-1], expect[:-1], rtol=1e-6)
        assert got[-1] == 0.0
        assert np.all(np.diff(got) < 0)


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_ays_on_flow_models_lands_on_the_published_timesteps(name, shift):
    out = ays.ays(flow_model_sigmas(shift), 10, model_type=name).double().numpy()
    assert out[0] == 1.0 and out[-1] == 0.0
    s = out[:-1]
    t = s / (shift - (shift - 1.0) * s)          # undo the shift: s = k t / (1 + (k - 1) t)
    index = t * 1000.0 - 1.0                      # flow table entry i holds t = (i + 1) / 1000
    # the 3-decimal sigmas sit within 0.6 of NVIDIA's integer timesteps
    np.testing.assert_allclose(index, AYS_TIMESTEPS[name][:10], atol=0.6)


def test_ays_svd_table_on_other_models_starts_at_their_sigma_max():
    ms = sd_model_sigmas()
    out = ays.ays(ms, 10, model_type="svd")
    assert float(out[0]) == ms.sigma_max and torch.all(out[1:] < out[:-1])
    forced = ays.ays(ms, 10, model_type="sd15", mapping="timestep")
    sd = discrete_vp_sigmas()
    idx = np.interp(np.log(forced[:-1].double().numpy()), sd.log().numpy(), np.arange(1000))
    np.testing.assert_allclose(idx, AYS_TIMESTEPS["sd15"][:10], atol=0.6)


def test_ays_bad_options():
    with pytest.raises(ValueError, match="model_type"):
        ays.ays(sd_model_sigmas(), 10, model_type="sd2")
    with pytest.raises(ValueError, match="mapping"):
        ays.ays(sd_model_sigmas(), 10, mapping="percent")
    with pytest.raises(ValueError, match="steps"):
        ays.ays(sd_model_sigmas(), 0)


# ---------------------------------------------------------------- GITS

def test_gits_rows_match_the_source():
    for (coeff, steps), row in GITS_ROWS.items():
        assert gits.gits_table(coeff, steps).tolist() == row
    assert gits.gits_coefficients() == pytest.approx([0.80 + 0.05 * k for k in range(15)])
    assert "arXiv:2405.11326" in common.load_table("gits.json")["citation"]


def test_gits_tables_lie_on_the_time_uniform_sd_grid():
    """GITS searches a 100-interval time-uniform grid of the SD1.5 schedule (Sec. 4): every
    published value must be a sigma at t = 999 (1 - k / 100), k = 0..100."""
    sd = discrete_vp_sigmas()
    f = torch.linspace(999.0, 0.0, 101, dtype=torch.float64)
    lo = f.floor().long().clamp(max=998)
    w = f - lo
    grid = torch.exp((1 - w) * sd[lo].log() + w * sd[lo + 1].log())
    for coeff in gits.gits_coefficients():
        for steps in range(2, 21):
            row = gits.gits_table(coeff, steps)
            assert row.numel() == steps + 1
            assert torch.all(row[1:] < row[:-1])
            assert float(row[0]) == pytest.approx(14.61464119) and float(row[-1]) == pytest.approx(0.02916753)
            rel = ((row[:, None] - grid[None, :]).abs() / row[:, None]).min(dim=1).values
            assert float(rel.max()) < 1e-4, (coeff, steps)


def test_gits_native_counts_reproduce_the_tables():
    ms = sd_model_sigmas()
    for coeff in gits.gits_coefficients():
        for steps in range(2, 21):
            row = gits.gits_table(coeff, steps).tolist()
            assert torch.equal(gits.gits(ms, steps, coeff=coeff), f32(row[:-1] + [0.0]))
    for (coeff, steps), row in GITS_ROWS.items():
        assert torch.equal(gits.gits(ms, steps, coeff=coeff), f32(row[:-1] + [0.0]))


def test_gits_beyond_twenty_steps_interpolates_the_twenty_step_table():
    ms = sd_model_sigmas()
    base = gits.gits_table(1.20, 20).numpy()
    for steps in (21, 40, 333):
        expect = np.exp(np.interp(np.linspace(0, 1, steps + 1), np.linspace(0, 1, 21), np.log(base)))
        got = gits.gits(ms, steps).double().numpy()
        np.testing.assert_allclose(got[:-1], expect[:-1], rtol=1e-6)
        assert np.all(np.diff(got) < 0)
    assert gits.gits(ms, 1).tolist() == [pytest.approx(ms.sigma_max), 0.0]


def test_gits_on_flow_uses_the_same_timesteps():
    row = gits.gits_table(1.20, 10).numpy()
    sd = discrete_vp_sigmas()
    t_sd = np.interp(np.log(row[:-1]), sd.log().numpy(), np.arange(1000))
    out = gits.gits(flow_model_sigmas(1.0), 10).double().numpy()
    np.testing.assert_allclose(out[:-1] * 1000.0 - 1.0, t_sd, atol=0.05)


def test_gits_bad_options():
    with pytest.raises(ValueError, match="coeff"):
        gits.gits(sd_model_sigmas(), 10, coeff=1.23)
    with pytest.raises(ValueError, match="mapping"):
        gits.gits(sd_model_sigmas(), 10, mapping="x")


# ---------------------------------------------------------------- diffusers spacings

def diffusers_timesteps(T, steps, kind, steps_offset=0):
    """The documented set_timesteps rules (DDIM / Euler), numpy as diffusers writes them."""
    if kind == "leading":
        step_ratio = T // steps
        return (np.arange(0, steps) * step_ratio).round()[::-1].astype(np.float64) + steps_offset
    if kind == "trailing":
        return np.round(np.arange(T, 0, -T / steps)).astype(np.float64) - 1
    return np.linspace(0, T - 1, steps, dtype=np.float64)[::-1]


STEPS = [1, 2, 3, 4, 5, 7, 10, 20, 25, 50, 100, 333, 999]


@pytest.mark.parametrize("ms", [sd_model_sigmas(), flow_model_sigmas(3.0)], ids=["sd", "flow3"])
@pytest.mark.parametrize("kind", ["leading", "trailing", "linspace"])
def test_spacings_follow_the_diffusers_rule(ms, kind):
    table = ms.sigmas.double().numpy()
    fn = {"leading": spacing.leading, "trailing": spacing.trailing, "linspace": spacing.linspace}[kind]
    for steps in STEPS:
        ts = diffusers_timesteps(table.size, steps, kind, steps_offset=1 if kind == "leading" else 0)
        assert ts.size == steps
        expect = np.concatenate([np.interp(ts, np.arange(table.size), table), [0.0]])
        got = fn(ms, steps).double().numpy()
        np.testing.assert_allclose(got, expect, rtol=2e-7, atol=0)


def test_spacing_timesteps_known_values():
    assert spacing.spacing_timesteps(1000, 4, "trailing").tolist() == [999, 749, 499, 249]
    assert spacing.spacing_timesteps(1000, 1, "trailing").tolist() == [999]
    assert spacing.spacing_timesteps(1000, 50, "leading", steps_offset=1)[:3].tolist() == [981, 961, 941]
    assert spacing.spacing_timesteps(1000, 10, "linspace", round_timesteps=True).tolist() == \
        [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    ms = sd_model_sigmas()
    assert float(spacing.trailing(ms, 1)[0]) == ms.sigma_max
    assert float(spacing.leading(ms, 1)[0]) == float(ms.sigmas[1])      # diffusers: t = 0 + offset 1


def test_spacing_bad_options():
    with pytest.raises(ValueError, match="spacing"):
        spacing.diffusers_spacing(sd_model_sigmas(), 4, spacing="uniform")
    with pytest.raises(ValueError, match="steps_offset"):
        spacing.diffusers_spacing(sd_model_sigmas(), 4, spacing="leading", steps_offset=-1)
    with pytest.raises(ValueError, match="steps"):
        spacing.trailing(sd_model_sigmas(), 1001)           # more steps than model timesteps
