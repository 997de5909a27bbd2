#!/usr/bin/env bash
# README command (a): set up if needed, then run the lab example workflows through a real ComfyUI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_labenv.sh"
exec "$root/.labenv/venv/bin/python" "$root/scripts/run_lab.py" "$@"
