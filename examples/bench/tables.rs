//! The kernel tables of `bench`: decode matvecs against the copy bandwidth, and dispatches per
//! decode step by kernel.

use anyhow::Result;
use serde_json::{json, Value};

use outlier_probe::bench::*;
use outlier_probe::gpu::GpuContext;
use outlier_probe::hooks::HookFilter;
use outlier_probe::kernels::{Kernels, MatmulKernel};
use outlier_probe::model::Model;

/// The decode-matvec table: each few-row kernel on the model's decode shapes (and GPT-2 124M's
/// with `gpt2`), f32 and f16 weights, weight bytes per second against the copy bandwidth `bw`.
pub fn decode_matvec_table(
    ctx: &GpuContext,
    kern: &Kernels,
    model: &Model,
    gpt2: bool,
    bw: f64,
    repeats: usize,
) -> Result<Vec<Value>> {
    // Decode matvecs: bytes of weights read per second against the copy bandwidth.
    println!("\n## Decode matvec (1 row): weight bytes / kernel time against the copy bandwidth\n");
    println!(
        "matvec reduces with {}; `MatvecPerColumn` is the kernel before issue 15 (one invocation per output column).\n",
        if kern.matvec_subgroups { "subgroup shuffles (`Matvec`) or workgroup memory (`MatvecWorkgroup`)" } else { "workgroup memory (no usable subgroups)" }
    );
    println!("| shape | n×k | layout | weights | kernel | ms | weight GB/s | % of copy bandwidth | × per-column |");
    println!("|---|---|---|---|---|---:|---:|---:|---:|");
    let mut mv = Vec::new();
    let mut shapes = matmul_shapes(model, 1);
    if gpt2 {
        shapes.extend(gpt2_shapes(1, ctx.max_binding));
    }
    let mut kinds = vec![MatmulKernel::MatvecPerColumn, MatmulKernel::Matvec];
    if kern.matvec_subgroups {
        kinds.push(MatmulKernel::MatvecWorkgroup);
    }
    for (name, m, n, k, bt) in shapes {
        for f16 in [false, true] {
            let wbytes = (n * k) as f64 * if f16 { 2.0 } else { 4.0 };
            let mut base = f64::NAN;
            for &kind in &kinds {
                let ms = time_matmul_weights(ctx, kern, kind, (m, n, k), bt, f16, repeats)?;
                if kind == MatmulKernel::MatvecPerColumn {
                    base = ms;
                }
                let gbps = wbytes / ms / 1e6;
                println!(
                    "| {name} | {n}×{k} | {} | {} | {kind:?} | {ms:.3} | {gbps:.2} | {:.0}% | {:.2} |",
                    if bt { "[N, K]" } else { "[K, N]" },
                    if f16 { "f16" } else { "f32" },
                    100.0 * gbps / bw,
                    base / ms
                );
                mv.push(json!({"shape": name, "n": n, "k": k, "b_t": bt, "f16": f16,
                    "kernel": format!("{kind:?}"), "ms": ms, "weight_gbps": gbps, "copy_share": gbps / bw}));
            }
        }
    }

    Ok(mv)
}

/// Dispatches per decode step by kernel, before issue 15 (per-column matvec, nothing fused
/// into it) and now; printed, and returned as JSON.
pub fn dispatch_table(model: &Model) -> Result<Value> {
    let cfg = &model.cfg;
    // Dispatches per decode step, by kernel: before issue 15 (per-column matvec, nothing
    // fused into it) and now.
    println!("\n## Dispatches per decode step (batch 1, nothing captured)\n");
    set_matvec_baseline(model, true);
    let before = decode_dispatches(model, 1, &HookFilter::none())?;
    set_matvec_baseline(model, false);
    let counts = decode_dispatches(model, 1, &HookFilter::none())?;
    let (total_before, total): (u64, u64) = (before.values().sum(), counts.values().sum());
    let layers = cfg.n_layer as u64;
    println!(
        "{total} dispatches per decode step ({total_before} before issue 15), {layers} layers\n"
    );
    println!("| kernel | before: per step | per layer | now: per step | per layer |");
    println!("|---|---:|---:|---:|---:|");
    let per_layer = |c: u64| {
        if c >= layers && c % layers == 0 {
            format!("{}", c / layers)
        } else {
            "–".into()
        }
    };
    let labels: std::collections::BTreeSet<&str> =
        before.keys().chain(counts.keys()).copied().collect();
    for label in labels {
        let (b, c) = (
            before.get(label).copied().unwrap_or(0),
            counts.get(label).copied().unwrap_or(0),
        );
        println!(
            "| {label} | {b} | {} | {c} | {} |",
            per_layer(b),
            per_layer(c)
        );
    }
    println!("| **all** | {total_before} | | {total} | |");
    Ok(json!({"total": total, "by_kernel": counts,
        "total_before": total_before, "by_kernel_before": before}))
}
