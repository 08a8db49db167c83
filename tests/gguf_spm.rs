//! The SentencePiece (`tokenizer.ggml.model = "llama"`) GGUF tokenizer against transformers'
//! `AutoTokenizer.from_pretrained(dir, gguf_file=...)` (fixtures in tests/fixtures/spm/, written
//! by tools/reference/make_spm_fixtures.py).
//!
//! The `synthetic_*` tests need only the committed fixtures: three tiny SentencePiece GGUFs
//! (`llama`, `llama` with add_space_prefix = false and add_bos_token = false, `gemma3`) and
//! transformers' ids, decoded texts and BOS for ~45 strings each. The `gemma3_*` tests read the
//! real Gemma-3-270M GGUF (not committed; fetched by tests/common like SmolLM2, or $GEMMA3_GGUF) and compare with the ids transformers
//! gives for ~70 strings (the fixture holds ids and texts only, no vocabulary).

use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;

use common::gemma3_gguf as gemma_gguf_path;
use outlier_probe::gguf::GgufFile;
use outlier_probe::gguf_tokenizer::{load, special_tokens, tokenizer_from_gguf};
use outlier_probe::tokenizer::{TextStream, Tokenizer};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm")
}

fn json(name: &str) -> Value {
    let p = fixtures().join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The text a [`TextStream`] prints for `ids`, one push at a time; panics when a piece holds a
/// U+FFFD the full decode does not have (a character printed before its bytes were all there).
fn streamed(tok: &Tokenizer, ids: &[u32], full: &str) -> String {
    let mut s = TextStream::new(tok);
    let mut out = String::new();
    for &id in ids {
        let piece = s.push(id).unwrap();
        assert!(
            !piece.contains('\u{FFFD}') || full.contains('\u{FFFD}'),
            "stream of {ids:?} printed {piece:?}"
        );
        out.push_str(&piece);
    }
    out.push_str(&s.finish().unwrap());
    out
}

/// Every case of `reference` (one file's entry in a fixture) against `tok`; returns the
/// failures, one line each.
fn check_cases(tok: &Tokenizer, reference: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let got = tok.encode(text).unwrap();
        if got != want {
            failures.push(format!("{text:?}: ids {got:?}, transformers {want:?}"));
            continue;
        }
        let plain = tok.encode_with_special(text, false).unwrap();
        if plain != ids(&case["ids_plain"]) {
            failures.push(format!("{text:?}: ids without special tokens {plain:?}"));
        }
        let decoded = case["decoded"].as_str().unwrap();
        let got_text = tok.decode(&want).unwrap();
        if got_text != decoded {
            failures.push(format!(
                "{text:?}: decode {got_text:?}, transformers {decoded:?}"
            ));
        }
        let special = case["decoded_special"].as_str().unwrap();
        let got_special = tok.decode_with_special(&want, true).unwrap();
        if got_special != special {
            failures.push(format!(
                "{text:?}: decode with special tokens {got_special:?}, transformers {special:?}"
            ));
        }
        let stream = streamed(tok, &want, decoded);
        if stream != decoded {
            failures.push(format!("{text:?}: streamed {stream:?}, want {decoded:?}"));
        }
    }
    failures
}

fn synthetic(name: &str) -> (Tokenizer, Value) {
    let path = fixtures().join(format!("{name}.gguf"));
    let g = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let tok = load(&g).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    (tok, json("expected.json")[name].clone())
}

