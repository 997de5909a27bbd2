"""Schedule preview for the web extension (web/js/schedule_preview.js).

GET /sampler_lab/schedule_preview (also under /api/...) with query parameters
  scheduler   any name in ComfyUI's scheduler dropdown (core or pack), or
  node        a Sampler Lab schedule node id (e.g. SamplerLabAlignYourSteps) whose parameters
              are passed as further query parameters with their widget names (alpha=0.5 ...)
  steps       1..1000
  model_kind  eps | v | flow   (a standard SD-style discrete table, or a flow model)
  shift       flow shift (flow only; default 3.0)
  denoise     0..1 (default 1.0; like BasicScheduler, the tail of a longer schedule)
answers JSON {"ok": true, "sigmas": [...], ...}. A schedule that cannot be computed for these
settings (e.g. GITS beyond 20 steps) answers 200 {"ok": false, "error": "..."} so the browser shows
the message instead of logging a failed request; malformed parameters answer 400.

Sigmas come from comfy.samplers.calculate_sigmas on a standard model_sampling (the same code path
KSampler uses), or from the pack node's own compute on that model_sampling. Nothing is fetched
from outside the local server. Imported in-process without a running server (tests), the module
registers nothing. The route's presence is advertised as the server feature flag FEATURE, so the
browser can tell "route missing" apart without a failing request.
"""
import functools
import logging
import math

import comfy.model_sampling
import comfy.samplers

from .. import bridge
from .schedule_nodes import NODE_CLASS_MAPPINGS as SCHEDULE_NODES
from .schedule_nodes import with_denoise

log = logging.getLogger("sampler_lab")
ROUTE = "/sampler_lab/schedule_preview"
FEATURE = "sampler_lab_schedule_preview"
MODEL_KINDS = ("eps", "v", "flow")
MAX_STEPS = 1000


class PreviewError(ValueError):
    """Malformed request parameters (HTTP 400)."""


@functools.lru_cache(maxsize=16)
def standard_model_sampling(model_kind, shift=3.0):
    """A model_sampling like a real checkpoint's: SD1.5/SDXL discrete table (eps, v) or a flow model."""
    if model_kind == "flow":
        cls = type("LabPreviewFlow", (comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST), {})
        ms = cls()
        ms.set_parameters(shift=shift)
        return ms
    parameterization = comfy.model_sampling.V_PREDICTION if model_kind == "v" else comfy.model_sampling.EPS
    return type("LabPreviewDiscrete", (comfy.model_sampling.ModelSamplingDiscrete, parameterization), {})()


def _number(query, name, cast, default, lo, hi):
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise PreviewError(f"{name} must be a number, got {raw!r}") from None
    if not (lo <= value <= hi) or (isinstance(value, float) and not math.isfinite(value)):
        raise PreviewError(f"{name} must be in [{lo}, {hi}], got {raw!r}")
    return value


def _node_params(node_cls, query):
    """The node's schedule parameters from the query, typed and checked like its widgets."""
    params = {}
    for name, (kind, opts) in node_cls.PARAMS.items():
        if isinstance(kind, (list, tuple)):
            value = query.get(name, opts.get("default", kind[0]))
            if value not in kind:
                raise PreviewError(f"{name} must be one of {list(kind)}, got {value!r}")
        else:
            cast = int if kind == "INT" else float
            value = _number(query, name, cast, opts.get("default", 0), opts.get("min", -math.inf), opts.get("max", math.inf))
        params[name] = value
    return params


def schedule_preview(query):
    """The preview answer for a query mapping (pure apart from ComfyUI's scheduler handlers)."""
    steps = _number(query, "steps", int, 20, 1, MAX_STEPS)
    denoise = _number(query, "denoise", float, 1.0, 0.0, 1.0)
    shift = _number(query, "shift", float, 3.0, 0.01, 100.0)
    kind = query.get("model_kind", "eps")
    if kind not in MODEL_KINDS:
        raise PreviewError(f"model_kind must be one of {list(MODEL_KINDS)}, got {kind!r}")
    ms = standard_model_sampling(kind, shift if kind == "flow" else 1.0)
    node_id = query.get("node")
    if node_id:
        node_cls = SCHEDULE_NODES.get(node_id)
        if node_cls is None:
            raise PreviewError(f"node must be a Sampler Lab schedule node ({sorted(SCHEDULE_NODES)}), got {node_id!r}")
        params = _node_params(node_cls, query)
        label = node_id
        pure = bridge.model_sigmas(ms)

        def compute(n):
            return node_cls().compute(pure, n, **params)
    else:
        label = query.get("scheduler", "")
        if label not in comfy.samplers.SCHEDULER_HANDLERS:
            raise PreviewError(f"scheduler must be one of {list(comfy.samplers.SCHEDULER_HANDLERS)}, got {label!r}")

        def compute(n):
            return comfy.samplers.calculate_sigmas(ms, label, n)
    answer = {"scheduler": label, "steps": steps, "model_kind": kind, "shift": shift if kind == "flow" else None,
              "denoise": denoise, "sigma_max": float(ms.sigma_max), "sigma_min": float(ms.sigma_min)}
    try:
        sigmas = with_denoise(compute, steps, denoise)
        values = [float(s) for s in sigmas.reshape(-1)]
    except Exception as e:  # the schedule's own limits (e.g. GITS tables stop at 20 steps): show, don't fail
        return {**answer, "ok": False, "error": f"{label}: {e}"}
    if not all(math.isfinite(v) for v in values):
        return {**answer, "ok": False, "error": f"{label}: schedule contains non-finite sigmas"}
    return {**answer, "ok": True, "sigmas": values}


def register_routes():
    """Add the route to the running ComfyUI server, once. False when there is no server (in-process)."""
    try:
        import server
        from aiohttp import web
    except ImportError:
        return False
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    routes = getattr(instance, "routes", None)
    if routes is None:
        return False
    if not any(getattr(r, "path", None) == ROUTE for r in routes):
        @routes.get(ROUTE)
        async def _schedule_preview(request):
            try:
                return web.json_response(schedule_preview(request.rel_url.query))
            except PreviewError as e:
                return web.json_response({"ok": False, "error": str(e)}, status=400)
    try:
        from comfy_api import feature_flags
        feature_flags.SERVER_FEATURE_FLAGS[FEATURE] = True
    except (ImportError, AttributeError):
        pass  # older ComfyUI: the browser falls back to asking /features (or shows no preview)
    return True


try:
    register_routes()
except Exception:  # the preview is a convenience: never break loading the pack
    log.exception("[Sampler Lab] could not add the schedule preview route; the web preview stays off")

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
