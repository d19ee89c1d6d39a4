#!/usr/bin/env bash
# One prepared GPU check (<= 8 minutes on one GPU): install what it needs, run the CUDA tests, 5 GRPO
# steps of the quickstart on CUDA, and the CUDA half of the kernel benchmark. Every log goes to one
# folder (default: gpu_check-<time>/, or $1). Run from anywhere; it works in the repository root.
#
#   bash benchmarks/gpu_check.sh [LOG_DIR]
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # print the plan and check the CPU-safe parts only
#
# Each stage has its own time limit so one hang cannot eat the others' time; the script keeps going
# after a failed stage and exits non-zero at the end if any stage failed. The limits add up to 480 s. summary.txt lists every
# stage with its exit code and wall time.
set -uo pipefail
cd "$(dirname "$0")/.."

LOG_DIR="${1:-gpu_check-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LOG_DIR"
LOG_DIR="$(cd "$LOG_DIR" && pwd)"
SUMMARY="$LOG_DIR/summary.txt"
DRY="${GPU_CHECK_DRY_RUN:-0}"
PY="${PYTHON:-python3}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$HOME/.cache/scalingrl/torch_extensions}"
export SCALINGRL_CACHE="${SCALINGRL_CACHE:-$LOG_DIR/cache}"
export TOKENIZERS_PARALLELISM=false
: > "$SUMMARY"
failed=0

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: run with a time limit, log to NAME.log, record the result
  local name="$1" limit="$2"
  shift 2
  if [ "$DRY" = "1" ]; then
    printf '%-14s limit %4ss: %s\n' "$name" "$limit" "$*" | tee -a "$SUMMARY"
    return 0
  fi
  local started=$SECONDS status=0
  timeout --signal=TERM --kill-after=10 "$limit" "$@" > "$LOG_DIR/$name.log" 2>&1 || status=$?
  printf '%-14s exit %3d  %4ds  (limit %ss)  log %s\n' "$name" "$status" $((SECONDS - started)) "$limit" "$name.log" | tee -a "$SUMMARY"
  [ "$status" -eq 0 ] || failed=1
}

# 1. environment: what is there, and the project with its test extras (no CUDA torch download: the
#    machine's torch is used as it is; DeepSpeed ops are JIT-built only if a test needs them).
stage env 30 bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'"
stage install 120 bash -c "$PY -m pip install -q scikit-build-core pybind11 cmake ninja && DS_BUILD_OPS=0 $PY -m pip install -q --no-build-isolation -e '.[test]' && $PY -m pip list 2>/dev/null | grep -iE '^(torch|triton|deepspeed|transformers|scalingrl) '"

# 2. the CUDA tests (Triton kernels against their torch twins on the GPU), then the device rule and
#    data-parallel tests (they run on CPU/gloo whatever the machine has).
stage cuda_tests 90 "$PY" -m pytest -q -m gpu tests/
stage device_tests 60 "$PY" -m pytest -q tests/test_distributed.py -k "device or rollout_batch"

# 3. five GRPO steps of the quickstart on CUDA (the DeepSpeed engine places the policy on cuda:0;
#    rollouts, advantages, masks and log-probs follow it). Smaller eval so it fits the budget.
stage grpo_cuda 120 "$PY" -m scalingrl.train --output-dir "$LOG_DIR/grpo_run" steps=5 save_every=0 eval.size=64 \
  progress_bar=false log_every=1 report=false
if [ "$DRY" != "1" ] && [ -f "$LOG_DIR/grpo_run/summary.json" ]; then
  "$PY" - "$LOG_DIR/grpo_run" >> "$SUMMARY" <<'EOF'
import json, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"reward_mean"' in l]
print("grpo_cuda steps:", [(r["step"], round(r["reward_mean"], 3), round(r["time_step_s"], 2)) for r in rows])
EOF
fi

# 4. the CUDA half of the kernel benchmark (time and peak memory vs eager and torch.compile).
stage bench_kernels 60 "$PY" benchmarks/bench_kernels.py --device cuda --repeats 3

echo "logs in $LOG_DIR" | tee -a "$SUMMARY"
exit "$failed"
