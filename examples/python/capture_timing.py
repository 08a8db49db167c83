"""Wall time of `model.run_with_cache(prompt)` (every hook, all logits) from Python: the
counterpart of `cargo run --release --example capture_timing` (same model, prompt, repeats).

    python examples/python/capture_timing.py [--model PATH] [--repeats 10]

Prints the median of `repeats` timed runs after one warm-up, in ms."""

import argparse
import time

import outlier_probe as op

p = argparse.ArgumentParser()
p.add_argument("--model")
p.add_argument("--prompt", default=op.PROBE_PROMPT)
p.add_argument("--repeats", type=int, default=10)
args = p.parse_args()

model = op.Model.load(args.model or op.fetch_smollm2())
times = []
for i in range(args.repeats + 1):
    t0 = time.perf_counter()
    logits, cache = model.run_with_cache(args.prompt)
    ms = (time.perf_counter() - t0) * 1e3
    if i > 0:
        times.append(ms)
times.sort()
print(
    f"python: {logits.shape[0]} tokens, {len(cache)} hooks, median {times[len(times) // 2]:.1f} ms "
    f"over {len(times)} runs on {model.device} (min {times[0]:.1f}, max {times[-1]:.1f})"
)
