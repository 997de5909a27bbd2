"""Butcher tableaus as data, for the Runge-Kutta families (rk_explicit, rk_adaptive, rk_implicit).

A tableau (c, A, b) advances y' = f(t, y) by h with stages
    K_i = f(t + c_i h, y + h sum_j a_ij K_j),   y_new = y + h sum_i b_i K_i.
Explicit tableaus have a strictly lower-triangular A; implicit ones a full A.
`b_err` are the embedded weights (order `err_order`) of an embedded pair; the error estimate
is h sum_i (b_i - b_err_i) K_i. `fsal` ("first same as last"): the last stage sits at c = 1
with its row of A equal to b (the propagated weights), so that stage is f(t + h, y_new), the
next step's first stage.

Coefficients are the published ones (exact rationals or closed forms); each entry cites its
source. tests/test_rk_explicit.py checks every tableau against the Butcher order conditions
(all rooted trees up to the stated order, and that the next order fails).
"""
from dataclasses import dataclass
from fractions import Fraction as F
from math import sqrt
from typing import Optional, Tuple


@dataclass(frozen=True)
class Tableau:
    name: str
    order: int                              # order of the propagated solution (weights b)
    c: Tuple[float, ...]
    a: Tuple[Tuple[float, ...], ...]        # full s x s matrix
    b: Tuple[float, ...]
    b_err: Optional[Tuple[float, ...]] = None   # embedded weights, or None
    err_order: Optional[int] = None             # order of the embedded weights
    fsal: bool = False
    citation: str = ""

    @property
    def stages(self):
        return len(self.b)

    @property
    def explicit(self):
        return all(self.a[i][j] == 0.0 for i in range(self.stages) for j in range(i, self.stages))

    @property
    def used_stages(self):
        """Stages a fixed-step explicit step needs: trailing stages with zero weight (the FSAL
        stage of Bogacki-Shampine and Dormand-Prince) only feed the error estimate."""
        n = self.stages
        while n > 1 and self.b[n - 1] == 0.0 and self.explicit:
            n -= 1
        return n


def _tab(name, order, c, a, b, b_err=None, err_order=None, fsal=False, citation=""):
    """Build a Tableau from rows of (possibly ragged, lower-triangular) coefficients."""
    s = len(b)
    full = tuple(tuple(float(row[j]) if j < len(row) else 0.0 for j in range(s)) for row in a)
    if len(full) != s or len(c) != s or (b_err is not None and len(b_err) != s):
        raise ValueError(f"tableau {name}: c, A, b and b_err must all have {s} stages")
    return Tableau(name, order, tuple(float(v) for v in c), full, tuple(float(v) for v in b),
                   None if b_err is None else tuple(float(v) for v in b_err), err_order, fsal, citation)


# ---- explicit ------------------------------------------------------------------------------
# Explicit midpoint rule (Runge 1895); Hairer, Norsett & Wanner, Solving ODEs I, Sec. II.1, eq. (1.7).
MIDPOINT = _tab("midpoint", 2, [0, F(1, 2)], [[], [F(1, 2)]], [0, 1],
                citation="Runge (1895); Hairer-Norsett-Wanner I, II.1 eq. (1.7)")

# Ralston's second-order method with minimum error bound (Ralston 1962, Math. Comp. 16, p. 431).
RALSTON2 = _tab("ralston2", 2, [0, F(2, 3)], [[], [F(2, 3)]], [F(1, 4), F(3, 4)],
                citation="Ralston (1962), Math. Comp. 16:431-437")

# Bogacki & Shampine (1989), "A 3(2) pair of Runge-Kutta formulas", Appl. Math. Lett. 2(4):321-325.
# Order 3 with 3 used stages; the 4th (FSAL) stage gives the order-2 embedded estimate.
BOSH3 = _tab("bosh3", 3, [0, F(1, 2), F(3, 4), 1],
             [[], [F(1, 2)], [0, F(3, 4)], [F(2, 9), F(1, 3), F(4, 9)]],
             [F(2, 9), F(1, 3), F(4, 9), 0],
             b_err=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)], err_order=2, fsal=True,
             citation="Bogacki & Shampine (1989), Appl. Math. Lett. 2(4):321-325")

# Third-order strong-stability-preserving RK (Shu & Osher 1988, J. Comput. Phys. 77, eq. (2.18)).
SSPRK3 = _tab("ssprk3", 3, [0, 1, F(1, 2)], [[], [1], [F(1, 4), F(1, 4)]],
              [F(1, 6), F(1, 6), F(2, 3)],
              citation="Shu & Osher (1988), J. Comput. Phys. 77:439-471, eq. (2.18)")

# Classic fourth-order Runge-Kutta (Kutta 1901); Hairer-Norsett-Wanner I, Table II.1.2 (left).
RK4 = _tab("rk4", 4, [0, F(1, 2), F(1, 2), 1], [[], [F(1, 2)], [0, F(1, 2)], [0, 0, 1]],
           [F(1, 6), F(1, 3), F(1, 3), F(1, 6)],
           citation="Kutta (1901); Hairer-Norsett-Wanner I, Table II.1.2")

