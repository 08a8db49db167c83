//! Matmul kernels side by side on the same shapes: naive (one output per invocation), the
//! 64×64 register-blocked tiles, the few-row matvec, and both with f16 weights. Each iteration
//! is submit + wait of one dispatch on random data.
//!
//!     cargo bench --bench kernels

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use outlier_probe::bench::rand_f32;
use outlier_probe::gpu::{GpuContext, GpuOptions};
use outlier_probe::kernels::{pack_f16, Epilogue, Graph, Kernels, MatmulKernel};

fn matmuls(c: &mut Criterion) {
    let ctx = GpuContext::new(&GpuOptions::from_env()).expect("a GPU adapter (or lavapipe)");
    let kern = Kernels::new(&ctx).expect("kernels");
    // GPT-2 small's MLP up projection at 64 prompt rows, and at one decode row.
    for (m, n, k) in [(64usize, 3072usize, 768usize), (1, 3072, 768)] {
        let a = ctx
            .storage_init("a", bytemuck::cast_slice(&rand_f32(m * k, 1)))
            .unwrap();
        let w = rand_f32(k * n, 2);
        let b = ctx.storage_init("b", bytemuck::cast_slice(&w)).unwrap();
        let b16 = ctx
            .storage_init("b f16", bytemuck::cast_slice(&pack_f16(&w)))
            .unwrap();
        let out = ctx.storage("c", (m * n * 4) as u64).unwrap();
        let mut group = c.benchmark_group(format!("matmul {m}x{n}x{k}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let fast = kern.pick(m);
        for (name, kind, f16) in [
            ("naive", MatmulKernel::Naive, false),
            ("engine f32", fast, false),
            ("engine f16 weights", fast, true),
        ] {
            group.bench_function(name, |bench| {
                bench.iter(|| {
                    let mut g = Graph::default();
                    let epi = Epilogue {
                        b_f16: f16,
                        ..Default::default()
                    };
                    let bb = if f16 { &b16 } else { &b };
                    kern.matmul_fused(
                        &mut g,
                        kind,
                        m,
                        n,
                        k,
                        (&a).into(),
                        bb.into(),
                        None,
                        (&out).into(),
                        false,
                        epi,
                    );
                    g.submit(&ctx).unwrap();
                    ctx.wait().unwrap();
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, matmuls);
criterion_main!(benches);
