//! The `outlier-probe` commands on the Gemma 3 fixture (head_dim ≠ d / heads, sliding windows,
//! post-norms): probe, capture, ppl with interventions, compress with protected channels.
//! Smoke tests: each runs to the end, writes what it says, and its numbers are finite; the
//! captured tensors match transformers.

mod common;

use common::*;

const FX: &str = "gemma3-odd-a";

fn model_dir() -> String {
    fixtures_dir().join(FX).to_str().unwrap().to_string()
}

fn corpus() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    root.join("data/tinyshakespeare-heldout.txt")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn gemma3_probe_writes_the_report() {
    let t = TempDir::new("gemma3-probe");
    let out = t.0.join("probe");
    let (ok, stdout, err) = run(&[
        "probe",
        "--model",
        &model_dir(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "probe failed: {err}");
    assert!(stdout.contains("down-projection"), "{stdout}");
    for f in ["report.json", "report.md", "down_proj_ratio.png"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

#[test]
fn gemma3_capture_matches_transformers() {
    let t = TempDir::new("gemma3-capture");
    let out = t.0.join("cap.safetensors");
    let (ok, _, err) = run(&[
        "capture",
        "--model",
        &model_dir(),
        "--prompt",
        "Summer is warm. Winter is cold.\n",
        "--hooks",
        "blocks.*.attn.q_norm.hook_normalized,blocks.0.attn.hook_pattern,blocks.2.ln1_post.hook_normalized,logits",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "capture failed: {err}");
    let (_, caps) = outlier_probe::capture_file::read(&out).unwrap();
    let r = reference(FX, 0);
    assert_eq!(caps.len(), 4 + 1 + 1 + 1);
    for (name, t) in &caps {
        check_close(name, t, &r.tensors[name], 1e-4);
    }
}

#[test]
fn gemma3_ppl_with_interventions() {
    let (ok, stdout, err) = run(&[
        "ppl",
        "--model",
        &model_dir(),
        "--corpus",
        &corpus(),
        "--seqs",
        "2",
        "--seq-len",
        "20",
        "--intervene",
        "blocks.*.hook_resid_post:ch=3:pos=0:zero",
        "--intervene",
        "blocks.1.attn.k_norm.hook_normalized:ch=7:mean",
        "--intervene",
        "knockout:keys=0:layers=2",
    ]);
    assert!(ok, "ppl failed: {err}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    for row in rows {
        let ppl: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(ppl.is_finite() && ppl > 1.0, "{row}");
    }
}

#[test]
fn gemma3_compress_with_protection() {
    let t = TempDir::new("gemma3-compress");
    let (ok, stdout, err) = run(&[
        "compress",
        "--model",
        &model_dir(),
        "--corpus",
        &corpus(),
        "--seqs",
        "2",
        "--seq-len",
        "20",
        "--schemes",
        "w8,a8,prune50",
        "--protect",
        "d=3,17;inner=5",
        "--out",
        t.0.to_str().unwrap(),
    ]);
    assert!(ok, "compress failed: {err}");
    assert!(stdout.contains("| `a8` |"), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.0.join("compress.json")).unwrap()).unwrap();
    let st = &j.as_array().unwrap()[0];
    let base = st["baseline_ppl"].as_f64().unwrap();
    for r in st["results"].as_array().unwrap() {
        for key in ["ppl", "ppl_protected"] {
            let v = r[key].as_f64().unwrap() / base;
            assert!(v.is_finite() && (0.5..2.0).contains(&v), "{key} {r}");
        }
    }
}
