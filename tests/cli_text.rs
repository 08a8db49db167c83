//! The binary on the BOS and streamed-text cases (tests/fixtures/cases, expected values from
//! transformers in cases/expected.json) and with --prompt-file / --no-bos.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use serde_json::Value;

/// Run with `stdin` piped in; (success, stdout, stderr).
fn run_in(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run outlier-probe");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(args: &[&str]) -> (bool, String, String) {
    run_in(args, "")
}

fn case(p: &str) -> String {
    fixtures_dir()
        .join("cases")
        .join(p)
        .to_str()
        .unwrap()
        .to_string()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(case("expected.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// `capture` of `prompt_args` on `model`: the stored tokens and stderr.
fn captured(model: &str, prompt_args: &[&str], stdin: &str) -> (Vec<i64>, String) {
    let t = TempDir::new(&format!("cli-text-cap-{}", prompt_args.len()));
    let out = t.0.join("x.safetensors");
    let mut args = vec!["capture", "--model", model, "--hooks", "logits"];
    args.extend_from_slice(prompt_args);
    args.extend(["--out", out.to_str().unwrap()]);
    let (ok, _, err) = run_in(&args, stdin);
    assert!(ok, "{args:?}: {err}");
    (outlier_probe::capture_file::read(&out).unwrap().0, err)
}

#[test]
fn capture_adds_the_bos_the_files_ask_for() {
    let e = expected();
    let prompt = e["prompt"].as_str().unwrap();
    let with = ids(&e["llama_dir"]["ids"]);
    let without = ids(&e["llama_dir"]["ids_no_special"]);
    let t = TempDir::new("cli-text-prompt-file");
    let file = t.0.join("prompt.txt");
    std::fs::write(&file, prompt).unwrap();
    let file = file.to_str().unwrap();
    for model in [case("bos/llama-dir"), case("bos/tiny-add-bos.gguf")] {
        let (tokens, err) = captured(&model, &["--prompt", prompt], "");
        assert_eq!(tokens, with, "{model}");
        assert!(
            err.contains("BOS <|begin_of_text|> (id 498) added"),
            "{err}"
        );
        let (tokens, err) = captured(&model, &["--prompt", prompt, "--no-bos"], "");
        assert_eq!(tokens, without, "{model} --no-bos");
        assert!(err.contains("no BOS added: left out on request"), "{err}");
        // The file's text exactly, trailing newline included; stdin the same.
        assert_eq!(captured(&model, &["--prompt-file", file], "").0, with);
        assert_eq!(captured(&model, &["--prompt-file", "-"], prompt).0, with);
    }
    // Two trailing newlines and a trailing space survive too.
    let odd = t.0.join("odd.txt");
    std::fs::write(&odd, "Summer\n\n ").unwrap();
    let m = case("bos/llama-dir");
    let (a, _) = captured(&m, &["--prompt-file", odd.to_str().unwrap()], "");
    assert_eq!(a, captured(&m, &["--prompt", "Summer\n\n "], "").0);
    let tok = outlier_probe::tokenizer::Tokenizer::from_file(
        &fixtures_dir().join("cases/bos/llama-dir/tokenizer.json"),
    )
    .unwrap();
    let a: Vec<u32> = a.iter().map(|&t| t as u32).collect();
    assert_eq!(a[0], 498);
    assert_eq!(tok.decode(&a).unwrap(), "Summer\n\n ");
    // GPT-2 fixtures: no BOS, same ids as before.
    let gpt2 = fixtures_dir().join("gpt2-odd-b");
    let (tokens, err) = captured(gpt2.to_str().unwrap(), &["--prompt-file", file], "");
    assert_eq!(
        tokens,
        reference("gpt2-odd-b", 0)
            .tokens
            .iter()
            .map(|&t| t as i64)
            .collect::<Vec<_>>()
    );
    assert!(err.contains("no BOS added (none asked for"), "{err}");
}

#[test]
fn prompt_and_prompt_file_are_exclusive_and_checked() {
    let m = case("bos/llama-dir");
    let t = TempDir::new("cli-text-excl");
    let f = t.0.join("p.txt");
    std::fs::write(&f, "Summer").unwrap();
    let f = f.to_str().unwrap();
    let out = t.0.join("x.safetensors");
    let o = out.to_str().unwrap();
    let cap = ["capture", "--model", &m, "--hooks", "logits", "--out", o];
    for (extra, needle) in [
        (
            vec!["--prompt", "x", "--prompt-file", f],
            "cannot be used with",
        ),
        (vec![], "--prompt"),
        (
            vec!["--prompt-file", "/no/such/prompt.txt"],
            "/no/such/prompt.txt",
        ),
    ] {
        let args: Vec<&str> = cap.iter().copied().chain(extra).collect();
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    for args in [
        vec![
            "generate",
            "--model",
            &m,
            "--prompt",
            "x",
            "--prompt-file",
            f,
        ],
        vec![
            "generate",
            "--model",
            &m,
            "--prompt-file",
            "-",
            "--prompt-file",
            "-",
        ],
        vec!["probe", "--model", &m, "--prompt", "x", "--prompt-file", f],
        vec!["probe", "--model", &m, "--corpus", f, "--prompt-file", f],
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(
            err.contains("cannot be used with") || err.contains("only once"),
            "{args:?}: {err}"
        );
    }
}

/// The case: 🙂 and é span byte-level tokens; the stream prints them whole and never prints
/// `<|endoftext|>`; the batch path prints the same continuation.
#[test]
fn generate_streams_whole_characters() {
    let e = expected();
    let m = case("stream-utf8/llama");
    let (ok, out, err) = run(&["generate", "--model", &m, "--prompt", "Summer", "-n", "15"]);
    assert!(ok, "{err}");
    assert_eq!(out, "Summer🙂 warm. Café\n");
    assert_eq!(
        format!("Summer{}", e["stream"]["text"].as_str().unwrap()),
        out.trim_end()
    );
    let (ok, out, err) = run(&[
        "generate", "--model", &m, "--prompt", "Summer", "--prompt", "Summer", "-n", "15",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "Summer🙂 warm. Café\n---\nSummer🙂 warm. Café\n---\n");
}

/// With a BOS the continuation is transformers' from [BOS] + prompt, and the BOS is not
/// printed; --no-bos gives transformers' continuation of the bare prompt. One prompt per
/// --prompt-file.
#[test]
fn generate_follows_the_bos_rule_and_prints_text_only() {
    let e = expected();
    let prompt = e["prompt"].as_str().unwrap();
    let tok = outlier_probe::tokenizer::Tokenizer::from_file(
        &fixtures_dir().join("cases/bos/llama-dir/tokenizer.json"),
    )
    .unwrap();
    let text = |k: &str| {
        let g: Vec<u32> = ids(&e["llama_dir"][k]).iter().map(|&t| t as u32).collect();
        format!("{prompt}{}", tok.decode(&g).unwrap())
    };
    let m = case("bos/llama-dir");
    let (ok, out, err) = run(&["generate", "--model", &m, "--prompt", prompt, "-n", "8"]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("{}\n", text("generated")));
    assert!(!out.contains("<|begin_of_text|>"));
    assert!(
        err.contains("BOS <|begin_of_text|> (id 498) added"),
        "{err}"
    );
    assert!(err.contains("(11 prompt tokens)"), "{err}");
    let (ok, out, err) = run_in(
        &[
            "generate",
            "--model",
            &m,
            "--prompt-file",
            "-",
            "-n",
            "8",
            "--no-bos",
        ],
        prompt,
    );
    assert!(ok, "{err}");
    assert_eq!(out, format!("{}\n", text("generated_no_bos")));
    let t = TempDir::new("cli-text-gen");
    let (a, b) = (t.0.join("a.txt"), t.0.join("b.txt"));
    std::fs::write(&a, prompt).unwrap();
    std::fs::write(&b, "Summer").unwrap();
    let (ok, out, err) = run(&[
        "generate",
        "--model",
        &m,
        "--prompt-file",
        a.to_str().unwrap(),
        "--prompt-file",
        b.to_str().unwrap(),
        "-n",
        "8",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("{}\n---\nSummer", text("generated"))),
        "{out}"
    );
}

/// `ppl` cuts BOS windows; the perplexity is transformers' on the same windows.
#[test]
fn ppl_windows_start_with_the_bos() {
    let e = expected();
    let c = &e["corpus"];
    let (m, corpus) = (case("bos/llama-dir"), case(c["file"].as_str().unwrap()));
    let args = [
        "ppl",
        "--model",
        &m,
        "--corpus",
        &corpus,
        "--seq-len",
        "16",
        "--seqs",
        "3",
    ];
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert!(err.contains("each starts with the BOS"), "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("| `plain`"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[2], "45", "{row}");
    let ppl: f64 = cells[3].parse().unwrap();
    let want = c["ppl"].as_f64().unwrap();
    assert!((ppl - want).abs() <= 1e-3 + 1e-4 * want, "{ppl} vs {want}");
    let mut no_bos = args.to_vec();
    no_bos.push("--no-bos");
    let (ok, out, err) = run(&no_bos);
    assert!(ok, "{err}");
    assert!(err.contains("no BOS added"), "{err}");
    assert!(!out.contains(&format!("| {:.3} |", ppl)), "{out}");
}

/// `probe` on a prompt file: the report's input names the BOS.
#[test]
fn probe_reads_a_prompt_file_and_reports_the_bos() {
    let e = expected();
    let t = TempDir::new("cli-text-probe");
    let f = t.0.join("p.txt");
    std::fs::write(&f, e["prompt"].as_str().unwrap()).unwrap();
    let out = t.0.join("report");
    let (ok, stdout, err) = run(&[
        "probe",
        "--model",
        &case("bos/tiny-add-bos.gguf"),
        "--prompt-file",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("BOS <|begin_of_text|> (id 498) added"),
        "{err}"
    );
    assert!(
        stdout.contains(r#""Summer is warm. Winter is cold.\n", BOS <|begin_of_text|> first"#),
        "{stdout}"
    );
}
