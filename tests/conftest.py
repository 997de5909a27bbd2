"""Test set-up: the repo root goes at the END of sys.path, so that inside integration tests
ComfyUI's own top-level modules (nodes, server, utils ...) win over the pack's folders."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)
