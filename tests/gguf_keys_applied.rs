//! The applied rows of the GGUF key audit (src/gguf_keys/): each key sets the config value it
//! names (geometry, per-layer arrays, RoPE, alignment, special-token ids) or changes the tokens
//! as transformers' GGUF tokenizer does; missing required keys and other architectures are
//! refused by name. CPU only; the logits are checked in tests/gguf_keys_forward.rs.

mod common;
mod gguf_writer;

use common::TempDir;
use gguf_writer::audit::*;
use gguf_writer::*;
use outlier_probe::gguf::{GgufFile, GgufValue as V};
use outlier_probe::gguf_config::from_gguf;
use outlier_probe::gguf_tokenizer::{tokenizer_from_gguf, GgufSpecialTokens};

#[test]
fn geometry_keys_are_applied() {
    let other = Geometry {
        d: 12,
        heads: 3,
        kv_heads: 3,
        ff: 20,
        layers: 3,
        vocab: 7,
        ctx: 9,
    };
    for (i, g) in [TINY, other].into_iter().enumerate() {
        let mut b = tiny_llama(g);
        b.set("llama.attention.layer_norm_rms_epsilon", V::F32(3e-6));
        let c = ok(&b, &format!("geometry-{i}"));
        assert_eq!(
            (
                c.n_embd,
                c.n_head,
                c.n_kv_head,
                c.n_inner,
                c.n_layer,
                c.vocab_size,
                c.n_positions
            ),
            (g.d, g.heads, g.kv_heads, g.ff, g.layers, g.vocab, g.ctx)
        );
        assert_eq!(c.norm_eps, 3e-6);
        assert_eq!(c.head_dim(), g.d / g.heads);
    }
    // Defaults: vocab_size from the token list, head_count_kv = head_count.
    let mut b = tiny_llama(other);
    b.remove("llama.vocab_size")
        .remove("llama.attention.head_count_kv");
    let c = ok(&b, "geometry-defaults");
    assert_eq!((c.vocab_size, c.n_kv_head), (other.vocab, other.heads));
    b.set("llama.vocab_size", V::U32(5));
    assert_eq!(ok(&b, "geometry-vocab").vocab_size, 5);
}

#[test]
fn per_layer_arrays_apply_when_uniform() {
    let mut b = tiny();
    b.set("llama.attention.head_count", u32s(&[2, 2]))
        .set("llama.attention.head_count_kv", u32s(&[1, 1]))
        .set("llama.feed_forward_length", u32s(&[12, 12]));
    let c = ok(&b, "arrays");
    assert_eq!((c.n_head, c.n_kv_head, c.n_inner), (2, 1, 12));
    for (i, key) in [
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.feed_forward_length",
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = tiny();
        b.set(key, u32s(&[1, 2]));
        refused(
            &b,
            &format!("arrays-mixed-{i}"),
            &[key, "[1, 2]", "different sizes"],
        );
        let mut b = tiny();
        b.set(key, u32s(&[2]));
        refused(
            &b,
            &format!("arrays-short-{i}"),
            &[key, "1 per-layer values for 2 blocks"],
        );
    }
}

#[test]
fn missing_required_keys_are_named() {
    for (i, key) in [
        "general.architecture",
        "llama.block_count",
        "llama.context_length",
        "llama.embedding_length",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.layer_norm_rms_epsilon",
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = tiny();
        b.remove(key);
        refused(&b, &format!("missing-{i}"), &[key, "missing"]);
    }
}

#[test]
fn unsupported_architectures_are_refused() {
    for (i, arch) in ["gpt2", "mamba", "llama4"].into_iter().enumerate() {
        let mut b = tiny();
        b.set("general.architecture", s(arch));
        refused(
            &b,
            &format!("arch-{i}"),
            &["general.architecture", arch, "not supported"],
        );
    }
}

