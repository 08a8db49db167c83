//! Whole forward passes: a 32-token prefill and one decode step (batch 1 and 8), plain and
//! with every hook captured, on the odd-size GPT-2 fixture (always present) or on the model
//! in OUTLIER_PROBE_BENCH_MODEL (a directory or .gguf, e.g. .cache/gpt2-124m-random).
//!
//!     cargo bench --bench forward
//!     OUTLIER_PROBE_BENCH_MODEL=.cache/gpt2-124m-random cargo bench --bench forward

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};

use outlier_probe::bench::random_tokens;
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::hooks::HookFilter;
use outlier_probe::model::{ForwardOptions, LogitsMode, Model};

fn forward(c: &mut Criterion) {
    let path = std::env::var_os("OUTLIER_PROBE_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-odd-c")
        });
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (or lavapipe)");
    let model = Model::load(ctx, &path).expect("model");
    let v = model.cfg.vocab_size;
    let t = 32.min(model.cfg.n_positions - 1);
    let mut group = c.benchmark_group(format!(
        "forward {}",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    group.sample_size(10);
    for (name, filter) in [
        ("plain", HookFilter::none()),
        ("capture all", HookFilter::all()),
    ] {
        let opts = ForwardOptions {
            logits: LogitsMode::Last,
            capture: filter,
            ..Default::default()
        };
        let toks = random_tokens(v, t, 1);
        group.bench_function(format!("prefill {t} tokens, {name}"), |b| {
            b.iter(|| {
                let mut sess = model.session(1, t).unwrap();
                model.forward(&mut sess, &[&toks], &opts).unwrap()
            })
        });
        for batch in [1usize, 8] {
            let prompts: Vec<Vec<u32>> =
                (0..batch).map(|i| random_tokens(v, t, i as u64)).collect();
            let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
            let next: Vec<Vec<u32>> = (0..batch).map(|i| vec![i as u32 % v as u32]).collect();
            let nrefs: Vec<&[u32]> = next.iter().map(Vec::as_slice).collect();
            let mut sess = model.session(batch, t + 1).unwrap();
            model
                .forward(&mut sess, &refs, &ForwardOptions::default())
                .unwrap();
            group.bench_function(format!("decode step batch {batch}, {name}"), |b| {
                b.iter(|| {
                    // Step position t again and again: roll the cache length back each time.
                    (0..batch).for_each(|b| sess.truncate(b, t).unwrap());
                    model.forward(&mut sess, &nrefs, &opts).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
