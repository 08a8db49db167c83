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
# The suite without the real-model tests (they need the SmolLM2 download); the benches run below.
start=$(date +%s)
cargo test --release --lib --bins --tests -- --skip smollm2 2>&1 | grep -E "^test result|FAILED|panicked" || true
echo "tests: $(( $(date +%s) - start )) s"

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
