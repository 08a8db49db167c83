//! Perplexity against transformers' own loss, and the corpus-mean ablation.

mod common;

use common::*;
use outlier_probe::corpus::{nll, windows};
use outlier_probe::hooks::HookFilter;
use outlier_probe::intervene::Spec;
use outlier_probe::ppl::{perplexity, resolve};

#[test]
fn perplexity_equals_the_reference_logits() {
    let fx = "gpt2-odd-c";
    let model = load(fx);
    let refs: Vec<_> = (0..3).map(|k| reference(fx, k)).collect();
    let (mut s, mut n) = (0.0, 0);
    for r in &refs {
        let (a, b) = nll(&r.tensors["logits"], &r.tokens);
        s += a;
        n += b;
    }
    let want = (s / n as f64).exp();
    let wins: Vec<Vec<u32>> = refs.iter().map(|r| r.tokens.clone()).collect();
    for batch in [1, 3] {
        let got = perplexity(&model, &wins, batch, &[], None, "plain", None).unwrap();
        assert_eq!(got.tokens, n);
        assert!(
            (got.ppl / want - 1.0).abs() < 1e-5,
            "batch {batch}: {} vs {want}",
            got.ppl
        );
    }
}

/// Perplexity against exp(transformers' float32 loss), relative (measured worst 2.0e-5, SmolLM2,
/// where transformers' float32 loss is itself 1.6e-5 from its float64 one).
const PPL_TOL: f64 = 1e-4;
/// Perplexity against exp(the float64 model's loss), relative (measured worst 2.6e-6).
const PPL_F64_TOL: f64 = 1e-5;

/// One reference of tools/reference/make_ppl_fixtures.py: the windows it cut from
/// tests/fixtures/ppl/corpus.txt and transformers' `model(w, labels=w).loss` on each.
#[derive(serde::Deserialize)]
struct PplFixture {
    seq_len: usize,
    seqs: usize,
    from: f64,
    windows: Vec<Vec<u32>>,
    loss: Vec<f64>,
    loss_f64: Vec<f64>,
    tokens: usize,
    ppl: f64,
    ppl_f64: f64,
}

/// The crate cuts the same windows as the reference script, and its perplexity over each window
/// alone, over all of them (the windows' sums of NLL) and over all of them in batches of 3 (a
/// padded batch) equals exp(transformers' loss) within `PPL_TOL` relative and exp(the float64
/// loss) within `PPL_F64_TOL`. Returns the worst relative difference from each.
fn assert_ppl_matches_transformers(model: &outlier_probe::model::Model, name: &str) -> [f64; 2] {
    let dir = fixtures_dir().join("ppl");
    let path = dir.join(format!("{name}.json"));
    let fx: PplFixture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tok = model.tokenizer.as_ref().expect("a tokenizer");
    let wins = windows(tok, &dir.join("corpus.txt"), fx.seq_len, fx.seqs, fx.from).unwrap();
    assert_eq!(
        wins, fx.windows,
        "{name}: windows differ from the reference script's"
    );
    assert_eq!(fx.loss.len(), wins.len(), "{name}: one loss per window");
    assert_eq!(
        fx.loss_f64.len(),
        wins.len(),
        "{name}: one float64 loss per window"
    );
    let mut worst = [0f64; 2];
    let mut check = |what: String, got: f64, want: f64, want64: f64| {
        let rel = (got / want - 1.0).abs();
        let rel64 = (got / want64 - 1.0).abs();
        eprintln!(
            "{name} {what}: ppl {got:.6} vs transformers {want:.6} (rel diff {rel:.2e}), \
             float64 {want64:.6} ({rel64:.2e})"
        );
        assert!(
            rel <= PPL_TOL,
            "{name} {what}: ppl {got} vs transformers {want}"
        );
        assert!(
            rel64 <= PPL_F64_TOL,
            "{name} {what}: ppl {got} vs float64 {want64}"
        );
        worst = [worst[0].max(rel), worst[1].max(rel64)];
    };
    let (mut sum, mut n) = (0.0, 0);
    for (k, w) in wins.iter().enumerate() {
        let got = perplexity(model, std::slice::from_ref(w), 1, &[], None, "w", None).unwrap();
        let (want, want64) = (fx.loss[k].exp(), fx.loss_f64[k].exp());
        check(format!("window {k}"), got.ppl, want, want64);
        sum += got.nll_sum;
        n += got.tokens;
    }
    assert_eq!(n, fx.tokens, "{name}: predicted tokens");
    check(
        "all windows".into(),
        (sum / n as f64).exp(),
        fx.ppl,
        fx.ppl_f64,
    );
    let got = perplexity(model, &wins, 3, &[], None, "plain", None).unwrap();
    assert_eq!(got.tokens, fx.tokens, "{name}: predicted tokens, batch 3");
    check("all windows, batch 3".into(), got.ppl, fx.ppl, fx.ppl_f64);
    eprintln!(
        "{name}: worst relative perplexity difference {:.2e} from transformers (bound \
         {PPL_TOL:.0e}), {:.2e} from float64 (bound {PPL_F64_TOL:.0e})",
        worst[0], worst[1]
    );
    worst
}

