"""Sampler chain: one sampler down to a switch point of the schedule, another below it (pure torch).

The schedule is split like a model hand-off (schedulers/boundary.py): with k the switch index,
part one runs sigmas[:k + 1] and part two continues from its result on sigmas[k:], so together they
take exactly the schedule's steps. Costs: part one's calls on its k steps plus part two's on the rest.

State across the switch:
- the latent is handed over as it is (both parts see the x of the shared sigma sigmas[k]);
- callbacks: part two's step index continues from k, so progress bars and previews run 0..steps-1;
- noise: part two must not replay part one's noise. A `run_options(x, sigmas, extra_args)` hook (the
  node's) gives each part its per-run options, e.g. one Brownian path over the whole schedule that
  both parts draw from (part two continues the path where part one stopped); a part given no noise
  source gets extra_args["seed"] + 1, so a seeded sampler draws a new stream;
- multistep history: a chain whose two parts are the same sampler with the same options (`same`) is
  run as that one sampler over the whole schedule, so its history and noise carry exactly; two
  different samplers each build their own history (part two's first step is its own warm-up step:
  another method's past outputs are not its history).
"""


def _offset(callback, k):
    if callback is None:
        return None

    def shifted(d):
        callback({**d, "i": d["i"] + k})
    return shifted


def _reseeded(extra_args):
    if not extra_args or "seed" not in extra_args or extra_args["seed"] is None:
        return extra_args
    return {**extra_args, "seed": int(extra_args["seed"]) + 1}


def chain(first, second, split_index, same=False, run_options=None):
    """A sampler function running `first` on sigmas[:k + 1] and `second` on sigmas[k:], k = split_index(sigmas).

    first / second: fn(model, x, sigmas, extra_args=None, callback=None, disable=None, **options) with their
    options bound. same: they are the same sampler (run it once). run_options: see the module docstring;
    returns (options_first, options_second) dicts, where a "noise_sampler" key marks a shared noise source.
    """
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **unused):
        if same:
            return first(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)
        k = split_index(sigmas)
        opts = run_options(x, sigmas, extra_args) if run_options is not None else ({}, {})
        if k > 0:
            x = first(model, x, sigmas[:k + 1], extra_args=extra_args, callback=callback, disable=disable, **opts[0])
        if k < sigmas.numel() - 1:
            args_two = extra_args if k == 0 or "noise_sampler" in opts[1] else _reseeded(extra_args)
            x = second(model, x, sigmas[k:], extra_args=args_two, callback=_offset(callback, k), disable=disable,
                       **opts[1])
        return x
    sample.__doc__ = "Sampler chain (samplers/chain.py): one sampler above the switch, another below it."
    return sample
