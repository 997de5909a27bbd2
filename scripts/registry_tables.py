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
        calls = f"{s.model_calls:g}" + (" (adaptive)" if not s.follows_schedule else "")
        cfgpp = "" if s.stochastic or not s.follows_schedule else f"`{name}_cfg_pp`"
        print(f"| `{name}` | {s.order} | {calls} | {'yes' if s.stochastic else ''} | "
              f"{'yes' if s.flow_safe else 'no'} | {cfgpp} | {s.summary.split(';')[0]} |")
    print()
    print("| scheduler | what |")
    print("|---|---|")
    for name, s in schedulers.SCHEDULERS.items():
        print(f"| `{name}` | {s.summary} |")


if __name__ == "__main__":
    main()
