#!/usr/bin/env bash
# GPU: a CUDA package loaded with and without LD_PRELOAD (the ELF check, then the child probe) leaves nothing under
# its TMPDIR; the extraction and load tests on the GPU machine's torch. Results: benchmarks/gpu/gpu_compile.md.
#     PYTHONPATH=src bash benchmarks/gpu/gpu_extraction.sh
set -u
export PYTHONUNBUFFERED=1
W=${W:-/tmp/gpu-extraction}; T=$W/tmp; mkdir -p "$W" "$T"
PRE=/usr/lib/x86_64-linux-gnu/libstdc++.so.6
python3 -m pt2kit export tests/cases/linear_relu.py:model -o "$W/lin.pt2" --dynamic "input:0=batch[1,64]" -q
python3 -m pt2kit compile "$W/lin.pt2" -o "$W/lin.cuda.aoti.pt2" --device cuda --no-cache -q 2>&1 | tail -2
for pre in "$PRE" ""; do
  echo "== LD_PRELOAD='$pre'"
  LD_PRELOAD=$pre TMPDIR=$T python3 -c "
import sys, time, torch, pt2kit
t = time.perf_counter()
try:
    y = pt2kit.load(sys.argv[1])(torch.ones(4, 16, device='cuda')); torch.cuda.synchronize()
    print('loaded and ran:', tuple(y.shape), round(time.perf_counter() - t, 3), 's')
except Exception as e:
    print(type(e).__name__, str(e)[:300], round(time.perf_counter() - t, 2), 's')
" "$W/lin.cuda.aoti.pt2" 2>&1 | grep -v Warn | tail -2
  echo "left under TMPDIR after the process ended: [$(find "$T" -mindepth 1 | sed "s#$T##" | tr '\n' ' ')]"
done
LD_PRELOAD=$PRE timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_extraction.py tests/test_load_runtime.py 2>&1 | tail -3
