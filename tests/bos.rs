//! The BOS the tokenizer files ask for (tests/fixtures/cases/bos, from /work/shared/cases), in
//! prompts, corpus windows, perplexity and generation, against transformers
//! (tools/reference/make_bos_cases.py → tests/fixtures/cases/expected.json); and streamed
//! decoding of characters split across tokens.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use outlier_probe::corpus::{windows, windows_with};
use outlier_probe::generate::{generate, Sampling};
use outlier_probe::gguf::GgufFile;
use outlier_probe::gguf_tokenizer::{bytes_to_unicode, load as gguf_tokenizer};
use outlier_probe::model::Model;
use outlier_probe::tokenizer::{TextStream, Tokenizer};
use serde_json::Value;

fn cases() -> PathBuf {
    fixtures_dir().join("cases")
}

fn expected() -> Value {
    let p = cases().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn dir_tokenizer(dir: &str) -> Tokenizer {
    Tokenizer::from_file(&cases().join(dir).join("tokenizer.json")).unwrap()
}

fn gguf_tok(path: &Path) -> Tokenizer {
    gguf_tokenizer(&GgufFile::open(path).unwrap()).unwrap_or_else(|e| panic!("{e:#}"))
}

/// tiny-add-bos.gguf with its `tokenizer.ggml.add_bos_token` patched as
/// make_bos_cases.py does: `false`, renamed away (`absent`), renamed to add_eos_token (`eos`).
fn gguf_variant(name: &str, dir: &TempDir) -> PathBuf {
    let src = std::fs::read(cases().join("bos/tiny-add-bos.gguf")).unwrap();
    let key = b"tokenizer.ggml.add_bos_token";
    let at = src.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(&src[at..at + 5], &[7, 0, 0, 0, 1], "bool true expected");
    let mut b = src.clone();
    match name {
        "true" => {}
        "false" => b[at + 4] = 0,
        "absent" => b[at - key.len()..at].copy_from_slice(b"tokenizer.ggml.add_xxx_token"),
        "eos" => b[at - key.len()..at].copy_from_slice(b"tokenizer.ggml.add_eos_token"),
        _ => unreachable!("{name}"),
    }
    let p = dir.0.join(format!("{name}.gguf"));
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn case_dir_and_gguf_prompts_start_with_the_bos() {
    let e = expected();
    let prompt = e["prompt"].as_str().unwrap();
    let want = ids(&e["llama_dir"]["ids"]);
    assert_eq!(want[0], 498);
    let raw = ids(&e["llama_dir"]["ids_no_special"]);
    for tok in [
        dir_tokenizer("bos/llama-dir"),
        gguf_tok(&cases().join("bos/tiny-add-bos.gguf")),
    ] {
        assert_eq!(tok.encode(prompt).unwrap(), want);
        assert_eq!(tok.encode_with_special(prompt, true).unwrap(), want);
        assert_eq!(tok.encode_with_special(prompt, false).unwrap(), raw);
        assert_eq!(tok.special_prefix(), &[498]);
        assert!(tok.special_suffix().is_empty());
        let d = tok.describe_special(true);
        assert!(d.contains("BOS <|begin_of_text|> (id 498) added"), "{d}");
        let d = tok.describe_special(false);
        assert!(d.starts_with("no BOS added: left out"), "{d}");
        // The BOS is a special token: decoding for a reader drops it, token_str names it.
        assert_eq!(tok.decode(&want).unwrap(), prompt);
        assert_eq!(tok.token_str(498), "<|begin_of_text|>");
        // An empty prompt is the BOS alone, as transformers gives.
        assert_eq!(tok.encode("").unwrap(), vec![498]);
    }
}

#[test]
fn gguf_flags_decide_bos_and_eos_like_transformers() {
    let e = expected();
    let prompt = e["prompt"].as_str().unwrap();
    let dir = TempDir::new("bos-gguf-variants");
    for name in ["true", "false", "absent", "eos"] {
        let tok = gguf_tok(&gguf_variant(name, &dir));
        let want = ids(&e["gguf"][name]);
        assert_eq!(tok.encode(prompt).unwrap(), want, "{name}");
        let d = tok.describe_special(true);
        match name {
            "true" => assert!(d.contains("add_bos_token = true"), "{d}"),
            "false" => {
                assert!(tok.special_prefix().is_empty());
                assert!(
                    d.contains("no BOS added") && d.contains("add_bos_token = false"),
                    "{d}"
                );
            }
            "absent" => {
                assert!(tok.special_prefix().is_empty() && tok.special_suffix().is_empty());
                // llama.cpp would add one for this pre-tokenizer: the message says so.
                assert!(d.contains("no tokenizer.ggml.add_bos_token"), "{d}");
                assert!(
                    d.contains("llama.cpp adds a BOS") && d.contains("llama-bpe"),
                    "{d}"
                );
            }
            "eos" => {
                assert_eq!(tok.special_suffix(), &[499]);
                assert!(d.contains("<|end_of_text|> (id 499) appended"), "{d}");
                // --no-bos leaves every special token out.
                assert_eq!(
                    tok.encode_with_special(prompt, false).unwrap(),
                    ids(&e["llama_dir"]["ids_no_special"])
                );
            }
            _ => unreachable!(),
        }
    }
}

/// Truncation and padding stored in a tokenizer.json are off, as in transformers' default call:
/// a long prompt or corpus is never cut, nor padded.
#[test]
fn stored_truncation_and_padding_are_ignored() {
    let e = expected();
    let prompt = e["prompt"].as_str().unwrap();
    let src = cases().join("bos/llama-dir/tokenizer.json");
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    j["truncation"] = serde_json::json!(
        {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0}
    );
    j["padding"] = serde_json::json!({"strategy": {"Fixed": 32}, "direction": "Right",
        "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "!"});
    let dir = TempDir::new("bos-trunc");
    let p = dir.0.join("tokenizer.json");
    std::fs::write(&p, j.to_string()).unwrap();
    let tok = Tokenizer::from_file(&p).unwrap();
    assert_eq!(tok.encode(prompt).unwrap(), ids(&e["llama_dir"]["ids"]));
}

/// GPT-2 and the other reference fixtures add nothing: their ids stay what transformers gave.
#[test]
fn fixtures_without_a_bos_rule_are_unchanged() {
    let mut n = 0;
    for fx in [
        "gpt2-odd-a",
        "gpt2-odd-b",
        "gpt2-odd-c",
        "llama-odd-a",
        "llama-odd-b",
    ] {
        let dir = fixtures_dir().join(fx);
        let tok = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
        assert!(tok.special_prefix().is_empty() && tok.special_suffix().is_empty());
        let p: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("prompts.json")).unwrap())
                .unwrap();
        for q in p.as_array().unwrap() {
            assert_eq!(
                tok.encode(q["text"].as_str().unwrap()).unwrap(),
                ids(&q["ids"]),
                "{fx}"
            );
            n += 1;
        }
    }
    assert!(n >= 15, "{n} prompts");
    let gpt2 = Tokenizer::from_file(&fixtures_dir().join("gpt2-tokenizer.json")).unwrap();
    assert!(gpt2.special_prefix().is_empty());
    let d = gpt2.describe_special(true);
    assert!(d.starts_with("no BOS added (none asked for"), "{d}");
    // The small GGUF fixture has no add_bos_token and pre "smollm": nothing added, no llama.cpp note.
    let tiny = gguf_tok(&fixtures_dir().join("gguf/tiny.gguf"));
    assert!(tiny.special_prefix().is_empty());
    assert!(!tiny.describe_special(true).contains("llama.cpp"));
}

#[test]
fn corpus_windows_begin_with_the_bos() {
    let e = expected();
    let c = &e["corpus"];
    let tok = dir_tokenizer("bos/llama-dir");
    let path = cases().join(c["file"].as_str().unwrap());
    let (len, seqs) = (
        c["seq_len"].as_u64().unwrap() as usize,
        c["seqs"].as_u64().unwrap() as usize,
    );
    let w = windows(&tok, &path, len, seqs, 0.0).unwrap();
    let want: Vec<Vec<u32>> = c["windows"].as_array().unwrap().iter().map(ids).collect();
    assert_eq!(w, want);
    assert!(w.iter().all(|x| x.len() == len && x[0] == 498));
    // Without the BOS: seq_len text tokens, cut from the same token stream.
    let raw = ids(&c["ids_no_special"]);
    let plain = windows_with(&tok, &path, len, seqs, 0.0, false).unwrap();
    assert_eq!(plain.concat(), raw[..len * seqs].to_vec());
    // The smallest window still predicts one text token after the BOS.
    let tiny = windows(&tok, &path, 2, 3, 0.0).unwrap();
    assert_eq!(
        tiny,
        vec![vec![498, raw[0]], vec![498, raw[1]], vec![498, raw[2]]]
    );
    let err = format!("{:#}", windows(&tok, &path, 100_000, 1, 0.0).unwrap_err());
    assert!(
        err.contains("fewer than --seq-len 100000 less the BOS"),
        "{err}"
    );
    // GPT-2: no BOS, windows unchanged.
    let gpt2 = Tokenizer::from_file(&fixtures_dir().join("gpt2-tokenizer.json")).unwrap();
    assert_eq!(
        windows(&gpt2, &path, 8, 2, 0.0).unwrap().concat(),
        gpt2.encode_with_special(&std::fs::read_to_string(&path).unwrap(), false)
            .unwrap()[..16]
            .to_vec()
    );
}

/// Perplexity over BOS windows: the BOS is context, not a target; transformers' sum of
/// cross-entropies over the same windows.
#[test]
fn bos_window_perplexity_matches_transformers() {
    let e = expected();
    let c = &e["corpus"];
    let m = Model::load(ctx(), &cases().join("bos/llama-dir")).unwrap();
    let w = windows(
        m.tokenizer().unwrap(),
        &cases().join(c["file"].as_str().unwrap()),
        c["seq_len"].as_u64().unwrap() as usize,
        c["seqs"].as_u64().unwrap() as usize,
        0.0,
    )
    .unwrap();
    let r = outlier_probe::ppl::perplexity(&m, &w, 2, &[], None, "plain", None).unwrap();
    assert_eq!(r.tokens as u64, c["tokens"].as_u64().unwrap());
    let want = c["nll_sum"].as_f64().unwrap();
    assert!(
        (r.nll_sum - want).abs() <= 1e-4 * want.abs(),
        "nll sum {} vs transformers {want}",
        r.nll_sum
    );
}

#[test]
fn generation_from_bos_prompts_matches_transformers() {
    let e = expected();
    let prompt = e["prompt"].as_str().unwrap();
    let dir_model = Model::load(ctx(), &cases().join("bos/llama-dir")).unwrap();
    let gguf_model = Model::load(ctx(), &cases().join("bos/tiny-add-bos.gguf")).unwrap();
    let s = Sampling {
        max_new_tokens: 8,
        ..Default::default()
    };
    for m in [&dir_model, &gguf_model] {
        let tok = m.tokenizer().unwrap();
        let p = tok.encode(prompt).unwrap();
        assert_eq!(p, ids(&e["llama_dir"]["ids"]));
        let out = generate(m, std::slice::from_ref(&p), &s, |_, _| {}).unwrap();
        assert_eq!(out[0], ids(&e["llama_dir"]["generated"]));
        let p = tok.encode_with_special(prompt, false).unwrap();
        let out = generate(m, &[p], &s, |_, _| {}).unwrap();
        assert_eq!(out[0], ids(&e["llama_dir"]["generated_no_bos"]));
    }
}

/// Feed `ids` one at a time; the pieces, and the text once finished.
fn stream(tok: &Tokenizer, ids: &[u32]) -> (Vec<String>, String) {
    let mut s = TextStream::new(tok);
    let pieces: Vec<String> = ids.iter().map(|&t| s.push(t).unwrap()).collect();
    let rest = s.finish().unwrap();
    let all = pieces.concat() + &rest;
    (pieces, all)
}

#[test]
fn streamed_text_waits_for_whole_characters() {
    let e = expected();
    let st = &e["stream"];
    let tok = dir_tokenizer("stream-utf8/llama");
    let gen = ids(&st["generated"]);
    assert_eq!(*gen.last().unwrap(), 499, "ends with <|endoftext|>");
    let (pieces, all) = stream(&tok, &gen);
    assert_eq!(all, st["text"].as_str().unwrap());
    assert_eq!(all, "🙂 warm. Café");
    assert_eq!(all, tok.decode(&gen).unwrap(), "stream and batch agree");
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(pieces.contains(&"🙂".to_string()), "{pieces:?}");
    assert_eq!(pieces.last().unwrap(), "", "EOS prints nothing");
    assert!(tok
        .decode_with_special(&gen, true)
        .unwrap()
        .ends_with("<|endoftext|>"));
}

/// GPT-2's vocabulary: 🙂 (F0 9F 99 82) as `ðŁ` + byte 0x99 + byte 0x82, then EOS.
#[test]
fn a_four_byte_emoji_in_three_tokens_prints_once() {
    let tok = Tokenizer::from_file(&fixtures_dir().join("gpt2-tokenizer.json")).unwrap();
    let spell = bytes_to_unicode();
    let byte = |b: u8| tok.token_to_id(&spell[b as usize].to_string()).unwrap();
    let pair = tok
        .token_to_id(&[spell[0xF0], spell[0x9F]].iter().collect::<String>())
        .unwrap();
    let eos = tok.token_to_id("<|endoftext|>").unwrap();
    let hi = tok.encode("Hi").unwrap();
    let seq: Vec<u32> = hi
        .iter()
        .copied()
        .chain([pair, byte(0x99), byte(0x82)])
        .chain(tok.encode(" there").unwrap())
        .chain([eos])
        .collect();
    let (pieces, all) = stream(&tok, &seq);
    assert_eq!(all, "Hi🙂 there");
    let k = hi.len();
    assert_eq!(&pieces[k..k + 3], &["", "", "🙂"], "{pieces:?}");
    assert_eq!(pieces.last().unwrap(), "");
    // A character cut off at the end comes out as decode writes it, once finished.
    let (pieces, all) = stream(&tok, &[hi[0], pair, byte(0x99)]);
    assert_eq!(pieces[1..], ["", ""]);
    assert_eq!(all, tok.decode(&[hi[0], pair, byte(0x99)]).unwrap());
    assert!(all.ends_with('\u{FFFD}'));
    // A stray continuation byte in the middle is shown where decode shows it.
    let odd = [byte(0x82), hi[0], byte(0xC3), byte(0xA9)];
    let (_, all) = stream(&tok, &odd);
    assert_eq!(all, tok.decode(&odd).unwrap());
    assert!(all.starts_with('\u{FFFD}') && all.ends_with('é'), "{all:?}");
}
