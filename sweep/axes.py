"""Axis value syntax for the step sweep: parse and validate the compact text a user types.

Numbers: comma-separated values and inclusive ranges with a step, e.g. "8,12,16-32:4"
-> 8, 12, 16, 20, 24, 28, 32. Integer ranges default to step 1 ("4-8"); float ranges need a
step ("0.5-1.0:0.25"). Names: comma-separated, checked against the live list (sampler and
scheduler names of ComfyUI, this pack and every other pack); shell wildcards pick several
("lab_rk*"). Boundaries (where a two-model hand-off happens) have their own forms: see
boundary_axis.py. Errors name the bad token and say how to fix it.
"""
import difflib
import fnmatch
import math
import re

from . import boundary_axis

# kind -> (value type, minimum, maximum, unit label used in headers)
AXES = {
    "none": None,
    "steps": ("int", 1, 10000, "steps"),
    "sampler": ("name", None, None, ""),
    "scheduler": ("name", None, None, ""),
    "cfg": ("float", 0.0, 100.0, "cfg"),
    "denoise": ("float", 0.0, 1.0, "denoise"),
    "seed": ("int", 0, 2 ** 64 - 1, "seed"),
    "controlnet_end": ("float", 0.0, 1.0, "cn end"),
    # the model-sampling shift of flow models (core's ModelSamplingSD3 / AuraFlow / Flux nodes allow 0-100)
    "shift": ("float", 0.0, 100.0, "shift"),
    "boundary": ("boundary", None, None, "boundary"),
}
_ABOVE_MIN = {"denoise", "shift"}       # axes whose minimum itself is not allowed (denoise 0, shift 0)
_FIX = {"shift": " (1 = no shift; SD3 uses 3, Wan 2.2 configs 5-12)"}
AXIS_NAMES = tuple(AXES)
MAX_VALUES = 1000            # per axis, before the cell limit applies
_FLOAT_EPS = 1e-9


class SweepAxisError(ValueError):
    """Bad axis text or settings; the message names the axis, the token and the fix."""


def _number(kind, token, axis):
    try:
        if kind == "int":
            if not re.fullmatch(r"\d+", token):
                raise ValueError
            return int(token)
        value = float(token)
        if not math.isfinite(value):
            raise ValueError
        return value
    except ValueError:
        want = "a whole number like 8" if kind == "int" else "a number like 7.5"
        raise SweepAxisError(f"{axis} axis: {token!r} is not {want}; write values as e.g. "
                             f"\"{'8,12,16-32:4' if kind == 'int' else '3.5,5,7.5'}\"") from None


def _range(kind, token, axis):
    m = re.fullmatch(r"\s*([^:]+?)\s*-\s*([^:]+?)\s*(?::\s*(.+))?", token)
    if not m or m.group(1) == "":
        return None
    lo, hi = _number(kind, m.group(1), axis), _number(kind, m.group(2), axis)
    if m.group(3) is None:
        if kind != "int":
            raise SweepAxisError(f"{axis} axis: range {token!r} needs a step for decimal values, e.g. "
                                 f"\"{m.group(1)}-{m.group(2)}:0.5\"")
        step = 1
    else:
        step = _number(kind, m.group(3), axis)
    if not step > 0:
        raise SweepAxisError(f"{axis} axis: range {token!r} has step {m.group(3)}; the step must be positive")
    if hi < lo:
        raise SweepAxisError(f"{axis} axis: range {token!r} runs downwards; write the smaller value first "
                             f"(\"{m.group(2)}-{m.group(1)}:{m.group(3) or 1}\")")
    count = int(math.floor((hi - lo) / step + _FLOAT_EPS)) + 1
    if count > MAX_VALUES:
        raise SweepAxisError(f"{axis} axis: range {token!r} gives {count} values (at most {MAX_VALUES}); "
                             f"use a larger step")
    if kind == "int":
        return [lo + k * step for k in range(count)]
    return [round(lo + k * step, 10) for k in range(count)]


def _names(token, axis, choices):
    if any(ch in token for ch in "*?["):
        hits = [c for c in choices if fnmatch.fnmatchcase(c, token)]
        if not hits:
            raise SweepAxisError(f"{axis} axis: the pattern {token!r} matches no {axis} name")
        return hits
    if token in choices:
        return [token]
    near = difflib.get_close_matches(token, list(choices), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; see the {axis} dropdown for valid names"
    raise SweepAxisError(f"{axis} axis: unknown {axis} {token!r}{hint}")


def _numbers(kind, token, axis):
    """A number or an inclusive range of numbers ("int" or "float" syntax) from one token."""
    try:
        return [_number(kind, token, axis)]
    except SweepAxisError:
        got = _range(kind, token, axis)
        if got is None:
            raise
        return got


def parse_axis(axis, text, choices=None):
    """Values of one axis from its text. `choices`: valid names for sampler / scheduler axes.

    Returns a list without duplicates (first occurrence kept). "none" returns [None]."""
    if axis not in AXES:
        raise SweepAxisError(f"unknown axis {axis!r}; use one of {', '.join(AXIS_NAMES)}")
    if axis == "none":
        return [None]
    kind, lo, hi, _ = AXES[axis]
    tokens = [t.strip() for t in str(text).replace("\n", ",").replace(";", ",").split(",")]
    tokens = [t for t in tokens if t]
    if not tokens:
        example = {"name": "euler, heun", "int": "8,12,16-32:4", "boundary": "0.875, 0.9"}.get(kind, "3.5,5,7.5")
        raise SweepAxisError(f"{axis} axis is selected but its values are empty; type values like \"{example}\" "
                             f"or set the axis to none")
    values = []
    for token in tokens:
        if kind == "boundary":
            got = boundary_axis.parse_tokens([token], lambda t: _numbers("float", t, axis), SweepAxisError)
        elif kind == "name":
            got = _names(token, axis, choices or ())
        else:
            got = _numbers(kind, token, axis)
            for v in got:
                bad_low = v <= lo if axis in _ABOVE_MIN else v < lo
                if bad_low or v > hi:
                    low = f"above {lo:g}" if axis in _ABOVE_MIN else f"at least {lo}"
                    raise SweepAxisError(f"{axis} axis: {token!r} is out of range; {axis} must be {low} "
                                         f"and at most {hi}{_FIX.get(axis, '')}")
        values.extend(got)
    values = list(dict.fromkeys(values))          # duplicates dropped, first occurrence kept
    if len(values) > MAX_VALUES:
        raise SweepAxisError(f"{axis} axis has {len(values)} values (at most {MAX_VALUES})")
    return values


def format_value(axis, value):
    """Short header text for one axis value, e.g. 'steps 12', 'cfg 7.5', 'dpmpp_2m'."""
    if axis == "none" or value is None:
        return ""
    kind, _, _, unit = AXES[axis]
    if kind == "name":
        return str(value)
    if kind == "boundary":
        return f"{unit} {value}"
    text = f"{value:g}" if kind == "float" else str(value)
    return f"{unit} {text}"


def check_axes(pairs):
    """pairs: [(axis, values)] in x, y, z order. The same axis twice is an error."""
    used = [a for a, _ in pairs if a != "none"]
    for a in used:
        if used.count(a) > 1:
            raise SweepAxisError(f"the {a} axis is chosen twice; pick it once (x, y or z) and list all its values there")