# Kutta's 3/8 rule (Kutta 1901); Hairer-Norsett-Wanner I, Table II.1.2 (right).
RK4_38 = _tab("rk4_38", 4, [0, F(1, 3), F(2, 3), 1],
              [[], [F(1, 3)], [F(-1, 3), 1], [1, -1, 1]],
              [F(1, 8), F(3, 8), F(3, 8), F(1, 8)],
              citation="Kutta (1901), 3/8 rule; Hairer-Norsett-Wanner I, Table II.1.2")

# Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math.
# 6(1):19-26, Table 2 (RK5(4)7M); Hairer-Norsett-Wanner I, Table II.5.2. Order 5 propagated
# (local extrapolation), order-4 embedded; stage 7 is FSAL, so a fixed step uses 6 stages.
DOPRI5 = _tab("dopri5", 5, [0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1],
              [[],
               [F(1, 5)],
               [F(3, 40), F(9, 40)],
               [F(44, 45), F(-56, 15), F(32, 9)],
               [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
               [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
               [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)]],
              [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0],
              b_err=[F(5179, 57600), 0, F(7571, 16695), F(393, 640), F(-92097, 339200),
                     F(187, 2100), F(1, 40)],
              err_order=4, fsal=True,
              citation="Dormand & Prince (1980), J. Comput. Appl. Math. 6:19-26, RK5(4)7M")

# Fehlberg (1969), NASA TR R-315, RK1(2): order-1 solution propagated (Fehlberg's design),
# order-2 embedded; the 3rd stage is f(t + h, y_new) (FSAL, its row equals b).
FEHLBERG12 = _tab("fehlberg12", 1, [0, F(1, 2), 1], [[], [F(1, 2)], [F(1, 256), F(255, 256)]],
                  [F(1, 256), F(255, 256), 0],
                  b_err=[F(1, 512), F(255, 256), F(1, 512)], err_order=2, fsal=True,
                  citation="Fehlberg (1969), NASA Technical Report R-315, RK1(2)")

# ---- implicit ------------------------------------------------------------------------------
_R3, _R15, _R6 = sqrt(3.0), sqrt(15.0), sqrt(6.0)

# Gauss-Legendre collocation, 2 stages, order 4 (Hammer & Hollingsworth 1955; Butcher 1964,
# Math. Comp. 18:50-64); Hairer-Wanner II, Table IV.5.1.
GAUSS_LEGENDRE2 = _tab("gauss_legendre2", 4, [0.5 - _R3 / 6, 0.5 + _R3 / 6],
                       [[0.25, 0.25 - _R3 / 6], [0.25 + _R3 / 6, 0.25]], [0.5, 0.5],
                       citation="Hammer & Hollingsworth (1955); Butcher (1964); Hairer-Wanner II, Table IV.5.1")

# Gauss-Legendre collocation, 3 stages, order 6 (Butcher 1964, Math. Comp. 18:50-64);
# Hairer-Wanner II, Table IV.5.2.
GAUSS_LEGENDRE3 = _tab("gauss_legendre3", 6, [0.5 - _R15 / 10, 0.5, 0.5 + _R15 / 10],
                       [[5 / 36, 2 / 9 - _R15 / 15, 5 / 36 - _R15 / 30],
                        [5 / 36 + _R15 / 24, 2 / 9, 5 / 36 - _R15 / 24],
                        [5 / 36 + _R15 / 30, 2 / 9 + _R15 / 15, 5 / 36]],
                       [5 / 18, 4 / 9, 5 / 18],
                       citation="Butcher (1964), Math. Comp. 18:50-64; Hairer-Wanner II, Table IV.5.2")

# Radau IIA, 2 stages, order 3 (Ehle 1969); Hairer-Wanner II, Table IV.5.5.
RADAU_IIA2 = _tab("radau_iia2", 3, [F(1, 3), 1], [[F(5, 12), F(-1, 12)], [F(3, 4), F(1, 4)]],
                  [F(3, 4), F(1, 4)],
                  citation="Ehle (1969); Hairer-Wanner II, Table IV.5.5")

# Radau IIA, 3 stages, order 5 (Ehle 1969; Butcher 1964); Hairer-Wanner II, Table IV.5.6.
RADAU_IIA3 = _tab("radau_iia3", 5, [(4 - _R6) / 10, (4 + _R6) / 10, 1],
                  [[(88 - 7 * _R6) / 360, (296 - 169 * _R6) / 1800, (-2 + 3 * _R6) / 225],
                   [(296 + 169 * _R6) / 1800, (88 + 7 * _R6) / 360, (-2 - 3 * _R6) / 225],
                   [(16 - _R6) / 36, (16 + _R6) / 36, 1 / 9]],
                  [(16 - _R6) / 36, (16 + _R6) / 36, 1 / 9],
                  citation="Ehle (1969); Hairer-Wanner II, Table IV.5.6")

EXPLICIT = {t.name: t for t in (MIDPOINT, RALSTON2, BOSH3, SSPRK3, RK4, RK4_38, DOPRI5)}
EMBEDDED = {t.name: t for t in (FEHLBERG12, BOSH3, DOPRI5)}
IMPLICIT = {t.name: t for t in (GAUSS_LEGENDRE2, GAUSS_LEGENDRE3, RADAU_IIA2, RADAU_IIA3)}
TABLEAUS = {**EXPLICIT, **EMBEDDED, **IMPLICIT}
