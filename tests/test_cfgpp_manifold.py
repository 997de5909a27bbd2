"""CFG vs CFG++ on the data manifold (issue 6), measured on an exact class-conditional lab mixture
whose classes overlap (so guidance matters): distance to the nearest component normalised by its
std (exact samples: ~1) and the fraction landing in the target class, eps and flow.

Matched strength: for each CFG scale w, the smallest CFG++ scale (from a grid) whose target-class
fraction reaches CFG's (within 0.02). Both measures are printed (run with -s); the assertions check what
the measurement supports on this model -- CFG++ is the stronger guide per unit of scale, and at
matched strength its samples are no further from the data than CFG's (within 0.05)."""
import pytest
import torch

from lab.means import component_means
from lab.simple_solvers import euler, karras_sigmas
from lab.mixture import GaussianMixture
from samplers.cfgpp import CFGPPModel

N = 64




def sample(mix, param, scale, plus_plus, sigmas, x):
    cw = torch.nn.functional.one_hot(torch.zeros(N, dtype=torch.long), 3).double()
    dc, du = mix.denoiser(param, class_weights=cw), mix.denoiser(param)
    box = {}

    def guided(xx, s):
        c, u = dc(xx, s), du(xx, s)
        box["u"] = u
        return u + scale * (c - u)
    model = CFGPPModel(guided, lambda: box["u"], sigmas, "flow" if param == "flow" else "ve") if plus_plus else guided
    idx, dist = mix.nearest(euler(model, x, sigmas))
    return float(dist.mean()), float((mix.classes[idx] == 0).double().mean())


@pytest.mark.parametrize("param", ["eps", "flow"])
def test_cfg_pp_stays_on_the_data_at_matched_strength(param):
    means = component_means(6, 3, 4, (2, 2), seed=0) * 0.5
    mix = GaussianMixture(means, 0.3, classes=torch.arange(6) % 3, num_classes=3)
    sigmas = karras_sigmas(24) if param == "eps" else torch.cat([torch.linspace(1.0, 0.02, 24, dtype=torch.float64),
                                                           torch.zeros(1, dtype=torch.float64)])
    x = torch.randn(N, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(sigmas[0])
    pp = {lam: sample(mix, param, lam, True, sigmas, x) for lam in (0.2, 0.4, 0.6, 0.8, 1.0)}
    for w in (1.5, 2.0, 4.0):
        d_cfg, f_cfg = sample(mix, param, w, False, sigmas, x)
        lam = min([k for k in pp if pp[k][1] >= f_cfg - 0.02] or [max(pp)])
        d_pp, f_pp = pp[lam]
        print(f"\n{param}: CFG w={w}: distance {d_cfg:.3f}, target class {f_cfg:.2f} | "
              f"CFG++ lambda={lam}: distance {d_pp:.3f}, target class {f_pp:.2f}")
        assert d_pp < d_cfg + 0.05
        d_same, f_same = sample(mix, param, w / 2, True, sigmas, x)
        assert f_same >= sample(mix, param, w / 2, False, sigmas, x)[1]   # stronger per unit of scale
