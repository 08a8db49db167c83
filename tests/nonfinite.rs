//! Non-finite values never pass silently: models crafted (in a temporary directory, from the
//! small fixtures) to produce NaN or inf make every command fail, naming the first hook where
//! they appear; --f16-weights refuses weights past the f16 range; normal models pass.

mod common;

use std::path::Path;

use common::*;
use outlier_probe::finite::NonFinite;
use outlier_probe::hooks::HookFilter;
use outlier_probe::intervene::Knockout;
use outlier_probe::model::{ForwardOptions, LoadOptions, LogitsMode, Model};
use safetensors::tensor::{Dtype, TensorView};

/// One change to a weight tensor: its name in model.safetensors and what to do to its values
/// (row-major, as stored).
type Edit<'a> = (&'a str, &'a dyn Fn(&mut [f32]));

/// A copy of fixture `fx` in a temporary directory with `edits` applied; edited tensors are
/// written as f32, all others byte for byte.
fn crafted(fx: &str, tag: &str, edits: &[Edit]) -> TempDir {
    let src = fixtures_dir().join(fx);
    let dir = TempDir::new(&format!("nonfinite-{tag}"));
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.0.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, v) in st.tensors() {
        let Some((_, edit)) = edits.iter().find(|(n, _)| *n == name) else {
            out.push((name, v.dtype(), v.shape().to_vec(), v.data().to_vec()));
            continue;
        };
        let two = |c: &[u8]| [c[0], c[1]];
        let mut x: Vec<f32> = match v.dtype() {
            Dtype::F32 => v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::BF16 => v
                .data()
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes(two(c)).to_f32())
                .collect(),
            other => panic!("{name}: dtype {other:?} not handled by the test"),
        };
        edit(&mut x);
        let raw = x.iter().flat_map(|f| f.to_le_bytes()).collect();
        out.push((name, Dtype::F32, v.shape().to_vec(), raw));
    }
    for (n, _) in edits {
        assert!(out.iter().any(|o| o.0 == *n), "{fx} has no tensor {n}");
    }
    let views: Vec<(String, TensorView)> = out
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let data = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.0.join("model.safetensors"), data).unwrap();
    dir
}

fn load_dir(dir: &Path) -> Model {
    Model::load(ctx(), dir).unwrap_or_else(|e| panic!("loading {}: {e:#}", dir.display()))
}

/// The `NonFinite` inside a forward pass's error.
fn nonfinite(r: anyhow::Result<impl std::fmt::Debug>) -> NonFinite {
    let e = r.expect_err("non-finite values must be an error");
    e.downcast_ref::<NonFinite>()
        .unwrap_or_else(|| panic!("not a NonFinite error: {e:#}"))
        .clone()
}

fn corpus() -> String {
    fixtures_dir()
        .join("../../tools/reference/README.md")
        .to_str()
        .unwrap()
        .to_string()
}

