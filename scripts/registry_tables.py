"""Dev tool (not shipped): print the README's sampler and scheduler tables from the registries,
so the README never disagrees with the code. Run: .labenv/venv/bin/python scripts/registry_tables.py"""
import os
import sys

sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import samplers  # noqa: E402
import schedulers  # noqa: E402


def main():
    print("| sampler | order | model calls / step | stochastic | flow-safe | CFG++ form | what |")
    print("|---|---|---|---|---|---|---|")
    for name, s in sorted(samplers.SAMPLERS.items(), key=lambda kv: (kv[1].family, kv[0])):
        if s.cfg_pp:
            continue  # listed in its base's row
        calls = f"{s.model_calls:g}" + (" (adaptive)" if not s.follows_schedule else "")
        has_form = name + "_cfg_pp" in samplers.SAMPLERS or (not s.stochastic and s.follows_schedule)
        cfgpp = f"`{name}_cfg_pp`" if has_form else ""
        print(f"| `{name}` | {s.order} | {calls} | {'yes' if s.stochastic else ''} | "
              f"{'yes' if s.flow_safe else 'no'} | {cfgpp} | {s.summary.split(';')[0]} |")
    print()
    print("| scheduler | what |")
    print("|---|---|")
    for name, s in schedulers.SCHEDULERS.items():
        print(f"| `{name}` | {s.summary} |")


if __name__ == "__main__":
    main()
