#!/usr/bin/env bash
# README command (b): set up if needed, then run the whole test suite (unit, in-process ComfyUI, server).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_labenv.sh"
bash "$root/scripts/setup_browser.sh"
cd "$root"
exec "$root/.labenv/venv/bin/python" -m pytest -p no:cacheprovider "$@"
