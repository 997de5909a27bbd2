"""The sweep's answer, whole: the sampler, scheduler and steps that reach the tolerance at the
least cost, with their counted model calls, in forms a KSampler takes.

Cost is counted model calls (what a step costs differs by sampler: lab_rk4's 4 steps are 13 calls,
euler's 32 steps 32), then sampling seconds; never steps alone. A group is every cell that shares
all settings but steps (report.recommendations); its answer is its smallest swept steps from which
the distance stays within the tolerance.
"""
import math

from .axes import format_value
from .plan import AXIS_PARAM

ANSWER_AXES = ("steps", "sampler", "scheduler")     # named by the answer itself (and its outputs)


def cost_key(rec):
    """Sort key of a group's recommendation: model calls, then seconds, then steps."""
    def num(v):
        return v if isinstance(v, (int, float)) and math.isfinite(v) else math.inf
    return num(rec.get("nfe")), num(rec.get("sample_s")), num(rec.get("steps"))


def ranked(recs):
    """The groups that reach the tolerance, cheapest first."""
    return sorted((r for r in recs if r["reached"]), key=cost_key)


def answer(recs, records, settings, reference, fallback_steps):
    """{sampler, scheduler, steps, model_calls, sample_s, distance, reached, group, ...}.

    recs: report.recommendations(...); records: the cells' records; settings: the node's widget
    values (the outputs fall back to its sampler_name / scheduler where the winner is a connected
    SAMPLER / SIGMAS, which no KSampler dropdown holds); reference: the reference's description;
    fallback_steps: the steps to name when nothing reaches the tolerance."""
    order = ranked(recs)
    if order:
        best = order[0]
        group, steps, reached = dict(best["group"]), int(best["steps"]), True
        calls, seconds, distance = best.get("nfe"), best.get("sample_s"), best.get("error")
    else:
        reached, steps = False, int(fallback_steps)
        at = [r for r in records if r.get("status") == "ok" and r["params"]["steps"] == steps]
        pick = min(at, key=lambda r: r.get("rel_rmse") if r.get("rel_rmse") is not None else math.inf,
                   default=None)
        group = {k: v for k, v in pick["params"].items() if k != "steps"} if pick else {
            "sampler": settings["sampler_name"], "scheduler": settings["scheduler"]}
        calls = pick.get("nfe") if pick else None
        seconds = pick.get("sample_s") if pick else None
        distance = pick.get("rel_rmse") if pick else None
    sampler, scheduler = group.get("sampler"), group.get("scheduler")
    swept = [settings.get(k) for k in ("x_axis", "y_axis", "z_axis")]
    return {
        "reached": reached, "steps": steps, "model_calls": calls, "sample_s": seconds, "distance": distance,
        "sampler": sampler, "scheduler": scheduler, "group": group,
        "sampler_name": sampler if sampler not in (None, "input") else settings["sampler_name"],
        "scheduler_name": scheduler if scheduler not in (None, "input") else settings["scheduler"],
        # the winner's value on each other swept axis (cfg, shift, boundary, ...): part of the answer
        "other_axes": {a: group.get(AXIS_PARAM[a]) for a in swept if a in AXIS_PARAM and a not in ANSWER_AXES},
        "is_reference_sampler": "method" not in reference and sampler == reference.get("sampler"),
        "tolerance": settings["tolerance"], "ranked_by": "model calls, then sampling seconds",
        "runners_up": [{"sampler": r["group"].get("sampler"), "scheduler": r["group"].get("scheduler"),
                        "steps": r["steps"], "model_calls": r.get("nfe")} for r in order[1:4]],
    }


def answer_text(ans):
    """One line for the log and the node: 'lab_rk4 / karras, 4 steps, 13 model calls', and the
    winning value of any other swept axis: '..., at shift 3'."""
    if ans is None:
        return "none"
    calls = "?" if ans.get("model_calls") is None else ans["model_calls"]
    text = f"{ans['sampler']} / {ans['scheduler']}, {ans['steps']} steps, {calls} model calls"
    others = [format_value(a, v) for a, v in (ans.get("other_axes") or {}).items() if v is not None]
    if others:
        text += ", at " + ", ".join(others)
    return text if ans["reached"] else text + " (tolerance not reached: the most steps swept)"
