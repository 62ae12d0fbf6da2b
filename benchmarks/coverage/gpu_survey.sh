#!/usr/bin/env bash
# The GPU coverage sweep (results: benchmarks/coverage/gpu_survey.md). On the GPU machine, from the repo root:
#
#     OUT=results bash benchmarks/coverage/gpu_survey.sh sweep     # export + verify: torchvision/timm, transformers set
#     OUT=results bash benchmarks/coverage/gpu_survey.sh compile   # export + verify + AOTInductor compile, a subset
#
# then here: python benchmarks/coverage/survey_table.py results/*.json > benchmarks/coverage/gpu_survey.md (plus the header).
# Every part runs under `timeout`: pt2kit survey turns SIGTERM into a report of the rows done so far.
set -u
OUT=${OUT:-survey-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=src TRANSFORMERS_VERBOSITY=error
# aoti_load_package segfaults there without the system libstdc++ (../shared/GPU.md)
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
part=${1:-sweep}
python3 - > "$OUT/versions.txt" 2>&1 <<'PY'
import torch, transformers
import importlib
print("torch", torch.__version__, "| transformers", transformers.__version__, end="")
for name in ("torchvision", "timm"):
    try:
        print(f" | {name}", importlib.import_module(name).__version__, end="")
    except Exception as exc:
        print(f" | {name} missing ({exc})", end="")
print(" | card", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$OUT/versions.txt" 2>&1
if [ "$part" = sweep ]; then
  timeout 290 python3 -m pt2kit survey --from benchmarks/coverage/gpu_survey_targets.txt --device cuda --dynamic-batch \
    --json > "$OUT/vision.json" 2> "$OUT/vision.log"
  timeout 200 python3 -m pt2kit survey tests/architectures.py --device cuda --shapes static,dynamic \
    --json > "$OUT/transformers.json" 2> "$OUT/transformers.log"
fi
if [ "$part" = compile ]; then
  timeout 250 python3 -m pt2kit survey --from benchmarks/coverage/gpu_compile_targets.txt --device cuda --dynamic-batch \
    --stages export,verify,compile --isolate --timeout 150 --json > "$OUT/compile_vision.json" 2> "$OUT/compile_vision.log"
  timeout 170 python3 -m pt2kit survey tests/architectures.py:gpt2 tests/architectures.py:t5 --device cuda --shapes static \
    --stages export,verify,compile --isolate --timeout 150 --json > "$OUT/compile_transformers.json" 2> "$OUT/compile_transformers.log"
  timeout 100 python3 benchmarks/coverage/gpu_dynamic_probe.py bert gpt2 bloom whisper > "$OUT/probe.log" 2>&1
  grep -h "attn=" "$OUT/probe.log"
fi
cat "$OUT/versions.txt"; grep -h '^\[' "$OUT"/*.log | tail -n 100
