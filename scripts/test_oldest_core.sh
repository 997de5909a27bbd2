#!/usr/bin/env bash
# The tests that run against the oldest ComfyUI the pack claims (README "Supported ComfyUI"): 0.3.52,
# set up by scripts/setup_labenv.sh in .labenv/ComfyUI-0.3.52 (same venv as 0.3.75). Registration, the
# start-up order beside packs that copy / rebind the dropdown lists, the ComfyUI API record, the
# in-process sampler / scheduler / lab-model nodes and the real main.py server. Extra pytest
# arguments are passed on (e.g. -q, -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_labenv.sh"
cd "$root"
SAMPLER_LAB_COMFYUI="$root/.labenv/ComfyUI-0.3.52" exec "$root/.labenv/venv/bin/python" -m pytest -p no:cacheprovider \
  tests/test_comfy_registration.py tests/test_comfy_other_packs.py tests/test_comfy_api_record.py \
  tests/test_comfy_sampler_nodes.py tests/test_comfy_schedule_nodes.py tests/test_comfy_lab_model.py \
  tests/test_comfy_handoff_chain.py tests/test_server.py "$@"
