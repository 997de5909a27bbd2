"""Seeded noise for the stochastic samplers (pure torch; not a sampler family).

Two noise samplers with k-diffusion's call form noise(sigma, sigma_next) -> N(0, I) like x:

- GaussianNoise: a fresh standard normal per call from one seeded stream (ancestral, TCD).
- BrownianNoise: the normalised increment (W(u1) - W(u0)) / sqrt|u1 - u0| of ONE Brownian
  path W on u in [0, 1], evaluated through a virtual Brownian tree (Li et al. 2020,
  "Scalable Gradients for Stochastic Differential Equations", Sec. 4: recursive bisection
  with the Brownian-bridge midpoint law and seeds derived from the node). The path does not
  depend on which times are queried, so an SDE run with the same seed converges as the step
  count grows instead of drawing unrelated noise at every step count. Costs `depth` (18)
  normal draws of x's size per new time ("brownian_tree").
- StepBrownianNoise (the samplers' default "brownian"): the same tree resolved only to the step's
  width plus one Brownian-bridge draw per time, ~2 draws per step; exact Brownian law along a run,
  the path shared across step counts down to the step width (see the class).

Brownian time u: u = sigma for flow (CONST) models and u = sigma / (1 + sigma) for VE
models (the flow sigma with the same signal-to-noise ratio), so u is in [0, 1] for both.

Where the random numbers are drawn (rng_device):
- None (default): drawn on x's device with a generator on that device, like ComfyUI's own
  default_noise_sampler: no host round trip in the hot path. On one device type the same seed
  gives the same noise; across device types (CPU vs CUDA) the numbers differ, as in core.
- "cpu": drawn on the CPU (float32, or float64 when x is float64) and moved to x's device once
  per call: the same seed gives the same noise on every device, at one host-to-device copy per
  step (and CPU time for the Brownian tree's `depth` draws per new time).

Seeds are salted (mixed with a constant) so the injected noise is never the same stream as
ComfyUI's initial latent noise, which is torch.manual_seed(seed) on the CPU.
"""
import math

import torch

_MASK = (1 << 64) - 1
_SALT_GAUSS = 0x5A3B1E_0001
_SALT_BROWN = 0x5A3B1E_0002


def mix_seed(*values):
    """Hash integers to a 63-bit seed (splitmix64 finaliser per value; platform independent)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK)) & _MASK
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
        h ^= h >> 31
    return h & ((1 << 63) - 1)


def _resolve_seed(seed):
    """An int seed; None draws one from torch's global generator (reproducible under torch.manual_seed)."""
    if seed is None:
        return int(torch.randint(0, 2 ** 62, (1,)).item())
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise ValueError(f"seed must be an integer, got {seed!r}") from None
    return seed


class _Draws:
    """Where and in which dtype the normals are drawn, and how they reach x."""

    def __init__(self, x, rng_device):
        self.shape = tuple(x.shape)
        self.device, self.dtype = x.device, x.dtype
        self.gen_device = torch.device("cpu") if rng_device == "cpu" else x.device
        self.gen_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        self.gen = torch.Generator(device=self.gen_device)

    def normal(self, seed=None):
        """One N(0, I) draw; re-seeds the generator first when seed is given."""
        if seed is not None:
            self.gen.manual_seed(seed)
        return torch.randn(self.shape, generator=self.gen, dtype=self.gen_dtype, device=self.gen_device)

    def out(self, z):
        """Move/cast once to x's device and dtype."""
        return z.to(device=self.device, dtype=self.dtype)


class GaussianNoise:
    """Fresh N(0, I) noise like x at every call, deterministic for a seed.

    noise(sigma, sigma_next) ignores its arguments (kept for the k-diffusion call form).
    """

    def __init__(self, x, seed=None, rng_device=None):
        self._draws = _Draws(x, rng_device)
        self._draws.gen.manual_seed(mix_seed(_SALT_GAUSS, _resolve_seed(seed)))

    def __call__(self, sigma=None, sigma_next=None):
        return self._draws.out(self._draws.normal())


def brownian_time(model_kind, sigma):
    """u in [0, 1]: sigma for flow, sigma / (1 + sigma) for VE (Python float in, float out)."""
    if model_kind == "flow":
        return min(max(sigma, 0.0), 1.0)
    if model_kind == "ve":
        return 1.0 if math.isinf(sigma) else max(sigma, 0.0) / (1.0 + max(sigma, 0.0))
    raise ValueError(f"model_kind must be 've' or 'flow', got {model_kind!r}")


class _Increments:
    """Noise for a step from the Brownian increment its class draws: W(u(sigma_next)) - W(u(sigma)),
    normalised by sqrt(|du|) to unit variance (zero for a zero-length step)."""

    def __call__(self, sigma, sigma_next):
        dw, du = self.increment(sigma, sigma_next)
        if du == 0.0:
            return self._draws.out(torch.zeros_like(dw))
        return self._draws.out(dw / math.sqrt(du))