/// GPT-2 (n_embd 72, MLP 288) with one NaN weight: c_fc of layer 1, input 0 → output 5.
/// Every command fails and names blocks.1.mlp.hook_pre, channel 5, from position 0 on —
/// whether that hook is captured, something after it is, or nothing is (then the logits are
/// checked and a diagnostic pass names the hook).
#[test]
fn every_command_names_the_first_hook_of_a_nan() {
    let nan = |w: &mut [f32]| w[5] = f32::NAN;
    let m = crafted("gpt2-odd-a", "nan", &[("h.1.mlp.c_fc.weight", &nan)]);
    let model = m.0.to_str().unwrap();
    let t = TempDir::new("nonfinite-out");
    let out = |f: &str| t.0.join(f).to_str().unwrap().to_string();
    let (cap, probe_dir) = (out("cap.safetensors"), out("probe"));
    let corpus = corpus();
    // Batched commands (ppl, compress) name the sequence too: "(sequence 0, position 0, …".
    let want = [
        "non-finite values first appear at blocks.1.mlp.hook_pre (",
        "position 0, channel 5: NaN; ",
    ];
    let m_ = ["--model", model];
    let runs: Vec<Vec<&str>> = vec![
        vec!["generate", "--prompt", "Summer is", "-n", "4"],
        vec![
            "capture",
            "--prompt",
            "Summer is",
            "--out",
            &cap,
            "--hooks",
            "logits",
        ],
        vec![
            "capture",
            "--prompt",
            "Summer",
            "--out",
            &cap,
            "--hooks",
            "blocks.1.mlp.*",
        ],
        vec![
            "capture",
            "--prompt",
            "Summer",
            "--out",
            &cap,
            "--hooks",
            "blocks.1.hook_resid_post",
        ],
        vec!["probe", "--prompt", "Summer is warm.", "--out", &probe_dir],
        vec!["ppl", "--corpus", &corpus, "--seqs", "2", "--seq-len", "16"],
        vec![
            "compress",
            "--corpus",
            &corpus,
            "--seqs",
            "2",
            "--seq-len",
            "16",
            "--schemes",
            "w8",
            "--out",
            &probe_dir,
        ],
    ];
    for args in runs {
        let mut a = vec![args[0]];
        a.extend(m_);
        a.extend(&args[1..]);
        let (ok, _, err) = run(&a);
        assert!(!ok, "{a:?} should fail");
        for w in want {
            assert!(err.contains(w), "{a:?}: stderr lacks {w:?}:\n{err}");
        }
        if a[0] == "compress" {
            assert!(err.contains("the uncompressed model"), "{err}");
        }
        assert!(!err.contains("panicked"), "{a:?} panicked: {err}");
    }
    assert!(!Path::new(&cap).exists(), "a failed capture wrote its file");
}

/// A realistic overflow: two weights of 1e30 (layer 0's ln_2 gain of channel 3 and c_fc's
/// weight from it to channel 5) make 1e60 in f32, inf. ln2.hook_normalized is 1e30 there —
/// large but finite, so not flagged — and hook_pre is where inf first appears, in a batch too.
#[test]
fn an_overflow_is_named_where_it_happens() {
    let ln = |w: &mut [f32]| w[3] = 1e30;
    let fc = |w: &mut [f32]| w[3 * 288 + 5] = 1e30;
    let m = crafted(
        "gpt2-odd-a",
        "1e30",
        &[("h.0.ln_2.weight", &ln), ("h.0.mlp.c_fc.weight", &fc)],
    );
    let model = load_dir(&m.0);
    let toks = reference("gpt2-odd-a", 0).tokens;
    let e = nonfinite(model.logits(&toks));
    assert_eq!(
        (e.hook.as_str(), e.at.as_str(), e.sequence),
        ("blocks.0.mlp.hook_pre", "position 0, channel 5", None),
        "{e}"
    );
    assert!(e.value.is_infinite(), "{e}");
    let caps = model
        .capture(
            &toks,
            &HookFilter::parse("blocks.0.ln2.hook_normalized").unwrap(),
        )
        .unwrap();
    let big = caps["blocks.0.ln2.hook_normalized"].data[3].abs();
    assert!(big > 1e28 && big.is_finite(), "{big}");
    // Batch of two: the first sequence is named; positions count from the KV cache's start.
    let mut sess = model.session(2, toks.len()).unwrap();
    let (a, b) = (&toks[..3], &toks[..]);
    let e = nonfinite(model.forward(&mut sess, &[a, b], &ForwardOptions::default()));
    assert_eq!(
        (e.hook.as_str(), e.at.as_str(), e.sequence),
        ("blocks.0.mlp.hook_pre", "position 0, channel 5", Some(0)),
        "{e}"
    );
    assert_eq!(
        sess.lens(),
        [0, 0],
        "a failed pass must not advance the cache"
    );
}