#[test]
fn synthetic_files_match_transformers() {
    let mut failures = Vec::new();
    let mut n = 0;
    for name in ["spm-llama", "spm-llama-nospace", "spm-gemma"] {
        let (tok, reference) = synthetic(name);
        n += reference["cases"].as_array().unwrap().len();
        failures.extend(
            check_cases(&tok, &reference)
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
    }
    eprintln!("{n} strings checked");
    assert!(n >= 120, "{n}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn synthetic_bos_follows_the_file() {
    // No add_bos_token key in a SentencePiece file: a BOS, as transformers and llama.cpp add.
    let (tok, _) = synthetic("spm-llama");
    assert_eq!(tok.special_prefix(), &[1]);
    assert!(tok.special_suffix().is_empty());
    assert!(tok.describe_special(true).contains("<s> (id 1)"));
    assert!(
        tok.special_origin()
            .contains("without tokenizer.ggml.add_bos_token"),
        "{}",
        tok.special_origin()
    );
    let (tok, _) = synthetic("spm-llama-nospace");
    assert!(tok.special_prefix().is_empty());
    let (tok, _) = synthetic("spm-gemma");
    assert_eq!(tok.special_prefix(), &[2]);
    assert!(tok.special_origin().contains("add_bos_token = true"));
    // Exactly one BOS: the text's own `<bos>` is kept as a second one, as transformers does.
    assert_eq!(tok.encode("<bos>hi").unwrap()[..2], [2, 2]);
    assert_eq!(
        tok.encode("hi")
            .unwrap()
            .iter()
            .filter(|&&i| i == 2)
            .count(),
        1
    );
}

#[test]
fn synthetic_byte_fallback_and_specials_stream_as_decoded() {
    for name in ["spm-llama", "spm-gemma"] {
        let (tok, _) = synthetic(name);
        // Characters the tiny vocabulary lacks come out as <0xXX> tokens; decoding and
        // streaming must put the bytes back together.
        for text in ["東京 🙂 Ωmega", "日本語のテキスト", "👨‍👩‍👧", "x\u{10FFFF}y"]
        {
            let ids = tok.encode_with_special(text, false).unwrap();
            assert!(ids.len() > text.chars().count(), "{name} {text:?}: {ids:?}");
            assert_eq!(tok.decode(&ids).unwrap(), text, "{name}");
            assert_eq!(streamed(&tok, &ids, text), text, "{name}");
        }
        // Special tokens between spaces: streaming must not lose a space to the decoder's
        // leading-space strip when the context token is a special one (decoded as nothing).
        for text in [
            "x <unk> <s> </s> y",
            "`<unk> <s> </s>` z",
            "   <unk>  a",
            "<s> <s>  b",
        ] {
            let ids = tok.encode(text).unwrap();
            let full = tok.decode(&ids).unwrap();
            assert_eq!(streamed(&tok, &ids, &full), full, "{name} {text:?}");
        }
    }
}

#[test]
fn other_tokenizer_models_are_refused() {
    // spm-llama.gguf with its tokenizer.ggml.model value "llama" overwritten with "unigr".
    let dir = std::env::temp_dir().join(format!("spm-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = std::fs::read(fixtures().join("spm-llama.gguf")).unwrap();
    let key = b"tokenizer.ggml.model";
    let k = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let v = k + key.len() + 4 + 8; // then the value type (u32) and the string length (u64)
    assert_eq!(&bytes[v..v + 5], b"llama");
    bytes[v..v + 5].copy_from_slice(b"unigr");
    let p = dir.join("unigr.gguf");
    std::fs::write(&p, &bytes).unwrap();
    let e = format!(
        "{:#}",
        tokenizer_from_gguf(&GgufFile::open(&p).unwrap()).unwrap_err()
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        e.contains("tokenizer.ggml.model") && e.contains("\"unigr\"") && e.contains("unigr.gguf"),
        "{e}"
    );
}

#[test]
fn gemma3_270m_matches_transformers() {
    let path = gemma_gguf_path();
    let t0 = Instant::now();
    let g = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let opened = t0.elapsed();
    let t1 = Instant::now();
    let tok = load(&g).unwrap_or_else(|e| panic!("{e:#}"));
    let built = t1.elapsed();
    eprintln!("GGUF opened in {opened:?}, tokenizer built in {built:?}");
    assert!(built.as_secs_f64() < 10.0, "building took {built:?}");
    assert_eq!(tok.vocab_size(), 262_144);
    let sp = special_tokens(&g).unwrap();
    assert_eq!((sp.bos, sp.eos, sp.add_bos), (Some(2), Some(1), Some(true)));
    assert_eq!(tok.special_prefix(), &[2], "Gemma-3 needs its BOS");
    let reference = json("gemma3-270m-ids.json");
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 60);
    let round_trips = cases.iter().filter(|c| c["decoded"] == c["text"]).count();
    eprintln!(
        "{} strings; decode(encode(s)) == s for {round_trips} of them",
        cases.len()
    );
    let failures = check_cases(&tok, &reference);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let ids = tok.encode("The capital of France is").unwrap();
    assert_eq!(ids, [2, 818, 5279, 529, 7001, 563]);
}
