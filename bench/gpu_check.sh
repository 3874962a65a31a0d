#!/usr/bin/env bash
# The GPU check, one script for a machine with one GPU (under 8 minutes on an H100): the CUDA tests, then the
# LibriSpeech recipe's training step in fp32, bf16 and fp16 and decoding and alignment on the GPU against the CPU
# (bench/gpu_check.py -> bench/results/gpu_check.json). Without CUDA it runs the CPU part, small, to check itself.
#   bash bench/gpu_check.sh            # from the repository root, after `make setup`
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" - <<'PYEOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, devices: {torch.cuda.device_count()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else " (none: CPU part only)"))
PYEOF
echo "== the tests that need CUDA (skipped without it)"
"$PY" -m pytest -q -m '' -k "cuda or gpu" -p no:cacheprovider tests || true
echo "== training step, decoding and alignment"
"$PY" bench/gpu_check.py "$@"
