"""phi-functions of exponential integrators and coefficients built from them (pure Python floats).

    phi_0(z) = e^z,   phi_{k+1}(z) = (phi_k(z) - 1/k!) / z,   phi_k(0) = 1/k!
    (Hochbruck & Ostermann, "Exponential integrators", Acta Numerica 19 (2010) 209-286).

phi_k(z) = sum_n z^n / (n + k)! is summed as a series for |z| < 1 (the recurrence cancels there) and
by the recurrence otherwise. A Phi is one tableau coefficient: a sum of terms coef * prod phi_k(c z),
written like the papers write them (P(1) - 3 * P(2) + 4 * P(3); P(1, c) is phi_{1,i} = phi_1(c_i z)).
"""
import math
from fractions import Fraction

_SERIES_RADIUS = 1.0
_SERIES_TERMS = 30   # |z| < 1: the tail after 30 terms is below 1 / 30!, far under float64 epsilon


def phi(k, z):
    """phi_k(z) for an integer k >= 0 and a real z (float64)."""
    if k < 0:
        raise ValueError(f"phi_k needs k >= 0, got {k}")
    z = float(z)
    if k == 0:
        return math.exp(z)
    if abs(z) < _SERIES_RADIUS:
        term, total = 1.0 / math.factorial(k), 0.0
        for n in range(_SERIES_TERMS):
            total += term
            term *= z / (n + k + 1)
        return total
    value = math.exp(z)
    for j in range(k):
        value = (value - 1.0 / math.factorial(j)) / z
    return value


class Phi:
    """A linear combination of products of phi_k(c z): {((k, c), ...): coefficient}."""

    __slots__ = ("terms",)

    def __init__(self, terms):
        self.terms = {key: coef for key, coef in terms.items() if coef != 0}

    @staticmethod
    def const(value):
        return Phi({(): Fraction(value)})

    def __add__(self, other):
        other = other if isinstance(other, Phi) else Phi.const(other)
        out = dict(self.terms)
        for key, coef in other.terms.items():
            out[key] = out.get(key, 0) + coef
        return Phi(out)

    __radd__ = __add__

    def __neg__(self):
        return Phi({key: -coef for key, coef in self.terms.items()})

    def __sub__(self, other):
        return self + (-other if isinstance(other, Phi) else Phi.const(-other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if not isinstance(other, Phi):
            return Phi({key: coef * Fraction(other) for key, coef in self.terms.items()})
        out = {}
        for k1, c1 in self.terms.items():
            for k2, c2 in other.terms.items():
                key = tuple(sorted(k1 + k2))
                out[key] = out.get(key, 0) + c1 * c2
        return Phi(out)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (1 / Fraction(other))

    def __call__(self, z):
        """The coefficient's value at z = h L (for the diffusion PF-ODE in lambda: z = -h)."""
        total = 0.0
        for key, coef in self.terms.items():
            value = float(coef)
            for k, c in key:
                value *= phi(k, float(c) * z)
            total += value
        return total

    def __repr__(self):
        parts = [f"{coef}*" + "*".join(f"phi{k}({c}z)" for k, c in key) if key else f"{coef}"
                 for key, coef in self.terms.items()]
        return " + ".join(parts) or "0"


def P(k, c=1):
    """phi_k(c z) as a Phi (c = the stage node; c = 1 is the step's own phi_k(z))."""
    return Phi({((k, Fraction(c)),): Fraction(1)})
