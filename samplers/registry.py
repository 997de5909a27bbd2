"""The pack's sampler registry: name -> SamplerSpec, filled by the family modules at import."""
from .spec import SamplerSpec

SAMPLERS: dict = {}


def register(spec: SamplerSpec) -> SamplerSpec:
    """Add a spec; a duplicate name inside the pack is a programming error."""
    if spec.name in SAMPLERS:
        raise ValueError(f"sampler name {spec.name!r} registered twice in the pack")
    SAMPLERS[spec.name] = spec
    return spec
