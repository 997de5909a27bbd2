"""The step sweep, pure (no ComfyUI imports): axis syntax, cell planning (incl. equal model-call
budgets), the engine (cell loop, references, resume, cancel; sweep/engine.py) that receives what
it needs from ComfyUI as plain callables, convergence metrics, the answer, the labelled grid, the
chart, the report and the resume cache. nodes/sweep_nodes.py builds the callables from ComfyUI."""
from .axes import AXIS_NAMES, SweepAxisError, parse_axis, format_value
from .plan import Cell, plan_cells, steps_for_budget, calls_from_probe, resolve_equal_cost, run_order, \
    stable_hash, tensor_digest, resample_sigmas
from .metrics import latent_rmse, relative_rmse, psnr, ssim, recommended_steps
from .grid import GridLayout, draw_grid, wrap_text, thumbnail
from .chart import draw_chart
from .report import to_json, load_report, to_csv, load_csv, recommendations, best_recommendation
from .cache import SweepCache
from .engine import Hooks, Sampled, SweepPlan, SweepRun, plan_sweep

__all__ = [
    "AXIS_NAMES", "SweepAxisError", "parse_axis", "format_value", "Cell", "plan_cells", "steps_for_budget",
    "calls_from_probe", "resolve_equal_cost", "run_order", "stable_hash", "tensor_digest", "resample_sigmas",
    "latent_rmse", "relative_rmse", "psnr", "ssim", "recommended_steps", "GridLayout", "draw_grid",
    "wrap_text", "thumbnail", "draw_chart", "to_json", "load_report", "to_csv", "load_csv",
    "recommendations", "best_recommendation", "SweepCache", "Hooks", "Sampled", "SweepPlan", "SweepRun",
    "plan_sweep",
]
