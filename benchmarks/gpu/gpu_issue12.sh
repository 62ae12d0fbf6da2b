#!/usr/bin/env bash
# One GPU-machine run for issue 12's last two points: the C++ runner's outputs on CUDA packages against eager
# and pt2kit.load (point 8; benchmarks/gpu/gpu_compile.md), and the transformers dynamic sweep on CUDA with a probe
# of the cause of the earlier failures (point 9; benchmarks/coverage/gpu_survey.md).
#     OUT=results bash benchmarks/gpu/gpu_issue12.sh      (PYTHONPATH must hold src and pyelftools)
set -u
OUT=${OUT:-gpu-out}; W=${W:-/tmp/gpu12}
mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
step() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/steps.log"; }
step versions; python3 -c "import torch, transformers, elftools; print(torch.__version__, transformers.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/steps.log"
# in the background: build the runner, then export + compile (cuda) two models and compare at three sizes each
( python3 -m pt2kit cpp-runner -o "$W/runner" -j 8 --json > "$OUT/runner_build.json" 2> "$OUT/runner_build.log"
  echo "runner build exit $?" >> "$OUT/cpp.log"
  for name in bert gpt2; do
    timeout 400 python3 benchmarks/gpu/gpu_cpp_compare.py "$W/runner/build/pt2kit_runner" $name --workdir "$W" \
      --sizes 2x8,1x13,3x32,16x27 >> "$OUT/cpp_compare.jsonl" 2>> "$OUT/cpp.log"; echo "$name compare exit $?" >> "$OUT/cpp.log"
  done ) &
BG=$!
step "CUDA test of export_module"; timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_capture_attention.py 2>&1 | tail -3 | tee -a "$OUT/steps.log"
step probe; timeout ${PROBE_S:-150} python3 benchmarks/coverage/gpu_dynamic_probe.py bert llama mistral bart bloom 2>&1 | grep -v Warning | tee "$OUT/probe.log" | cut -c1-400 | tee -a "$OUT/steps.log"
step "transformers dynamic sweep"; timeout ${SWEEP_S:-300} python3 -m pt2kit survey tests/architectures.py --device cuda --shapes dynamic \
  --json > "$OUT/transformers_dynamic.json" 2> "$OUT/transformers_dynamic.log"; echo "exit $?" | tee -a "$OUT/steps.log"
grep -h '^\[' "$OUT/transformers_dynamic.log" | tail -30 | cut -c1-300 | tee -a "$OUT/steps.log"
step "waiting for the C++ comparison"; wait $BG
cat "$OUT/cpp.log" | grep -v Warning | tail -20 | cut -c1-400 | tee -a "$OUT/steps.log"; cat "$OUT/cpp_compare.jsonl" | tee -a "$OUT/steps.log"
step done
