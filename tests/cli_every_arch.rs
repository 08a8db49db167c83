//! Every command on every architecture: `generate`, `capture`, `probe`, `ppl` with interventions
//! and a knockout, and `compress` with protected channels, on one fixture of each family
//! (Hugging Face directories) and on the GGUF files llama.cpp's converter wrote for them.
//! `devices` aside, no command may be specific to one family: each run ends successfully, writes
//! what it says with finite numbers, and `capture` gives transformers' values.

mod common;

use std::path::PathBuf;

use common::*;

/// (path under tests/fixtures, the fixture whose references it reproduces).
const MODELS: &[(&str, &str)] = &[
    ("gpt2-odd-a", "gpt2-odd-a"),
    ("llama-odd-a", "llama-odd-a"),
    ("qwen2-odd-a", "qwen2-odd-a"),
    ("qwen3-odd-a", "qwen3-odd-a"),
    ("gemma3-odd-a", "gemma3-odd-a"),
    ("gpt-neox-odd-a", "gpt-neox-odd-a"),
    ("gpt-neox-odd-b", "gpt-neox-odd-b"),
    ("opt-odd-a", "opt-odd-a"),
    ("opt-odd-b", "opt-odd-b"),
    ("gguf-converted/qwen2-odd-a.f32.gguf", "qwen2-odd-a"),
    ("gguf-converted/qwen3-odd-a.f32.gguf", "qwen3-odd-a"),
    ("gpt-neox-odd-a/model-f32.gguf", "gpt-neox-odd-a"),
];

fn path(m: &str) -> String {
    fixtures_dir().join(m).to_str().unwrap().to_string()
}

fn corpus() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    root.join("data/tinyshakespeare-heldout.txt")
        .to_str()
        .unwrap()
        .to_string()
}

fn ok(what: &str, m: &str, (ok, stdout, err): (bool, String, String)) -> String {
    assert!(ok, "{what} on {m} failed:\n{err}\n{stdout}");
    stdout
}

#[test]
fn generate_on_every_architecture() {
    for (m, _) in MODELS {
        let out = ok(
            "generate",
            m,
            run(&[
                "generate",
                "--model",
                &path(m),
                "--prompt",
                "Summer is",
                "-n",
                "4",
            ]),
        );
        assert!(out.contains("Summer is"), "{m}: {out}");
    }
}

#[test]
fn capture_on_every_architecture_matches_transformers() {
    let t = TempDir::new("every-arch-capture");
    for (i, (m, fx)) in MODELS.iter().enumerate() {
        let out: PathBuf = t.0.join(format!("{i}.safetensors"));
        let r = reference(fx, 0);
        let prompts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures_dir().join(fx).join("prompts.json")).unwrap(),
        )
        .unwrap();
        let text = prompts[0]["text"].as_str().unwrap();
        ok(
            "capture",
            m,
            run(&[
                "capture",
                "--model",
                &path(m),
                "--prompt",
                text,
                "--hooks",
                "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern,logits",
                "--out",
                out.to_str().unwrap(),
            ]),
        );
        let (_, caps) = outlier_probe::capture_file::read(&out).unwrap();
        assert!(
            caps.len() >= 3,
            "{m}: {:?}",
            caps.keys().collect::<Vec<_>>()
        );
        for (name, got) in &caps {
            check_close(&format!("{m} {name}"), got, &r.tensors[name], 1e-4);
        }
    }
}

#[test]
fn probe_on_every_architecture() {
    let t = TempDir::new("every-arch-probe");
    for (i, (m, _)) in MODELS.iter().enumerate() {
        let out = t.0.join(i.to_string());
        let stdout = ok(
            "probe",
            m,
            run(&["probe", "--model", &path(m), "--out", out.to_str().unwrap()]),
        );
        assert!(stdout.contains("down-projection"), "{m}: {stdout}");
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert!(j["weights"].is_object(), "{m}: no weight analysis");
        assert!(out.join("report.md").exists(), "{m}");
    }
}

#[test]
fn ppl_with_interventions_on_every_architecture() {
    for (m, _) in MODELS {
        let stdout = ok(
            "ppl",
            m,
            run(&[
                "ppl",
                "--model",
                &path(m),
                "--corpus",
                &corpus(),
                "--seqs",
                "2",
                "--seq-len",
                "16",
                "--intervene",
                "blocks.*.hook_resid_post:ch=3:pos=0:zero",
                "--intervene",
                "blocks.0.mlp.hook_post:ch=5:mean",
                "--intervene",
                "knockout:keys=0:layers=1",
            ]),
        );
        let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), 4, "{m}: {stdout}");
        for row in rows {
            let ppl: f64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
            assert!(ppl.is_finite() && ppl > 1.0, "{m}: {row}");
        }
    }
}

#[test]
fn compress_with_protection_on_every_architecture() {
    let t = TempDir::new("every-arch-compress");
    for (i, (m, _)) in MODELS.iter().enumerate() {
        let out = t.0.join(i.to_string());
        let stdout = ok(
            "compress",
            m,
            run(&[
                "compress",
                "--model",
                &path(m),
                "--corpus",
                &corpus(),
                "--seqs",
                "2",
                "--seq-len",
                "16",
                "--schemes",
                "w8,a8,prune50",
                "--protect",
                "d=3;inner=5",
                "--out",
                out.to_str().unwrap(),
            ]),
        );
        assert!(stdout.contains("| `a8` |"), "{m}: {stdout}");
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("compress.json")).unwrap())
                .unwrap();
        let st = &j.as_array().unwrap()[0];
        assert!(st["baseline_ppl"].as_f64().unwrap().is_finite(), "{m}");
        for r in st["results"].as_array().unwrap() {
            for key in ["ppl", "ppl_protected"] {
                let v = r[key].as_f64().unwrap();
                assert!(v.is_finite() && v > 1.0, "{m}: {key} {r}");
            }
        }
    }
}

/// A hook the family does not have is an error that names it and says why: the families that
/// have it, a missing final norm, a parallel residual, OPT's projections.
#[test]
fn a_hook_the_family_lacks_says_which_families_have_it() {
    for (m, hook, why) in [
        (
            "llama-odd-a",
            "blocks.0.attn.q_norm.hook_normalized",
            "a hook of Gemma 3 and Qwen3 models",
        ),
        (
            "gpt2-odd-a",
            "blocks.0.mlp.hook_pre_linear",
            "a hook of Llama, Qwen2, Gemma 3 and Qwen3 models",
        ),
        (
            "llama-odd-a",
            "hook_pos_embed",
            "a hook of GPT-2 and OPT models",
        ),
        ("opt-odd-b", "ln_final.hook_normalized", "no final norm"),
        ("opt-odd-a", "hook_project_in", "word_embed_proj_dim"),
        (
            "gpt-neox-odd-a",
            "blocks.0.hook_resid_mid",
            "parallel residual",
        ),
    ] {
        let t = TempDir::new("every-arch-lacking");
        let (ok, _, err) = run(&[
            "capture",
            "--model",
            &path(m),
            "--prompt",
            "hi there",
            "--hooks",
            hook,
            "--out",
            t.0.join("x.safetensors").to_str().unwrap(),
        ]);
        assert!(!ok, "{m}: capturing {hook} succeeded");
        assert!(err.contains(hook) && err.contains(why), "{m} {hook}: {err}");
    }
}