/// Llama with an inf in up_proj (row 7 = MLP channel 7): named by its TransformerLens name
/// mlp.hook_pre_linear — not mlp.hook_pre (the gate, finite), which comes first in the same
/// matmul — including when the hook is selected by its old alias.
#[test]
fn llama_inf_names_hook_pre_linear() {
    let inf = |w: &mut [f32]| w[7 * 96] = f32::INFINITY;
    let m = crafted(
        "llama-odd-a",
        "llama-inf",
        &[("model.layers.0.mlp.up_proj.weight", &inf)],
    );
    let model = load_dir(&m.0);
    let toks = reference("llama-odd-a", 0).tokens;
    let want = ("blocks.0.mlp.hook_pre_linear", "position 0, channel 7");
    let e = nonfinite(model.logits(&toks));
    assert_eq!((e.hook.as_str(), e.at.as_str()), want, "{e}");
    for filter in ["blocks.1.hook_resid_pre", "blocks.0.mlp.hook_up"] {
        let f = HookFilter::parse(filter).unwrap();
        let e = nonfinite(model.capture(&toks, &f));
        assert_eq!((e.hook.as_str(), e.at.as_str()), want, "{filter}: {e}");
    }
}

/// The same models unedited pass everything, and masked attention scores (−inf, including
/// knocked-out keys) are not mistaken for overflow. The old Llama names select the same tensors.
#[test]
fn normal_models_pass() {
    let m = crafted("gpt2-odd-a", "same", &[]);
    let model = load_dir(&m.0);
    let toks = reference("gpt2-odd-a", 0).tokens;
    assert!(model
        .logits(&toks)
        .unwrap()
        .data
        .iter()
        .all(|v| v.is_finite()));
    let mut sess = model.session(1, toks.len()).unwrap();
    let opts = ForwardOptions {
        logits: LogitsMode::All,
        capture: HookFilter::all(),
        knockout: Some(Knockout::new(vec![0], None)),
        ..Default::default()
    };
    let out = model.forward(&mut sess, &[&toks], &opts).unwrap();
    let s = &out.captures[0]["blocks.1.attn.hook_attn_scores"];
    let t = toks.len();
    // Head 0, query 2: key 0 knocked out, keys 3.. in the future.
    assert_eq!(s.data[2 * t], f32::NEG_INFINITY);
    assert_eq!(s.data[2 * t + 3], f32::NEG_INFINITY);
    assert!(s.data[2 * t + 1].is_finite());

    let ll = load("llama-odd-a");
    let toks = reference("llama-odd-a", 0).tokens;
    let old = ll
        .capture(
            &toks,
            &HookFilter::parse("blocks.1.mlp.hook_gate,blocks.1.mlp.hook_up").unwrap(),
        )
        .unwrap();
    let new = ll
        .capture(
            &toks,
            &HookFilter::parse("blocks.1.mlp.hook_pre,blocks.1.mlp.hook_pre_linear").unwrap(),
        )
        .unwrap();
    assert_eq!(old, new);
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        ["blocks.1.mlp.hook_pre", "blocks.1.mlp.hook_pre_linear"]
    );
}

