//! Checkpoint forms of Hugging Face directories: a checkpoint sharded over several safetensors
//! files through `model.safetensors.index.json` reads exactly like the single file (every tensor
//! bit for bit for every fixture architecture, and identical logits), its faults are refused
//! naming the file (missing shard, tensor absent from its shard, shard path escaping the
//! directory, bad JSON), and a directory holding only a pickled PyTorch checkpoint is refused
//! with the command that converts it. The shards are cut on the fly from the committed fixtures.

mod common;

use std::path::Path;

use common::*;
use outlier_probe::model::Gpt2;
use outlier_probe::model_files::{weight_source, ModelFiles};
use serde_json::{json, Value};

/// Shard file `i` of `n` as transformers names it.
fn shard_name(i: usize, n: usize) -> String {
    format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
}

/// Copy fixture `fx` into `dst` with its model.safetensors split round-robin (by sorted name)
/// into `n` shards and an index; returns the index JSON written.
fn shard_fixture(fx: &str, n: usize, dst: &Path) -> Value {
    let src = fixtures_dir().join(fx);
    for f in ["config.json", "tokenizer.json"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut map = serde_json::Map::new();
    let mut total = 0;
    for i in 0..n {
        let part: Vec<_> = tensors.iter().skip(i).step_by(n).cloned().collect();
        for (name, v) in &part {
            map.insert(name.clone(), json!(shard_name(i, n)));
            total += v.data().len();
        }
        safetensors::serialize_to_file(part, None, &dst.join(shard_name(i, n))).unwrap();
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": map});
    write_index(dst, &index);
    index
}

fn write_index(dir: &Path, index: &Value) {
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(index).unwrap(),
    )
    .unwrap();
}

fn open_err(dir: &Path) -> String {
    match ModelFiles::open(dir) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn sharded_checkpoints_read_like_the_single_file() {
    for (fx, n) in [("gpt2-odd-a", 3), ("llama-odd-a", 2), ("qwen2-odd-a", 3)] {
        let d = TempDir::new(&format!("shards-{fx}"));
        shard_fixture(fx, n, &d.0);
        let one = ModelFiles::open(&fixtures_dir().join(fx)).unwrap_or_else(|e| panic!("{e:#}"));
        let many = ModelFiles::open(&d.0).unwrap_or_else(|e| panic!("{fx} sharded: {e:#}"));
        assert_eq!(one.cfg.arch, many.cfg.arch);
        let names = one.weights.names();
        assert_eq!(names, many.weights.names(), "{fx}: tensor names");
        assert!(many
            .weights
            .path()
            .ends_with("model.safetensors.index.json"));
        for name in &names {
            let a = one.weights.tensor(name).unwrap();
            let b = many
                .weights
                .tensor(name)
                .unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(a.shape, b.shape, "{fx} {name}");
            assert!(
                a.data
                    .iter()
                    .zip(&b.data)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{fx} {name}: values differ"
            );
            assert!(many.weights.contains(name));
        }
        assert!(many.weights.same(&names[0], &names[0]));
        if names.len() > 1 {
            assert!(!many.weights.same(&names[0], &names[1]));
        }
        assert!(!many.weights.contains("no.such.weight"));
        let e = format!("{:#}", many.weights.tensor("no.such.weight").unwrap_err());
        assert!(
            e.contains("model.safetensors.index.json") && e.contains("no.such.weight"),
            "{e}"
        );
        // The source's own path opens it again (as Model::for_each_module_weight does).
        let again = weight_source(many.weights.path(), many.cfg.arch).unwrap();
        assert_eq!(again.names(), names);
        let again = weight_source(one.weights.path(), one.cfg.arch).unwrap();
        assert_eq!(again.names(), names);
        println!("{fx}: {} tensors over {n} shards, bit for bit", names.len());
    }
}

#[test]
fn sharded_llama_gives_identical_logits() {
    let fx = "llama-odd-a";
    let d = TempDir::new("shards-logits");
    shard_fixture(fx, 3, &d.0);
    let ctx = ctx();
    let one = Gpt2::load(ctx.clone(), &fixtures_dir().join(fx)).unwrap();
    let many = Gpt2::load(ctx, &d.0).unwrap_or_else(|e| panic!("{e:#}"));
    for k in 0..3 {
        let tokens = reference(fx, k).tokens;
        let a = one.logits(&tokens).unwrap();
        let b = many.logits(&tokens).unwrap();
        assert_eq!(a.shape, b.shape);
        let differ = a
            .data
            .iter()
            .zip(&b.data)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(differ, 0, "ref-{k}: {differ} logits differ");
    }
}

#[test]
fn sharded_faults_are_named() {
    let fx = "llama-odd-a";
    let d = TempDir::new("shards-faults");
    let index = shard_fixture(fx, 3, &d.0);
    let idx = "model.safetensors.index.json";
    let e_of = |index: &Value| {
        write_index(&d.0, index);
        open_err(&d.0)
    };

    // A shard listed but missing.
    let missing = shard_name(1, 3);
    std::fs::rename(d.0.join(&missing), d.0.join("moved")).unwrap();
    let e = open_err(&d.0);
    assert!(
        e.contains(idx) && e.contains(&missing) && e.contains("is missing"),
        "{e}"
    );
    std::fs::rename(d.0.join("moved"), d.0.join(&missing)).unwrap();
    ModelFiles::open(&d.0).unwrap();

    // A tensor listed for a shard that does not hold it.
    let mut bad = index.clone();
    bad["weight_map"]["model.norm.weight"] = json!(shard_name(0, 3));
    let wrong = index["weight_map"]["model.norm.weight"].clone();
    assert_ne!(
        wrong,
        json!(shard_name(0, 3)),
        "pick a tensor of another shard"
    );
    let e = e_of(&bad);
    assert!(
        e.contains(idx) && e.contains("`model.norm.weight`") && e.contains("does not hold it"),
        "{e}"
    );

    // Shard paths escaping the directory: `..`, absolute, and a symlink out of it.
    for (path, tag) in [
        (format!("../{}", shard_name(0, 3)), "dotdot"),
        ("/etc/hostname".to_string(), "absolute"),
        ("link.safetensors".to_string(), "symlink"),
    ] {
        if tag == "symlink" {
            let outside = TempDir::new("shards-outside");
            std::fs::copy(d.0.join(shard_name(0, 3)), outside.0.join("x.safetensors")).unwrap();
            std::os::unix::fs::symlink(outside.0.join("x.safetensors"), d.0.join(&path)).unwrap();
            let mut bad = index.clone();
            for (_, v) in bad["weight_map"].as_object_mut().unwrap() {
                if *v == json!(shard_name(0, 3)) {
                    *v = json!(path);
                }
            }
            let e = e_of(&bad);
            assert!(
                e.contains(idx) && e.contains("escapes the directory"),
                "{tag}: {e}"
            );
            continue;
        }
        let mut bad = index.clone();
        bad["weight_map"]["model.norm.weight"] = json!(path);
        let e = e_of(&bad);
        assert!(
            e.contains(idx) && e.contains(&path) && e.contains("escapes the directory"),
            "{tag}: {e}"
        );
    }

    // Bad JSON, no weight_map, a non-string entry.
    std::fs::write(d.0.join(idx), "{\"weight_map\": {").unwrap();
    let e = open_err(&d.0);
    assert!(e.contains(idx) && e.contains("not valid JSON"), "{e}");
    let e = e_of(&json!({"metadata": {}}));
    assert!(e.contains(idx) && e.contains("no `weight_map`"), "{e}");
    let e = e_of(&json!({"weight_map": {"model.norm.weight": 3}}));
    assert!(e.contains(idx) && e.contains("`model.norm.weight`"), "{e}");
    // A shard that is not safetensors.
    write_index(&d.0, &index);
    std::fs::write(d.0.join(shard_name(2, 3)), b"not a safetensors file").unwrap();
    let e = open_err(&d.0);
    assert!(
        e.contains(&shard_name(2, 3)) && e.contains("not a valid safetensors"),
        "{e}"
    );
}

#[test]
fn pickled_checkpoints_are_refused_with_the_conversion_command() {
    let src = fixtures_dir().join("llama-odd-a");
    for files in [
        &["pytorch_model.bin"][..],
        &[
            "pytorch_model.bin.index.json",
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
        ],
        &["model.pt"],
        &["weights.pth"],
        &["last.ckpt"],
    ] {
        let d = TempDir::new("pickled");
        std::fs::copy(src.join("config.json"), d.0.join("config.json")).unwrap();
        for f in files {
            std::fs::write(d.0.join(f), b"\x80\x02}q\x00.").unwrap();
        }
        let e = open_err(&d.0);
        let dir = d.0.display().to_string();
        for needle in [
            files[files.len() - 1],
            "pickled",
            "executes code",
            &format!("from_pretrained('{dir}').save_pretrained('{dir}', safe_serialization=True)"),
            "from safetensors.torch import save_file",
            &format!("'{dir}/model.safetensors'"),
        ] {
            assert!(e.contains(needle), "{files:?}: lacks {needle:?}: {e}");
        }
        // One command per line, nothing else on it.
        let cmds: Vec<&str> = e
            .lines()
            .filter(|l| l.trim_start().starts_with("python3 -c"))
            .collect();
        assert_eq!(cmds.len(), 2, "{e}");
    }
    // With model.safetensors beside it, the pickled file is ignored.
    let d = TempDir::new("pickled-and-safe");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), d.0.join(f)).unwrap();
    }
    std::fs::write(d.0.join("pytorch_model.bin"), b"junk").unwrap();
    ModelFiles::open(&d.0).unwrap_or_else(|e| panic!("{e:#}"));
}
