//! Perplexity and the corpus-mean ablation.

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
