#!/usr/bin/env bash
# One GPU-machine session for what CI cannot run: `pt2kit serve` on a ResNet-50 bf16 package at concurrency 64
# (benchmarks/serve/serve.md), that package's load time in fresh processes with a profile of pt2kit.load
# (benchmarks/gpu/gpu_compile.md), and every subcommand that takes an artifact against it (issue 12.8).
#     OUT=results bash benchmarks/gpu/gpu_final.sh        (PYTHONPATH must hold src and the serve extra)
set -u
OUT=${OUT:-gpu-out}; W=${W:-/tmp/gpu}
mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
PRE=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/steps.log"; }
step versions; python3 -c "import torch, fastapi, elftools; print(torch.__version__, fastapi.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/steps.log"
step serve_gpu; LD_PRELOAD=$PRE timeout ${SERVE_S:-300} python3 benchmarks/serve/serve_gpu.py --workdir "$W" > "$OUT/serve_gpu.json" 2> "$OUT/serve_gpu.log"
echo "exit $?" | tee -a "$OUT/steps.log"; tail -5 "$OUT/serve_gpu.json" | cut -c1-1500 | tee -a "$OUT/steps.log"
PKG=$W/resnet50.bf16.aoti.pt2
[ -f "$PKG" ] || { step "no package"; exit 1; }
step load; timeout 150 python3 benchmarks/gpu/gpu_load.py "$PKG" bfloat16:8,3,224,224 --repeat 3 2>&1 | tee "$OUT/load.log" | grep -v '^{' | tail -40 | tee -a "$OUT/steps.log"
for cmd in "inspect $PKG" "run $PKG --input x=bfloat16[8,3,224,224]" "run $PKG --input x=bfloat16[8,3,224,224] --cuda-graphs" \
           "verify $W/resnet50_target.py:model $PKG --samples 1" \
           "bench $W/resnet50_target.py:model --device cuda --modes eager --artifact $PKG --batch-sizes 8 --warmup 3 --iters 10"; do
  step "pt2kit $cmd"; LD_PRELOAD=$PRE timeout 90 python3 -m pt2kit $cmd 2>&1 | tail -8 | cut -c1-400 | tee -a "$OUT/steps.log"; echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
done
step "pt2kit run without LD_PRELOAD"; timeout 60 python3 -m pt2kit run "$PKG" --input 'x=bfloat16[8,3,224,224]' 2>&1 | tail -3 | cut -c1-400 | tee -a "$OUT/steps.log"; echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/steps.log"