class BrownianNoise(_Increments):
    """Increments of one seeded Brownian path W on [0, 1] (virtual Brownian tree).

    W(0) = 0 and W(1) ~ N(0, 1). The midpoint m of a dyadic interval [a, b] with known
    W(a), W(b) is the Brownian bridge value W(m) = (W(a) + W(b)) / 2 + sqrt((b - a) / 4) z,
    z seeded from (seed, level, index), so every W(m) is fixed by the seed alone. Below the
    leaf width 2**-depth, W is linearly interpolated: this lowers the variance of an
    increment of length L by at most 2**-depth / (2 L) (relative), 2e-3 for L = 1e-3 and
    the default depth 18. W at the two most recent times is cached (a step reuses the
    previous step's end), so a step costs `depth` normal draws of x's size.

    noise(sigma, sigma_next) = (W(u(sigma_next)) - W(u(sigma))) / sqrt|u(sigma_next) - u(sigma)|
    is N(0, I); increments over adjacent intervals are independent and add up exactly.
    A zero-length interval gives zeros.
    """

    def __init__(self, x, seed=None, model_kind="ve", depth=18, rng_device=None):
        if not 1 <= int(depth) <= 48:
            raise ValueError(f"depth must be an integer in [1, 48], got {depth!r}")
        brownian_time(model_kind, 0.5)  # validates model_kind
        self.model_kind, self.depth = model_kind, int(depth)
        self._draws = _Draws(x, rng_device)
        self._seed = mix_seed(_SALT_BROWN, _resolve_seed(seed))
        self._w1 = self._draws.normal(mix_seed(self._seed, 0, 0))
        self._cache = {}

    def _node(self, level, index):
        return self._draws.normal(mix_seed(self._seed, level, index))

    def w(self, u):
        """W(u) for u in [0, 1] (a tensor on the generation device)."""
        u = min(max(float(u), 0.0), 1.0)
        if u in self._cache:
            self._cache[u] = self._cache.pop(u)  # most recently used last
            return self._cache[u]
        lo, hi = 0, 1                      # interval [lo, hi] / 2**level
        w_lo, w_hi = torch.zeros_like(self._w1), self._w1
        for level in range(1, self.depth + 1):
            lo, hi = 2 * lo, 2 * hi
            mid = lo + 1
            width = 2.0 ** -(level - 1)
            w_mid = 0.5 * (w_lo + w_hi) + math.sqrt(width / 4.0) * self._node(level, mid)
            if u * 2 ** level < mid:
                hi, w_hi = mid, w_mid
            else:
                lo, w_lo = mid, w_mid
        scale = 2.0 ** self.depth
        frac = u * scale - lo
        value = w_lo + frac * (w_hi - w_lo) if frac > 0 else w_lo
        if len(self._cache) >= 2:
            self._cache.pop(next(iter(self._cache)))
        self._cache[u] = value
        return value

    def increment(self, sigma, sigma_next):
        """W(u(sigma_next)) - W(u(sigma)) and the time length |du| (unnormalised)."""
        u0 = brownian_time(self.model_kind, float(sigma))
        u1 = brownian_time(self.model_kind, float(sigma_next))
        w0 = self.w(u0)  # the previous step's end: usually cached
        return self.w(u1) - w0, abs(u1 - u0)


def _u_key(u):
    """An integer naming the time u exactly (float64 bits), for seeding a draw at u."""
    return int(round(float(u) * 2.0 ** 53))


