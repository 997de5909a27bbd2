"""Exponential Runge-Kutta tableaus as data (phi-function coefficients), beside the Butcher tableaus
of tableaus.py; used by rk_exponential.py.

An explicit exponential RK method for y' = L y + N(y) (Hochbruck & Ostermann 2005, SIAM J. Numer.
Anal. 43(3):1069-1090; Acta Numerica 19 (2010) 209-286, Sec. 2.3) reads, with z = h L,
    Y_i     = e^{c_i z} y_n + h sum_j a_ij(z) N(Y_j),      y_{n+1} = e^{z} y_n + h sum_i b_i(z) N(Y_i),
where a_ij and b_i are combinations of phi_k(c z) (phi.py; P(k, c) = phi_k(c z), P(k) = phi_k(z)).
For the diffusion PF-ODE in the data-prediction form, y = x / alpha, time lambda = log(alpha/beta),
L = -1 and N = D (the denoiser): z = -h (DPM-Solver++, Lu et al. 2022, arXiv:2211.01095, eq. (9)).

`order` is the classical order (what a step-count study on a smooth problem measures, and what the
lab mixture measures: its L = -1 is not stiff); `stiff_order` is the highest order up to which the
Hochbruck-Ostermann stiff order conditions (Hochbruck & Ostermann 2005 and Acta Numerica 2010: psi_j(z) = 0 and the
b_i J psi_{j,i} conditions) hold identically in z, checked in their scalar form in
tests/test_rk_exponential.py. With z = 0 every tableau becomes a classical Butcher tableau of the same
order (`underlying()`): the sampler uses it for a step from the flow start sigma = 1, where lambda = -inf.
"""
from dataclasses import dataclass
from fractions import Fraction as F
from typing import Tuple

from .phi import P, Phi
from .tableaus import Tableau

H, T1, T2 = F(1, 2), F(1, 3), F(2, 3)


@dataclass(frozen=True)
class PhiTableau:
    name: str
    order: int                 # classical order
    stiff_order: int           # Hochbruck-Ostermann stiff order (scalar form of the conditions)
    c: Tuple[F, ...]
    a: Tuple[Tuple[Phi, ...], ...]   # strictly lower triangular rows (ragged: row i has i entries)
    b: Tuple[Phi, ...]
    citation: str = ""

    @property
    def stages(self):
        return len(self.b)

    def coefficients(self, z):
        """(a, b) as floats at z = h L: a as ragged rows, b as a tuple."""
        return (tuple(tuple(e(z) for e in row) for row in self.a), tuple(e(z) for e in self.b))

    def underlying(self):
        """The classical Butcher tableau at z = 0 (phi_k(0) = 1/k!), as a tableaus.Tableau."""
        a, b = self.coefficients(0.0)
        s = self.stages
        full = tuple(tuple(row[j] if j < len(row) else 0.0 for j in range(s)) for row in a)
        return Tableau(self.name + "@z=0", self.order, tuple(float(v) for v in self.c), full, b,
                       citation=self.citation)


def _phi(value):
    return value if isinstance(value, Phi) else Phi.const(value)


def _exp_tab(name, order, stiff_order, c, a, b, citation):
    s = len(b)
    if len(c) != s or len(a) != s or any(len(row) != i for i, row in enumerate(a)):
        raise ValueError(f"phi tableau {name}: c, b need {s} entries and row i of A needs i entries")
    rows = tuple(tuple(_phi(v) for v in row) for row in a)
    return PhiTableau(name, order, stiff_order, tuple(F(v) for v in c), rows, tuple(_phi(v) for v in b), citation)


HO = "Hochbruck & Ostermann (2005), SIAM J. Numer. Anal. 43(3):1069-1090"
HO_ACTA = "Hochbruck & Ostermann (2010), Acta Numerica 19:209-286, Sec. 2.3"
CM = "Cox & Matthews (2002), J. Comput. Phys. 176(2):430-455"

# Second-order family of Hochbruck-Ostermann with c2 = 1/2 (Acta Numerica 2010, Sec. 2.3, the
# two-stage family with b2 = phi_2 / c2). This is the method of the RES solver (Zhang, Song & Chen
# 2023, "Improved order analysis and design of exponential integrator for diffusion models
# sampling", arXiv:2308.02157): the popular "res_2s". 2 stages, order 2.
RES_2S = _exp_tab("res_2s", 2, 2, [0, H], [[], [H * P(1, H)]], [P(1) - 2 * P(2), 2 * P(2)],
                  HO_ACTA + " (2-stage family, c2 = 1/2); Zhang, Song & Chen (2023), arXiv:2308.02157")