/// A `qwen2` file is read from `qwen2.*` keys: `llama.*` ones are not its own (the first missing
/// one is named), and with its own prefix the same keys give the Llama configuration plus the
/// q/k/v biases, whose tensors are then required by name.
#[test]
fn a_second_architecture_reads_its_own_prefix() {
    let mut b = tiny();
    b.set("general.architecture", s("qwen2"));
    refused(&b, "qwen2-llama-keys", &["qwen2.block_count"]);
    let mut q = tiny();
    for (k, _) in q.kv.iter_mut() {
        *k = k.replace("llama.", "qwen2.");
    }
    q.set("general.architecture", s("qwen2"));
    refused(&q, "qwen2-no-bias", &["blk.0.attn_q.bias", "missing"]);
}

/// Keys to set on a builder.
type Edits = Vec<(&'static str, V)>;

#[test]
fn rope_keys_set_the_frequency_factors() {
    let half = (HD / 2) as usize;
    let base = tiny();
    let c = ok(&base, "rope-base");
    assert_eq!(
        (c.rope_theta, c.rope_freq_factors.clone()),
        (10000.0, vec![])
    );
    let mut b = base.clone();
    b.remove("llama.rope.freq_base");
    assert_eq!(ok(&b, "rope-theta-default").rope_theta, 10000.0);
    b.set("llama.rope.freq_base", V::F32(500.0));
    assert_eq!(ok(&b, "rope-theta").rope_theta, 500.0);
    let cases: Vec<(Edits, Vec<f32>)> = vec![
        (
            vec![("llama.rope.scaling.factor", V::F32(4.0))],
            vec![4.0; half],
        ),
        (
            vec![
                ("llama.rope.scaling.type", s("linear")),
                ("llama.rope.scaling.factor", V::F32(4.0)),
            ],
            vec![4.0; half],
        ),
        (
            vec![("llama.rope.scale_linear", V::F32(2.0))],
            vec![2.0; half],
        ),
        (vec![("llama.rope.scaling.factor", V::F32(0.0))], vec![]),
        (vec![("llama.rope.scaling.type", s("none"))], vec![]),
        (
            vec![
                ("llama.rope.scaling.type", s("none")),
                ("llama.rope.scaling.factor", V::F32(1.0)),
            ],
            vec![],
        ),
    ];
    for (i, (kv, want)) in cases.into_iter().enumerate() {
        let mut b = base.clone();
        for (k, v) in kv {
            b.set(k, v);
        }
        assert_eq!(
            ok(&b, &format!("rope-{i}")).rope_freq_factors,
            want,
            "case {i}"
        );
    }
    // rope_freqs.weight: llama.cpp's freq_factors, times a linear factor.
    let mut b = base.clone();
    b.tensor("rope_freqs.weight", &[half], vec![1.0, 2.5]);
    assert_eq!(ok(&b, "rope-freqs").rope_freq_factors, vec![1.0, 2.5]);
    b.set("llama.rope.scaling.factor", V::F32(2.0));
    assert_eq!(
        ok(&b, "rope-freqs-linear").rope_freq_factors,
        vec![2.0, 5.0]
    );
    // Refusals.
    let bad: Vec<(Edits, Vec<&str>)> = vec![
        (
            vec![("llama.rope.scaling.type", s("yarn"))],
            vec!["llama.rope.scaling.type", "\"yarn\""],
        ),
        (
            vec![("llama.rope.scaling.type", s("longrope"))],
            vec!["\"longrope\""],
        ),
        (
            vec![("llama.rope.scaling.type", s("spiral"))],
            vec!["\"spiral\""],
        ),
        (
            vec![
                ("llama.rope.scaling.type", s("none")),
                ("llama.rope.scaling.factor", V::F32(2.0)),
            ],
            vec!["contradicts", "llama.rope.scaling.factor", "= 2"],
        ),
        (
            vec![
                ("llama.rope.scaling.factor", V::F32(2.0)),
                ("llama.rope.scale_linear", V::F32(3.0)),
            ],
            vec!["llama.rope.scale_linear", "disagree"],
        ),
        (
            vec![("llama.rope.scaling.factor", V::F32(-1.0))],
            vec!["llama.rope.scaling.factor", "-1"],
        ),
        (
            vec![("llama.rope.freq_base", V::F32(0.0))],
            vec!["llama.rope.freq_base"],
        ),
    ];
    for (i, (kv, parts)) in bad.into_iter().enumerate() {
        let mut b = base.clone();
        for (k, v) in kv {
            b.set(k, v);
        }
        refused(&b, &format!("rope-bad-{i}"), &parts);
    }
    let mut b = base.clone();
    b.tensor("rope_freqs.weight", &[half + 1], vec![1.0; half + 1]);
    refused(
        &b,
        "rope-freqs-shape",
        &["rope_freqs.weight", "shape [3]", "expected [2]"],
    );
    b.tensor("rope_freqs.weight", &[half], vec![1.0, 0.0]);
    refused(&b, "rope-freqs-zero", &["rope_freqs.weight`[1] = 0"]);
}

#[test]
fn alignment_is_applied_to_the_data_offsets() {
    let base = tiny();
    let dir = TempDir::new("gguf-keys-align");
    let (p32, p64) = (dir.0.join("a32.gguf"), dir.0.join("a64.gguf"));
    base.write(&p32);
    let mut b = base.clone();
    b.set("general.alignment", V::U32(64));
    b.write(&p64);
    let (g32, g64) = (GgufFile::open(&p32).unwrap(), GgufFile::open(&p64).unwrap());
    assert_eq!((g32.alignment(), g64.alignment()), (32, 64));
    assert_eq!(g64.data_offset() % 64, 0);
    assert_ne!(g32.data_offset(), g64.data_offset());
    for t in g32.tensors() {
        assert_eq!(
            g64.tensor_info(&t.name).unwrap().offset % 64,
            0,
            "{}",
            t.name
        );
        assert_eq!(
            g32.tensor_f32(&t.name).unwrap(),
            g64.tensor_f32(&t.name).unwrap(),
            "{}",
            t.name
        );
    }
    assert_eq!(
        json(&from_gguf(&g64).unwrap()),
        json(&from_gguf(&g32).unwrap())
    );
    b.set("general.alignment", V::U32(48));
    let p48 = dir.0.join("a48.gguf");
    std::fs::write(&p48, b.bytes()).unwrap();
    let e = format!(
        "{:#}",
        GgufFile::open(&p48)
            .err()
            .expect("alignment 48 must be refused")
    );
    assert!(e.contains("general.alignment") && e.contains("48"), "{e}");
}

#[test]
fn special_token_ids_apply_and_must_be_integers() {
    let mut b = tiny();
    b.set("tokenizer.ggml.bos_token_id", V::U32(3))
        .set("tokenizer.ggml.eos_token_id", V::U32(4));
    let c = ok(&b, "ids");
    assert_eq!((c.bos_token_id, c.eos_token_id), (Some(3), Some(4)));
    for (i, key) in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]
        .into_iter()
        .enumerate()
    {
        let mut b = tiny();
        b.set(key, s("3"));
        refused(&b, &format!("ids-type-{i}"), &[key, "string"]);
    }
}