/// --f16-weights refuses a weight that would become inf in f16, naming tensor, index and value
/// (also inside Llama's stacked gate|up buffer); 65504 and −65519 (which round to ±65504) load,
/// and without --f16-weights the same model runs.
#[test]
fn f16_weights_refuse_what_f16_cannot_hold() {
    let f16 = LoadOptions {
        weights: outlier_probe::model::Weights::F16,
    };
    let big = |w: &mut [f32]| w[2 * 72 + 3] = 7e4;
    let m = crafted("gpt2-odd-a", "f16-big", &[("h.1.attn.c_proj.weight", &big)]);
    let e = Model::load_with(ctx(), &m.0, &f16)
        .err()
        .expect("must refuse");
    let e = format!("{e:#}");
    assert!(e.contains("h.1.attn.c_proj.weight[2, 3] = 7e4"), "{e}");
    assert!(
        e.contains("65504") && e.contains("without --f16-weights"),
        "{e}"
    );
    let toks = reference("gpt2-odd-a", 0).tokens;
    assert!(load_dir(&m.0).logits(&toks).is_ok());
    let (ok, _, err) = run(&[
        "--f16-weights",
        "generate",
        "--model",
        m.0.to_str().unwrap(),
        "--prompt",
        "Summer",
        "-n",
        "2",
    ]);
    assert!(
        !ok && err.contains("h.1.attn.c_proj.weight[2, 3] = 7e4"),
        "{err}"
    );

    let edge = |w: &mut [f32]| {
        w[0] = 65504.0;
        w[1] = -65519.0;
    };
    let m = crafted(
        "gpt2-odd-a",
        "f16-edge",
        &[("h.1.attn.c_proj.weight", &edge)],
    );
    assert!(Model::load_with(ctx(), &m.0, &f16).is_ok());

    let up = |w: &mut [f32]| w[96 + 2] = -1e5;
    let m = crafted(
        "llama-odd-a",
        "f16-llama",
        &[("model.layers.1.mlp.up_proj.weight", &up)],
    );
    let e = format!(
        "{:#}",
        Model::load_with(ctx(), &m.0, &f16)
            .err()
            .expect("must refuse")
    );
    assert!(
        e.contains("layers.1.mlp.up_proj.weight[1, 2] = -1e5"),
        "{e}"
    );
}

/// Perplexities past f64 with every logit finite: llama-odd-b with its LM head scaled by S, so
/// the mean NLL is S × (mean gap between the top logit and the next token's) + at most ln V.
/// On these windows the gap is 2.85 plain and 3.28 after 99% pruning, so at S = 232 only the
/// pruned model crosses ln(f64::MAX) = 709.8 nats (≥ 760 against ≤ 669), at S = 300 both do.
/// `ppl` then fails with the mean NLL; `compress` records the broken scheme as +inf with a note.
#[test]
fn perplexity_overflow_is_an_error_for_ppl_and_a_note_for_compress() {
    use outlier_probe::compress::{study, ProtectMode, Scheme};
    use outlier_probe::corpus::windows;
    use outlier_probe::ppl::{perplexity, PplOverflow};
    let scaled = |tag: &str, s: f32| {
        let f = move |w: &mut [f32]| w.iter_mut().for_each(|x| *x *= s);
        crafted("llama-odd-b", tag, &[("lm_head.weight", &f)])
    };
    let wins = |m: &Model| {
        windows(
            m.tokenizer.as_ref().unwrap(),
            Path::new(&corpus()),
            16,
            2,
            0.0,
        )
    };

    let m = scaled("ppl-300", 300.0);
    let model = load_dir(&m.0);
    let w = wins(&model).unwrap();
    let e = perplexity(&model, &w, 2, &[], None, "plain", None).unwrap_err();
    let o = e
        .downcast_ref::<PplOverflow>()
        .unwrap_or_else(|| panic!("not an overflow: {e:#}"));
    assert!(o.mean_nll > 709.8 && o.mean_nll < 1e4, "{o}");
    assert!(
        e.to_string().contains("perplexity of plain is not finite"),
        "{e}"
    );

    let m = scaled("ppl-232", 232.0);
    let schemes = Scheme::parse_list("w8,prune99").unwrap();
    let st = study(ctx(), &m.0, &wins, &schemes, &ProtectMode::None, 2, None).unwrap();
    assert!(
        st.baseline_ppl.is_finite() && st.baseline_ppl > 1e280,
        "{}",
        st.baseline_ppl
    );
    let (w8, pruned) = (&st.results[0], &st.results[1]);
    assert!(w8.ppl.is_finite() && w8.notes.is_empty(), "{w8:?}");
    assert_eq!(pruned.ppl, f64::INFINITY);
    assert_eq!(pruned.notes.len(), 1, "{pruned:?}");
    assert!(
        pruned.notes[0].starts_with(
            "plain: perplexity of prune99 is not finite: mean negative log-likelihood"
        ),
        "{:?}",
        pruned.notes
    );
}
