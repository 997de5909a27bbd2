"""The pack's scheduler registry: name -> SchedulerSpec."""
from .spec import SchedulerSpec

SCHEDULERS: dict = {}


def register(spec: SchedulerSpec) -> SchedulerSpec:
    if spec.name in SCHEDULERS:
        raise ValueError(f"scheduler name {spec.name!r} registered twice in the pack")
    SCHEDULERS[spec.name] = spec
    return spec
