//! Every selector a user types selects something, or the command fails naming it (issue 11);
//! `knockout:…:layers=` acts in the listed layers only (cases/knockout-layers, values from
//! transformers on the same windows).

mod common;

use common::*;

fn case_dir() -> std::path::PathBuf {
    fixtures_dir().join("cases/knockout-layers")
}

fn ppl_args<'a>(model: &'a str, corpus: &'a str, rows: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "ppl",
        "--model",
        model,
        "--corpus",
        corpus,
        "--seq-len",
        "32",
        "--seqs",
        "2",
    ];
    for r in rows {
        a.extend(["--intervene", r]);
    }
    a
}

#[test]
fn knockout_layers_match_transformers() {
    let dir = case_dir();
    let model = dir.join("gpt2");
    let corpus = dir.join("corpus.txt");
    let json = TempDir::new("knockout-layers");
    let out = json.0.join("ppl.json");
    let (m, c, o) = (
        model.to_str().unwrap(),
        corpus.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    // transformers 5.24, eager f32, the same two windows of 32 tokens.
    let want = [
        ("knockout:keys=0:layers=0", 1.006819),
        ("knockout:keys=0:layers=1", 1.039109),
        ("knockout:keys=0:layers=0,1", 1.082842),
        ("knockout:keys=0", 1.082842),
        // Two rules adding up to the same knockout as layers=0,1.
        (
            "knockout:keys=0:layers=0;knockout:keys=0:layers=1",
            1.082842,
        ),
    ];
    let rows: Vec<&str> = want.iter().map(|w| w.0).collect();
    let mut args = ppl_args(m, c, &rows);
    args.extend(["--json", o]);
    let (ok, stdout, err) = run(&args);
    assert!(ok, "ppl failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1 + want.len());
    let plain = rows[0]["ppl"].as_f64().unwrap();
    assert!(plain.is_finite() && plain > 1.0, "plain perplexity {plain}");
    for (row, (spec, ratio)) in rows[1..].iter().zip(want) {
        assert_eq!(row["label"].as_str().unwrap(), spec);
        let got = row["ppl"].as_f64().unwrap() / plain;
        assert!(
            (got / ratio - 1.0).abs() < 1e-4,
            "{spec}: × plain {got:.6}, transformers {ratio:.6}"
        );
    }
}

#[test]
fn selectors_that_select_nothing_are_refused() {
    let dir = case_dir();
    let model = dir.join("gpt2");
    let corpus = dir.join("corpus.txt");
    let (m, c) = (model.to_str().unwrap(), corpus.to_str().unwrap());
    let tmp = TempDir::new("selectors");
    let out = tmp.0.join("x.safetensors");
    let o = out.to_str().unwrap();
    // cases/hook-typo: each pattern that matches nothing, even next to one that matches.
    for (hooks, needles) in [
        (
            "logits,blocks.0.hook_resid_psot",
            vec![
                "'blocks.0.hook_resid_psot'",
                "did you mean 'blocks.0.hook_resid_post'",
            ],
        ),
        (
            "logits,blocks.5.hook_resid_post",
            vec!["'blocks.5.hook_resid_post'", "blocks.0 to blocks.1"],
        ),
        (
            "blocks.0.attn.hook_rot_q,logits",
            vec!["'blocks.0.attn.hook_rot_q'", "Llama"],
        ),
        (
            "blocks.0.hook_resid_psot,blocks.*.mlp.hook_gate",
            vec!["'blocks.0.hook_resid_psot'", "'blocks.*.mlp.hook_gate'"],
        ),
    ] {
        let (ok, _, err) = run(&[
            "capture",
            "--model",
            m,
            "--prompt",
            "Summer is warm.",
            "--hooks",
            hooks,
            "--out",
            o,
        ]);
        assert!(!ok, "capture --hooks {hooks} should fail");
        for n in needles {
            assert!(
                err.contains(n),
                "--hooks {hooks}: stderr lacks {n:?}: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "--hooks {hooks}: a file was written");
    }
    // Duplicates and overlapping globs are fine.
    let (ok, _, err) = run(&[
        "capture",
        "--model",
        m,
        "--prompt",
        "Summer is warm.",
        "--hooks",
        "logits,logits,blocks.*.hook_resid_post,blocks.1.hook_resid_post",
        "--out",
        o,
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("3 selected"), "{err}");

    // ppl --intervene: layers, channels, positions and keys out of range, globs matching nothing,
    // parts that do not belong — each an error before any pass, naming the value and the limit.
    for (spec, needles) in [
        ("knockout:keys=0:layers=7", vec!["layer 7", "2 layers"]),
        ("knockout:keys=0:layers=0,2", vec!["layer 2", "2 layers"]),
        ("knockout:keys=32", vec!["key 32", "32 tokens"]),
        ("knockout:keys=31", vec!["key 31", "no later query"]),
        (
            "blocks.0.hook_resid_post:ch=64:zero",
            vec!["channel 64", "64 channels"],
        ),
        (
            "blocks.0.hook_resid_post:ch=1:pos=0,40:zero",
            vec!["position 40", "32 tokens"],
        ),
        (
            "blocks.0.hook_resid_post:ch=1:pos=32:mean",
            vec!["position 32", "32 tokens"],
        ),
        (
            "blocks.3.hook_resid_post:ch=1:zero",
            vec!["'blocks.3.hook_resid_post'"],
        ),
        ("blocks.0.mlp.hook_post:ch=1:layers=1:zero", vec!["layers"]),
        ("knockout:keys=0:pos=1", vec!["only keys= and layers="]),
        (
            "knockout:keys=0;blocks.0.hook_resid_psot:ch=1:zero",
            vec!["did you mean 'blocks.0.hook_resid_post'"],
        ),
    ] {
        let (ok, stdout, err) = run(&ppl_args(m, c, &["knockout:keys=0", spec]));
        assert!(!ok, "{spec} should fail: {stdout}");
        for n in needles {
            assert!(err.contains(n), "{spec}: stderr lacks {n:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        // Refused before the plain pass: nothing printed.
        assert!(stdout.is_empty(), "{spec}: {stdout}");
    }
}
