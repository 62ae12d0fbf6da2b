#!/usr/bin/env bash
# Issue 23, points 5 and 6 on the GPU machine, in one run (results: benchmarks/gpu/gpu_compile.md, docs/partial.md):
#   - a ResNet-50 bf16 CUDA package (transformers' ResNet-50, random weights), then `pt2kit.load` timed in fresh
#     processes: the ELF check (new and seen package) against the child-probe path, and without LD_PRELOAD;
#   - the two partial examples compiled at batch 2 with --device cuda, then run at batch 2, 3 and 5 through the regions.
# The three builds run side by side; the timings start only after all of them have finished.
#     OUT=results DEVICE=cuda PYTHONPATH=src:/tmp/site [QUICK=1] bash benchmarks/gpu/gpu_trust.sh   (QUICK: 4 load rows, not 6)
# On CPU (to try the script; a small model instead of ResNet-50):
#     OUT=/tmp/t DEVICE=cpu MODEL=tests/cases/linear_relu.py:model MODEL_INPUT=x=float32[4,16] SHAPE=bfloat16:4,16 bash ...
set -u
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
PKG=${PKG:-/tmp/pt2kit-trust}
MODEL=${MODEL:-benchmarks/gpu/gpu_models.py:resnet50}
MODEL_INPUT=${MODEL_INPUT:-pixel_values=float32[8,3,224,224]}
SHAPE=${SHAPE:-bfloat16:8,3,224,224}
P=${PYTHON:-python3}
mkdir -p "$OUT" "$PKG"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-src} TRANSFORMERS_VERBOSITY=error PT2KIT_CACHE_DIR=$PKG/build-cache
PRE=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
[ "$DEVICE" = cuda ] && export LD_PRELOAD=$PRE  # the builds' own checks load packages too (/work/shared/GPU.md)
LOG=$OUT/steps.log
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }
step versions
$P -c "import torch, elftools, pt2kit; print(torch.__version__, elftools.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" 2>&1 | tee -a "$LOG"
step "builds (side by side)"
( s=$(date +%s); $P -m pt2kit compile "$MODEL" --input "$MODEL_INPUT" --dtype bf16 --device "$DEVICE" -o "$PKG/model.aoti.pt2" -q
  echo "exit $? in $(( $(date +%s) - s ))s" ) > "$OUT/build_model.log" 2>&1 &
( s=$(date +%s); $P -m pt2kit compile examples/partial_refiner.py:refiner --partial --device "$DEVICE" --min-share 0.06 \
    --input "x=float32[2,16,32]" -o "$PKG/refiner.regions.pt2"
  echo "exit $? in $(( $(date +%s) - s ))s" ) > "$OUT/build_refiner.log" 2>&1 &
( s=$(date +%s); $P -m pt2kit compile examples/partial_lm.py:early_exit_lm --partial --device "$DEVICE" --min-share 0.1 \
    --input "ids=int64[2,64]@0..512" -o "$PKG/lm.regions.pt2"
  echo "exit $? in $(( $(date +%s) - s ))s" ) > "$OUT/build_lm.log" 2>&1 &
wait
tail -n 2 "$OUT"/build_*.log | tee -a "$LOG"
ls -la "$PKG" | tee -a "$LOG"
step "load: fresh processes"
PRELOAD_ARG=$([ "$DEVICE" = cuda ] && echo "$PRE" || echo "")
unset LD_PRELOAD  # each row sets its own
$P benchmarks/gpu/gpu_trust.py load "$PKG/model.aoti.pt2" "$SHAPE" --device "$DEVICE" --preload "$PRELOAD_ARG" ${QUICK:+--quick} 2>&1 | tee "$OUT/load.jsonl"
[ "$DEVICE" = cuda ] && export LD_PRELOAD=$PRE
step "regions at other batch sizes"
{ $P benchmarks/gpu/gpu_trust.py regions examples/partial_refiner.py:refiner "$PKG/refiner.regions.pt2" float32:16,32 --device "$DEVICE"
  $P benchmarks/gpu/gpu_trust.py regions examples/partial_lm.py:early_exit_lm "$PKG/lm.regions.pt2" int64@512:64 --device "$DEVICE"
} 2>&1 | tee "$OUT/regions.jsonl"
step done