class StepBrownianNoise(_Increments):
    """Increments of one seeded Brownian path at the times a sampler asks for, at ~2 draws per step.

    The same dyadic tree as BrownianNoise (same midpoint seeds), but a query u is resolved only down
    to a tree interval no wider than the step |u - u_prev|, and W(u) inside it is ONE Brownian-bridge
    draw between the interval's ends (seeded by the seed and u). Consecutive queries share the tree
    levels above where they part (cached), so a step costs the few levels between the parting level
    and the step's width, plus the bridge draw: ~2 normal draws of x's size instead of `depth`.

    Exact law along a run: every new value is drawn from its exact conditional law given all values
    drawn before (the Markov property of W): tree midpoints only inside tree intervals that hold no
    earlier query point, and a query that falls inside the interval the previous one was bridged in
    is bridged between that interval's end and the previous point. So the normalised increments of
    a run are exactly independent N(0, I), whatever the schedule.
    Across step counts (same seed): the tree is shared, so the paths agree down to the coarser run's
    step width; they differ only inside steps, by bridges pinned at tree points. For the diffusion
    SDEs, whose noise enters additively, that changes the result by O(step) (integration by parts
    of the noise integral), the order the samplers converge at anyway: a seed still converges as
    steps grow. Unlike BrownianNoise, W(u) depends on the query sequence (use BrownianNoise where an
    exactly query-independent path matters).
    """

    def __init__(self, x, seed=None, model_kind="ve", rng_device=None, width_factor=4.0):
        brownian_time(model_kind, 0.5)  # validates model_kind
        if not 0.0 < float(width_factor) <= 64.0:
            raise ValueError(f"width_factor must be in (0, 64], got {width_factor!r}")
        self.model_kind, self.width_factor = model_kind, float(width_factor)
        self._draws = _Draws(x, rng_device)
        self._seed = mix_seed(_SALT_BROWN, _resolve_seed(seed))
        self._bridge_seed = mix_seed(self._seed, 0x5A3B1E_0003)
        w1 = self._draws.normal(mix_seed(self._seed, 0, 0))      # W(1): the same root as BrownianNoise
        self._path = [(0, 0, torch.zeros_like(w1), w1)]           # (level, index, W(lo), W(hi)) root down
        self._last = None                                         # (u, W(u), lo, hi, W(lo), W(hi)) bracket
        self._recent = {}                                         # the last 3 times asked for -> W

    def _bridge(self, u, lo, hi, w_lo, w_hi):
        if hi <= lo:
            return w_lo
        f = (u - lo) / (hi - lo)
        z = self._draws.normal(mix_seed(self._bridge_seed, _u_key(u)))
        return torch.lerp(w_lo, w_hi, f).add_(z, alpha=math.sqrt(f * (1.0 - f) * (hi - lo)))

    def _descend(self, u, width):
        """W(u) through the tree down to an interval of width <= `width`, reusing the cached levels."""
        keep = 1
        for k in range(1, len(self._path)):
            level, index = self._path[k][:2]
            if index * 2.0 ** -level <= u <= (index + 1) * 2.0 ** -level:
                keep = k + 1
            else:
                break
        # levels up to keep - 1 also hold the previous query point: go at least one level below them
        min_level = keep if keep < len(self._path) else 0
        del self._path[keep:]
        level, index, w_lo, w_hi = self._path[-1]
        while (2.0 ** -level > width or level < min_level) and level < 52:
            mid_w = torch.lerp(w_lo, w_hi, 0.5).add_(
                self._draws.normal(mix_seed(self._seed, level + 1, 2 * index + 1)),
                alpha=math.sqrt(2.0 ** -level / 4.0))
            level, index = level + 1, 2 * index
            if u * 2.0 ** level >= index + 1:
                index, w_lo = index + 1, mid_w
            else:
                w_hi = mid_w
            self._path.append((level, index, w_lo, w_hi))
        lo, hi = index * 2.0 ** -level, (index + 1) * 2.0 ** -level
        return lo, hi, w_lo, w_hi

    def w(self, u, width):
        """W(u), resolved to `width` (the step length)."""
        u = min(max(float(u), 0.0), 1.0)
        if u in self._recent:          # a time asked for again (a step's start, a stage's shared start)
            return self._recent[u]
        if u in (0.0, 1.0):
            return self._path[0][2] if u == 0.0 else self._path[0][3]
        last = self._last
        if last is not None and last[2] < u < last[3]:
            # inside the interval the previous point was bridged in: bridge to the previous point
            if u < last[0]:
                lo, hi, w_lo, w_hi = last[2], last[0], last[4], last[1]
            else:
                lo, hi, w_lo, w_hi = last[0], last[3], last[1], last[5]
        else:
            lo, hi, w_lo, w_hi = self._descend(u, max(self.width_factor * width, 2.0 ** -52))
        value = self._bridge(u, lo, hi, w_lo, w_hi)
        self._last = (u, value, lo, hi, w_lo, w_hi)
        if len(self._recent) >= 3:
            self._recent.pop(next(iter(self._recent)))
        self._recent[u] = value
        return value

    def increment(self, sigma, sigma_next):
        u0 = brownian_time(self.model_kind, float(sigma))
        u1 = brownian_time(self.model_kind, float(sigma_next))
        du = abs(u1 - u0)
        w0 = self.w(u0, du)
        return self.w(u1, du) - w0, du


def noise_sampler_for(kind, x, extra_args, model_kind="ve", rng_device=None):
    """The sampler's noise source, seeded by extra_args["seed"]: kind "gaussian", "brownian"
    (StepBrownianNoise: one Brownian path, ~2 draws per step) or "brownian_tree" (BrownianNoise:
    the exactly query-independent path, `depth` draws per new time)."""
    seed = (extra_args or {}).get("seed")
    if kind == "gaussian":
        return GaussianNoise(x, seed, rng_device=rng_device)
    if kind == "brownian":
        return StepBrownianNoise(x, seed, model_kind=model_kind, rng_device=rng_device)
    if kind == "brownian_tree":
        return BrownianNoise(x, seed, model_kind=model_kind, rng_device=rng_device)
    raise ValueError(f"noise kind must be 'gaussian', 'brownian' or 'brownian_tree', got {kind!r}")