#[test]
fn perplexity_equals_transformers_loss() {
    for fx in ["gpt2-odd-c", "llama-odd-a"] {
        assert_ppl_matches_transformers(&load(fx), fx);
    }
}

/// The real model (needs the SmolLM2 GGUF, see tests/smollm2.rs).
#[test]
fn smollm2_perplexity_equals_transformers_loss() {
    let m = outlier_probe::model::Model::load(ctx(), &smollm2_gguf()).unwrap();
    assert_ppl_matches_transformers(&m, "smollm2");
}

#[test]
fn mean_edits_use_corpus_means_and_change_the_result() {
    let fx = "gpt2-odd-b";
    let model = load(fx);
    let tok = model.tokenizer.as_ref().unwrap();
    let corpus = fixtures_dir().join("../../tools/reference/README.md");
    let wins = windows(tok, &corpus, 24, 3, 0.0).unwrap();
    assert_eq!(wins.len(), 3);
    assert!(wins.iter().all(|w| w.len() == 24));
    let spec = Spec::parse("blocks.1.hook_resid_post:ch=4,60:pos=0,1:mean").unwrap();
    let (edits, knock) = resolve(&model, &[spec], &wins, 2).unwrap();
    assert!(knock.is_none());
    assert_eq!(edits.len(), 1);
    // The same means, taken on the host from plain captures.
    let mut sums = [0f64; 2];
    for w in &wins {
        let c = model
            .capture(w, &HookFilter::parse("blocks.1.hook_resid_post").unwrap())
            .unwrap();
        let t = &c["blocks.1.hook_resid_post"];
        for p in [0, 1] {
            sums[0] += t.row(p)[4] as f64;
            sums[1] += t.row(p)[60] as f64;
        }
    }
    for (k, sum) in sums.iter().enumerate() {
        let want = (sum / 6.0) as f32;
        assert!(
            (edits[0].values[k] - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{k}: {} vs {want}",
            edits[0].values[k]
        );
    }
    let plain = perplexity(&model, &wins, 2, &[], None, "plain", None).unwrap();
    let meaned = perplexity(&model, &wins, 2, &edits, None, "mean", None).unwrap();
    let zero = resolve(
        &model,
        &[Spec::parse("blocks.1.hook_resid_post:ch=4,60:pos=0,1:zero").unwrap()],
        &wins,
        2,
    )
    .unwrap();
    let zeroed = perplexity(&model, &wins, 2, &zero.0, None, "zero", None).unwrap();
    assert!(plain.ppl != meaned.ppl && plain.ppl != zeroed.ppl && meaned.ppl != zeroed.ppl);
}

#[test]
fn corpus_errors_are_clear() {
    let model = load("gpt2-odd-a");
    let tok = model.tokenizer.as_ref().unwrap();
    let e = windows(tok, std::path::Path::new("/no/corpus.txt"), 16, 2, 0.0).unwrap_err();
    assert!(format!("{e:#}").contains("/no/corpus.txt"));
    let readme = fixtures_dir().join("gpt2-odd-a/prompts.json");
    let e = windows(tok, &readme, 100000, 1, 0.0).unwrap_err();
    assert!(format!("{e:#}").contains("fewer than --seq-len"), "{e:#}");
    assert!(windows(tok, &readme, 1, 1, 0.0).is_err());
}