# DPM-Solver++(2S), Lu et al. (2022), arXiv:2211.01095, Alg. 1 with r = 1/2: the second stage's value
# replaces phi_1's weight (b = (0, phi_1)): classical order 2, stiff order 1 (b . c = phi_1/2, not phi_2).
DPMPP_2S = _exp_tab("dpmpp_2s", 2, 1, [0, H], [[], [H * P(1, H)]], [0, P(1)],
                    "Lu et al. (2022), DPM-Solver++, arXiv:2211.01095, Alg. 1 (r = 1/2)")

# ETD2RK, Cox & Matthews (2002): predictor = ETD1 (exponential Euler) to t + h.
ETDRK2 = _exp_tab("etdrk2", 2, 2, [0, 1], [[], [P(1)]], [P(1) - P(2), P(2)], CM + ", ETD2RK")

# DPM-Solver-3 (Lu et al. 2022, arXiv:2206.00927, Alg. 2, r1 = 1/3, r2 = 2/3) in the data-prediction
# form of DPM-Solver++ (arXiv:2211.01095, Sec. 4 and its singlestep third-order update). The same
# tableau is Hochbruck-Ostermann's three-stage family with c2 = 1/3, c3 = 2/3.
DPMPP_3S = _exp_tab("dpmpp_3s", 3, 2, [0, T1, T2],
                    [[], [T1 * P(1, T1)], [T2 * P(1, T2) - F(4, 3) * P(2, T2), F(4, 3) * P(2, T2)]],
                    [P(1) - F(3, 2) * P(2), 0, F(3, 2) * P(2)],
                    "Lu et al. (2022), DPM-Solver arXiv:2206.00927 Alg. 2 (r1 = 1/3, r2 = 2/3), data "
                    "prediction as in DPM-Solver++ arXiv:2211.01095")

# Hochbruck-Ostermann's three-stage third-order family (Acta Numerica 2010, Sec. 2.3:
# c3 = 2/3, a32 = 4/(9 c2) phi_{2,3}, b = (phi_1 - 3/2 phi_2, 0, 3/2 phi_2)) with c2 = 1/2: "res_3s".
RES_3S = _exp_tab("res_3s", 3, 2, [0, H, T2],
                  [[], [H * P(1, H)], [T2 * P(1, T2) - F(8, 9) * P(2, T2), F(8, 9) * P(2, T2)]],
                  [P(1) - F(3, 2) * P(2), 0, F(3, 2) * P(2)],
                  HO_ACTA + " (3-stage family, c2 = 1/2, c3 = 2/3)")

# ETD3RK, Cox & Matthews (2002), in phi form.
ETDRK3 = _exp_tab("etdrk3", 3, 2, [0, H, 1],
                  [[], [H * P(1, H)], [-P(1), 2 * P(1)]],
                  [P(1) - 3 * P(2) + 4 * P(3), 4 * P(2) - 8 * P(3), -P(2) + 4 * P(3)],
                  CM + ", ETD3RK")

# ETDRK4, Cox & Matthews (2002), in phi form (as in Hochbruck-Ostermann 2005, Sec. 5:
# a41 = 1/2 phi_{1,3} (phi_{0,3} - 1), a43 = phi_{1,3}). Classical order 4; stiff order 2 only.
ETDRK4 = _exp_tab("etdrk4", 4, 2, [0, H, H, 1],
                  [[], [H * P(1, H)], [0, H * P(1, H)], [H * P(1, H) * (P(0, H) - 1), 0, P(1, H)]],
                  [P(1) - 3 * P(2) + 4 * P(3), 2 * P(2) - 4 * P(3), 2 * P(2) - 4 * P(3), -P(2) + 4 * P(3)],
                  CM + ", ETDRK4")

# Hochbruck & Ostermann (2005), Sec. 5, their five-stage method of stiff order 4 (c = 0, 1/2, 1/2, 1, 1/2):
# the best-founded five-stage exponential RK ("res_5s"). Classical order 4. In the strong form checked
# here it has stiff order 3: of the order-4 conditions, b.c^3/6 = phi_4 and sum b_i J psi_{3,i} = 0 hold
# only at z = 0, the weakened form under which HO prove order 4 (the other two hold identically).
_A52 = H * P(2, H) - P(3) + F(1, 4) * P(2) - H * P(3, H)
_A54 = F(1, 4) * P(2, H) - _A52
RES_5S = _exp_tab("res_5s", 4, 3, [0, H, H, 1, H],
                  [[], [H * P(1, H)], [H * P(1, H) - P(2, H), P(2, H)], [P(1) - 2 * P(2), P(2), P(2)],
                   [H * P(1, H) - 2 * _A52 - _A54, _A52, _A52, _A54]],
                  [P(1) - 3 * P(2) + 4 * P(3), 0, 0, -P(2) + 4 * P(3), 4 * P(2) - 8 * P(3)],
                  HO + ", Sec. 5 (five stages, stiff order 4 in weakened form)")

PHI_TABLEAUS = {t.name: t for t in (RES_2S, DPMPP_2S, ETDRK2, RES_3S, DPMPP_3S, ETDRK3, ETDRK4, RES_5S)}