/// The tokenizer keys change the tokens as transformers' GGUF tokenizer does.
#[test]
fn tokenizer_keys_are_applied() {
    let dir = TempDir::new("gguf-keys-tok");
    let build = |b: &GgufBuilder, name: &str| -> anyhow::Result<tokenizers::Tokenizer> {
        let p = dir.0.join(name);
        b.write(&p);
        tokenizer_from_gguf(&GgufFile::open(&p)?)
    };
    let ids =
        |t: &tokenizers::Tokenizer, text: &str| t.encode(text, false).unwrap().get_ids().to_vec();
    let toks = [
        "1", "2", "3", "4", "12", "123", "1234", "<s>", "a", "b", "ab",
    ];
    let mut b = tiny();
    b.set("tokenizer.ggml.tokens", strs(&toks))
        .set("tokenizer.ggml.token_type", i32s(&[1; 11]))
        .set("tokenizer.ggml.merges", strs(&["1 2", "12 3", "123 4"]))
        .set("llama.vocab_size", V::U32(11));
    // tokens (id = index) and merges (rank order)
    let t = build(&b, "base.gguf").unwrap();
    assert_eq!(ids(&t, "1234"), vec![6]);
    assert_eq!(ids(&t, "ab"), vec![8, 9]); // no "a b" merge
    let mut m = b.clone();
    m.set(
        "tokenizer.ggml.merges",
        strs(&["1 2", "12 3", "123 4", "a b"]),
    );
    assert_eq!(ids(&build(&m, "merge.gguf").unwrap(), "ab"), vec![10]);
    // pre: llama-bpe splits digits in runs of at most three
    let mut p = b.clone();
    p.set("tokenizer.ggml.pre", s("llama-bpe"));
    assert_eq!(ids(&build(&p, "pre.gguf").unwrap(), "1234"), vec![5, 3]);
    // token_type CONTROL (3) and the bos/eos/unknown/padding ids make "<s>" one special token
    assert_ne!(
        ids(&t, "a<s>"),
        vec![8, 7],
        "<s> is not a special token without a key"
    );
    let mut types = vec![1; 11];
    types[7] = 3;
    let mut c = b.clone();
    c.set("tokenizer.ggml.token_type", i32s(&types));
    assert_eq!(ids(&build(&c, "ctl.gguf").unwrap(), "a<s>"), vec![8, 7]);
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        let mut c = b.clone();
        c.set(key, V::U32(7));
        assert_eq!(
            ids(&build(&c, "id.gguf").unwrap(), "a<s>"),
            vec![8, 7],
            "{key}"
        );
    }
    // model: byte-level BPE or SentencePiece ("llama": the file's merges, "▁" prepended and
    // dropped here, the vocabulary having neither it nor byte tokens); others are refused
    let mut m = b.clone();
    m.set("tokenizer.ggml.model", s("llama"));
    assert_eq!(ids(&build(&m, "spm.gguf").unwrap(), "1234"), vec![6]);
    // scores: a SentencePiece file without merges merges by them, best first
    let pieces = ["\u{2581}", "a", "b", "c", "ab", "bc"];
    let mut sp = b.clone();
    sp.set("tokenizer.ggml.model", s("llama"))
        .remove("tokenizer.ggml.merges")
        .set("tokenizer.ggml.tokens", strs(&pieces))
        .set("tokenizer.ggml.token_type", i32s(&[1; 6]))
        .set("llama.vocab_size", V::U32(6));
    let f32s = |xs: &[f32]| V::Array(xs.iter().map(|&x| V::F32(x)).collect());
    for (scores, want) in [
        ([0.0, 0.0, 0.0, 0.0, -1.0, -2.0], vec![0, 4, 3]),
        ([0.0, 0.0, 0.0, 0.0, -2.0, -1.0], vec![0, 1, 5]),
    ] {
        sp.set("tokenizer.ggml.scores", f32s(&scores));
        assert_eq!(
            ids(&build(&sp, "scores.gguf").unwrap(), "abc"),
            want,
            "{scores:?}"
        );
    }
    m.set("tokenizer.ggml.model", s("t5"));
    let e = format!(
        "{:#}",
        build(&m, "t5.gguf").expect_err("t5 tokenizer must be refused")
    );
    assert!(
        e.contains("tokenizer.ggml.model") && e.contains("\"t5\""),
        "{e}"
    );
    // add_bos_token: read for the BOS handling
    for v in [true, false] {
        let mut a = b.clone();
        a.set("tokenizer.ggml.add_bos_token", V::Bool(v));
        let p = dir.0.join("bos.gguf");
        a.write(&p);
        let sp = GgufSpecialTokens::from_gguf(&GgufFile::open(&p).unwrap()).unwrap();
        assert_eq!(sp.add_bos, Some(v));
    }
}

#[test]
fn the_real_smollm2_file_passes_the_audit() {
    let path = common::smollm2_gguf();
    let g = GgufFile::open(&path).unwrap();
    let c = from_gguf(&g).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        (c.n_layer, c.n_head, c.n_kv_head, c.head_dim()),
        (30, 9, 3, 64)
    );
    assert!(c.rope_freq_factors.is_empty() && c.tie_embeddings);
}
