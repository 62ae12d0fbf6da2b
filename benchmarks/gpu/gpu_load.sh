#!/usr/bin/env bash
# On the GPU machine, from the repo root: a CUDA package through every command that takes an artifact,
# and its load time in fresh processes. Results: benchmarks/gpu/gpu_compile.md (the transformers dynamic sweep is
# benchmarks/coverage/gpu_survey.sh, the C++ runner's comparison benchmarks/gpu/gpu_cpp_compare.py).
#     OUT=results bash benchmarks/gpu/gpu_load.sh
set -u
OUT=${OUT:-gpu-out}
PKG=${PKG:-$OUT/pkg}
mkdir -p "$OUT" "$PKG"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-src} TRANSFORMERS_VERBOSITY=error
PRE=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
P=python3
step() { echo "== $*" | tee -a "$OUT/steps.log"; }
step versions; $P -c "import torch, transformers, elftools; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/steps.log"
step export; $P -m pt2kit export benchmarks/gpu/gpu_models.py:resnet50 -o "$PKG/r50.pt2" \
  --dynamic pixel_values:0=batch[1,32] --no-specialization-check 2>&1 | tail -4 | tee -a "$OUT/steps.log"
step compile; $P -m pt2kit compile "$PKG/r50.pt2" -o "$PKG/r50.aoti.pt2" --device cuda --no-cache \
  2>&1 | tail -4 | tee -a "$OUT/steps.log"
ls -la "$PKG" | tee -a "$OUT/steps.log"
step load; timeout 150 $P benchmarks/gpu/gpu_load.py "$PKG/r50.aoti.pt2" 8,3,224,224 --repeat 3 2>&1 | tee "$OUT/load.log" | tail -8 | tee -a "$OUT/steps.log"
for cmd in "inspect $PKG/r50.aoti.pt2" "run $PKG/r50.aoti.pt2 --input pixel_values=float32[8,3,224,224]" \
           "verify benchmarks/gpu/gpu_models.py:resnet50 $PKG/r50.aoti.pt2 --samples 1"; do
  step "pt2kit $cmd (LD_PRELOAD)"; LD_PRELOAD=$PRE timeout 90 $P -m pt2kit $cmd 2>&1 | tail -6 | tee -a "$OUT/steps.log"; echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
done
step "pt2kit run without LD_PRELOAD"; timeout 60 $P -m pt2kit run "$PKG/r50.aoti.pt2" --input pixel_values=float32[8,3,224,224] 2>&1 | tail -3 | tee -a "$OUT/steps.log"; echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
step "bench --device cuda"; LD_PRELOAD=$PRE timeout 100 $P -m pt2kit bench benchmarks/gpu/gpu_models.py:resnet50 --device cuda --modes eager,export \
  --batch-sizes 8 --warmup 3 --iters 10 2>&1 | tail -8 | tee -a "$OUT/steps.log"; echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
