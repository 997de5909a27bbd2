"""Value syntax of the step sweep's `boundary` axis: where a two-model hand-off happens.

The vocabulary is the hand-off nodes' (schedulers/boundary.py): a boundary is a sigma, a timestep or
a fraction of the steps. One token says which by its form:
- a plain number is a sigma in the model's own units ("0.875, 0.9"; flow models: sigma = t / 1000,
  so Wan 2.2's published boundaries 0.875 / 0.900 are typed as they are published);
- a leading "t" is a timestep, turned into a sigma by the model ("t875, t900");
- a trailing "%" is a percentage of the steps on the high-noise side ("50%, 75%"; SDXL's refiner
  is usually given this way: diffusers' example hands off at 80 %).
Ranges work in each form: "0.8-0.95:0.05", "t800-950:50", "60-90:10%".
Values are kept as canonical text ("0.875", "t875", "75%"): one JSON-safe, hashable value per
boundary, whatever its unit, that also reads well in the report and the grid headers.
Whether a boundary lies inside a cell's schedule is checked where the schedule is known (the node).
"""
import math
import re

_EXAMPLE = "0.875, 0.9 (sigmas), t875 (a timestep) or 50%, 75% (of the steps)"


def _form(token):
    """(mode, token without its marker) of one boundary token."""
    t = token.strip()
    if "%" in t:
        return "fraction", t.replace("%", "")
    if t[:1] in ("t", "T"):
        return "timestep", t.replace("t", "").replace("T", "")     # "t800-t950:50" -> "800-950:50"
    return "sigma", t


def canonical(mode, number):
    """The stored value of one boundary: '0.875', 't875' or '75%' (number in percent for fractions)."""
    text = f"{number:.10g}"
    return {"sigma": text, "timestep": "t" + text, "fraction": text + "%"}[mode]


def boundary_mode(value):
    """(mode, number) of a stored boundary value: ('sigma', 0.875), ('timestep', 875.0) or
    ('fraction', 0.75) (a fraction of the steps in [0, 1], as schedulers/boundary.py takes it)."""
    mode, rest = _form(str(value))
    number = float(rest)
    return (mode, number / 100.0) if mode == "fraction" else (mode, number)


def parse_tokens(tokens, parse_numbers, error):
    """Canonical boundary values of the axis tokens. parse_numbers(text) -> [floats] (the axes'
    number and range syntax); error(message) -> the exception to raise."""
    values = []
    for token in tokens:
        mode, rest = _form(token)
        if not re.fullmatch(r"[\d.eE+\-:\s]*\d[\d.eE+\-:\s]*", rest):
            raise error(f"boundary axis: {token!r} is not a boundary; write boundaries as {_EXAMPLE}")
        for v in parse_numbers(rest):
            if not math.isfinite(v) or v < 0:
                raise error(f"boundary axis: {token!r} is negative; a boundary is a sigma, a timestep or a "
                            f"percentage of the steps, all >= 0 (write e.g. {_EXAMPLE})")
            if mode == "fraction" and v > 100:
                raise error(f"boundary axis: {token!r} is above 100%; a percentage of the steps lies in 0-100%")
            values.append(canonical(mode, v))
    return values
