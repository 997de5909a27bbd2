"""Test set-up: the repo root goes at the END of sys.path, so that inside integration tests
ComfyUI's own top-level modules (nodes, server, utils ...) win over the pack's folders."""
import os
import sys

import torch

# The lab model's tensors are tiny: one thread is ~25x faster than two on a busy 2-core machine.
torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)
