//! Options that would change nothing are refused, never silently ignored: each case exits
//! non-zero with a message naming the option, and the accepted forms still run.

mod common;

/// (success, stdout and stderr together) of the binary.
fn run(args: &[&str]) -> (bool, String) {
    let (ok, out, err) = common::run(args);
    (ok, out + &err)
}

fn fixture(rel: &str) -> String {
    format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> String {
    format!(
        "{}/data/tinyshakespeare-heldout.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn options_that_would_change_nothing_are_refused() {
    let m = fixture("gpt2-odd-a");
    let out = std::env::temp_dir().join("outlier-probe-cli-options");
    let out = out.to_str().unwrap();
    let c = corpus();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Greedy decoding ignores the sampler's options.
        (
            vec!["generate", "--prompt", "Hi", "--top-k", "5"],
            "--top-k",
        ),
        (
            vec!["generate", "--prompt", "Hi", "--top-p", "0.9"],
            "--top-p",
        ),
        (vec!["generate", "--prompt", "Hi", "--seed", "3"], "--seed"),
        // The massive-activation rule replaces --ratio.
        (
            vec!["probe", "--massive", "--ratio", "50", "--out", out],
            "--ratio",
        ),
        // Window options without a corpus.
        (vec!["probe", "--seqs", "3", "--out", out], "--seqs"),
        (vec!["probe", "--seq-len", "16", "--out", out], "--seq-len"),
        (vec!["probe", "--from", "0.5", "--out", out], "--from"),
        // Fractions out of range.
        (vec!["probe", "--key-frac", "0", "--out", out], "--key-frac"),
        (
            vec!["probe", "--sink-excess-frac", "1.5", "--out", out],
            "--sink-excess-frac",
        ),
        // Zero windows per pass.
        (vec!["ppl", "--corpus", &c, "--batch", "0"], "--batch"),
        // Auto-protection's tuning without auto-protection.
        (
            vec![
                "compress",
                "--corpus",
                &c,
                "--protect",
                "none",
                "--protect-max",
                "3",
            ],
            "--protect-max",
        ),
    ];
    for (args, flag) in cases {
        let mut a = args.clone();
        a.extend(["--model", &m]);
        let (ok, text) = run(&a);
        assert!(!ok, "{args:?} should be refused; got:\n{text}");
        assert!(
            text.contains(flag),
            "{args:?}: the message should name {flag}:\n{text}"
        );
        assert!(!text.contains("panicked"), "{args:?} panicked:\n{text}");
    }
}

#[test]
fn sampling_options_run_when_sampling_and_a_full_context_is_reported() {
    let m = fixture("gpt2-odd-a");
    let (ok, text) = run(&[
        "generate",
        "--model",
        &m,
        "--prompt",
        "Hi",
        "--temperature",
        "0.8",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--seed",
        "3",
        "-n",
        "3",
    ]);
    assert!(ok, "{text}");
    // gpt2-odd-a has n_positions = 48 and "Hi" is 2 tokens: 47 new tokens fill the context
    // (the last one is sampled, never fed back); asking for more says where it stopped.
    let (ok, text) = run(&["generate", "--model", &m, "--prompt", "Hi", "-n", "100"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("stopped after 47 of 100 new tokens"),
        "{text}"
    );
    assert!(text.contains("n_positions = 48"), "{text}");
}
