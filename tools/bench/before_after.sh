#!/usr/bin/env bash
# Benchmark two revisions side by side: build examples/bench at each (in a detached worktree under
# $TMPDIR, sharing this checkout's target directory so dependencies build once), then run them
# alternately, ROUNDS times each, on the same model with the same arguments. Prints each run's
# forward-pass table; compare the rows of the same round.
#
#   tools/bench/before_after.sh REV_BEFORE REV_AFTER MODEL [bench args...]
#   ROUNDS=2 tools/bench/before_after.sh 1078e59 HEAD .cache/gpt2-124m-random \
#       --prefill 32,128 --decode-batch 1,8 --decode-tokens 6 --repeats 2 --no-capture
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,9p "$0"; exit 2; }
before=$1 after=$2 model=$3
shift 3
root=$(git rev-parse --show-toplevel)
work=${TMPDIR:-/tmp}/outlier-probe-before-after
mkdir -p "$work"
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}" XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
bins=()
for rev in "$before" "$after"; do
  sha=$(git -C "$root" rev-parse --short "$rev")
  dir="$work/$sha"
  [ -d "$dir" ] || git -C "$root" worktree add -q --detach "$dir" "$sha"
  (cd "$dir" && CARGO_TARGET_DIR="$root/target" cargo build -q --release --example bench)
  cp "$root/target/release/examples/bench" "$work/bench-$sha"
  bins+=("$sha")
done
for round in $(seq "${ROUNDS:-2}"); do
  for sha in "${bins[@]}"; do
    echo "### $sha, round $round"
    "$work/bench-$sha" --model "$model" "$@" |
      awk '/^## Forward pass/ { on = 1 } /^## / && !/^## Forward pass/ { on = 0 } on'
  done
done
