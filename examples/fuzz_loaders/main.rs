//! Structured-mutation fuzzer for the loaders of files from strangers (stable Rust, no
//! cargo-fuzz): GGUF (header, metadata, tensor infos, dequantizers), the GGUF tokenizer,
//! safetensors, `tokenizer.json` and `config.json`, through the public functions `Model::load`
//! uses (CPU only, no GPU).
//!
//! ```text
//! cargo run --release --example fuzz_loaders -- --target gguf --seconds 60 [--seed 1]
//! cargo run --release --example fuzz_loaders -- --target gguf --replay crash.bin
//! ```
//!
//! Seeds are the committed fixtures under `tests/fixtures`. Findings: a panic (caught, the
//! input saved), a hang (one input over `--timeout-ms`), an allocation over `--max-alloc-mb`
//! (one allocation, or all live ones together), or any other death of the worker process.
//! Each is saved to `--crash-dir` as `<kind>-<target>-<hash>.bin`; the exit status is 1 when
//! there was any. A supervisor process restarts the worker after a fatal finding.
//!
//! Without coverage instrumentation, the feedback is the loader's outcome: an input whose result
//! (error message with numbers and quoted text blanked) is new joins the corpus (at most 4096
//! inputs, 64 MiB). `FUZZ_DUMP_SIGNATURES=FILE` writes the outcomes seen, to judge the mutators.

mod gguf_mut;
mod guard;
mod json_mut;
mod mutate;
mod targets;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use guard::{Reason, SelfTest, Shared};
use mutate::Rng;
use targets::Target;

#[global_allocator]
static ALLOC: guard::Counting = guard::Counting;

#[derive(Parser, Clone)]
#[command(about = "Fuzz the model-file loaders (see examples/fuzz_loaders/main.rs)")]
struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// Fuzzing time in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where findings are saved.
    #[arg(long, default_value = "target/fuzz-crashes")]
    crash_dir: PathBuf,
    /// One input running longer than this is a hang.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Limit on one allocation and on all live allocations together (MiB).
    #[arg(long, default_value_t = 1024)]
    max_alloc_mb: usize,
    /// Run these inputs once each and print what the loader says (no fuzzing).
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Internal: run as the worker process, reporting into this shared page.
    #[arg(long, hide = true)]
    worker: Option<PathBuf>,
    /// Check the detectors: the 10th input of each worker panics, hangs, allocates 2 GiB or
    /// overflows the stack instead of loading (the run must then report a finding).
    #[arg(long, value_enum)]
    self_test: Option<SelfTest>,
}

/// Largest input (bytes) the mutators produce.
const LIMIT: usize = 4 << 20;
/// Most inputs kept for mutation (seeds included); also at most 64 MiB of them.
const MAX_CORPUS: usize = 4096;

fn main() -> ExitCode {
    let args = Args::parse();
    let r = if let Some(page) = &args.worker {
        worker(&args, page)
    } else if !args.replay.is_empty() {
        replay(&args)
    } else {
        supervise(&args)
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fuzz_loaders: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hash(data: &[u8]) -> String {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

fn save(dir: &Path, kind: &str, t: Target, data: &[u8], note: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let p = dir.join(format!("{kind}-{}-{}.bin", t.name(), hash(data)));
    std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
    std::fs::write(p.with_extension("txt"), note)?;
    Ok(p)
}

/// Run workers until the time is up, restarting after fatal findings.
fn supervise(a: &Args) -> Result<bool> {
    let work = std::env::temp_dir().join(format!(
        "fuzz_loaders-{}-{}",
        a.target.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&work)?;
    let page = work.join("shared.bin");
    let start = Instant::now();
    let total = Duration::from_secs(a.seconds);
    let (mut execs, mut panics, mut fatal) = (0u64, 0u64, 0u64);
    let mut seed = a.seed;
    while start.elapsed() < total {
        let left = total - start.elapsed();
        drop(Shared::open(&page, true)?);
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--target", a.target.name(), "--worker"])
            .arg(&page)
            .args(["--seconds", &left.as_secs().max(1).to_string()])
            .args(["--seed", &seed.to_string()])
            .arg("--crash-dir")
            .arg(&a.crash_dir)
            .args(["--timeout-ms", &a.timeout_ms.to_string()])
            .args(["--max-alloc-mb", &a.max_alloc_mb.to_string()])
            .args(a.self_test.iter().flat_map(|k| ["--self-test", k.name()]))
            .spawn()
            .context("starting the worker")?;
        let backstop = left + Duration::from_millis(a.timeout_ms) + Duration::from_secs(60);
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if t0.elapsed() > backstop {
                child.kill()?;
                child.wait()?;
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let sh = Shared::open(&page, false)?;
        execs += sh.get(guard::HDR_EXECS);
        panics += sh.get(guard::HDR_PANICS);
        if status.is_some_and(|s| s.success()) && sh.get(guard::HDR_REASON) == Reason::Done as u64 {
            break;
        }
        let kind = match sh.get(guard::HDR_REASON) {
            r if r == Reason::Hang as u64 || status.is_none() => "hang",
            r if r == Reason::Alloc as u64 => "alloc",
            _ => "crash",
        };
        let input = sh.input();
        let note = format!(
            "{kind}: worker {status:?}, allocation of {} bytes at the limit (if alloc)",
            sh.get(guard::HDR_ALLOC)
        );
        let p = save(&a.crash_dir, kind, a.target, &input, &note)?;
        eprintln!(
            "FINDING {kind} ({} bytes input) saved to {}",
            input.len(),
            p.display()
        );
        fatal += 1;
        seed = seed.wrapping_add(1);
        if fatal >= 20 {
            eprintln!("fuzz_loaders: stopping after {fatal} fatal findings");
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz_loaders {}: {execs} executions in {secs:.0} s ({:.0}/s), {panics} panics, {fatal} hangs/allocation/crashes{}",
        a.target.name(),
        execs as f64 / secs,
        if panics + fatal > 0 {
            format!(" (inputs in {})", a.crash_dir.display())
        } else {
            String::new()
        }
    );
    Ok(panics + fatal == 0)
}

static PANIC_MSG: Mutex<Option<String>> = Mutex::new(None);

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        *PANIC_MSG.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("{} at {}", msg, loc.unwrap_or_default()));
    }));
}

/// Directories (one per seed) holding the seed's companion files; inputs are written there.
fn prepare_dirs(t: Target, seeds: &[targets::Seed], work: &Path) -> Result<Vec<PathBuf>> {
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let d = work.join(format!("seed{i}"));
            std::fs::create_dir_all(&d)?;
            for c in t.companions() {
                std::fs::copy(s.dir.join(c), d.join(c))?;
            }
            Ok(d)
        })
        .collect()
}

/// Run one input; `Err` carries the panic message.
fn exec(
    t: Target,
    dir: &Path,
    data: &[u8],
    inject: Option<SelfTest>,
) -> std::result::Result<String, String> {
    std::fs::write(dir.join(t.file_name()), data).map_err(|e| format!("writing input: {e}"))?;
    guard::running(true);
    let r = std::panic::catch_unwind(|| {
        if let Some(k) = inject {
            k.trigger();
        }
        t.run(dir)
    });
    guard::running(false);
    match r {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Ok(format!("error: {e:#}")),
        Err(_) => Err(PANIC_MSG
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()),
    }
}

fn worker(a: &Args, page: &Path) -> Result<bool> {
    std::env::set_var("TOKENIZERS_PARALLELISM", "false");
    let sh = Shared::open(page, false)?.install();
    let work = page.parent().expect("in a directory").to_path_buf();
    let seeds = a.target.seeds(&root())?;
    let dirs = prepare_dirs(a.target, &seeds, &work)?;
    install_panic_hook();
    guard::start_watchdog(Duration::from_millis(a.timeout_ms));
    guard::arm_alloc_limit(a.max_alloc_mb << 20);

    let mut rng = Rng::new(a.seed);
    // (input, seed index)
    let mut corpus: Vec<(Vec<u8>, usize)> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| (s.data.clone(), i))
        .collect();
    let mut corpus_bytes: usize = seeds.iter().map(|s| s.data.len()).sum();
    let mut seen: HashSet<String> = HashSet::new();
    let mut panic_sites: HashMap<String, usize> = HashMap::new();
    let (mut execs, mut panics) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut report = Instant::now();
    let mut i = 0usize;
    while Instant::now() < deadline {
        let (data, ctx) = if i < seeds.len() {
            (seeds[i].data.clone(), i)
        } else {
            let (base, ctx) = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())].0;
            let mut d = base.clone();
            a.target.mutate(&mut rng, &mut d, other, LIMIT);
            (d, *ctx)
        };
        i += 1;
        sh.put_input(&data);
        let inject = a.self_test.filter(|_| i == 10);
        let out = exec(a.target, &dirs[ctx], &data, inject);
        execs += 1;
        sh.set(guard::HDR_EXECS, execs);
        match out {
            Ok(s) => {
                let sig = targets::signature(&s, &dirs[ctx]);
                if seen.insert(sig) {
                    if corpus.len() < MAX_CORPUS && corpus_bytes + data.len() < 64 << 20 {
                        corpus_bytes += data.len();
                        corpus.push((data, ctx));
                    } else {
                        // Full: replace a random entry other than the seeds.
                        let j = seeds.len() + rng.below(corpus.len() - seeds.len());
                        if corpus_bytes - corpus[j].0.len() + data.len() < 64 << 20 {
                            corpus_bytes = corpus_bytes - corpus[j].0.len() + data.len();
                            corpus[j] = (data, ctx);
                        }
                    }
                }
            }
            Err(msg) => {
                panics += 1;
                sh.set(guard::HDR_PANICS, panics);
                let site = msg.rsplit(" at ").next().unwrap_or("").to_string();
                let n = panic_sites.entry(site).or_default();
                *n += 1;
                if *n <= 3 {
                    let p = save(
                        &a.crash_dir,
                        "panic",
                        a.target,
                        &data,
                        &format!("seed dir {}\n{msg}\n", seeds[ctx].dir.display()),
                    )?;
                    eprintln!("FINDING panic: {msg}\n  input saved to {}", p.display());
                }
            }
        }
        sh.set(guard::HDR_SIGNATURES, seen.len() as u64);
        if report.elapsed() > Duration::from_secs(30) {
            report = Instant::now();
            eprintln!(
                "  [{}] {execs} execs, corpus {}, behaviours {}, panics {panics}",
                a.target.name(),
                corpus.len(),
                seen.len()
            );
        }
    }
    eprintln!(
        "  [{}] worker done: {execs} execs, corpus {}, behaviours {}, panics {panics}",
        a.target.name(),
        corpus.len(),
        seen.len()
    );
    if let Ok(p) = std::env::var("FUZZ_DUMP_SIGNATURES") {
        let mut v: Vec<_> = seen.iter().cloned().collect();
        v.sort();
        std::fs::write(p, v.join("\n"))?;
    }
    sh.set(guard::HDR_REASON, Reason::Done as u64);
    Ok(true)
}

fn replay(a: &Args) -> Result<bool> {
    let seeds = a.target.seeds(&root())?;
    let work = std::env::temp_dir().join(format!("fuzz_loaders-replay-{}", std::process::id()));
    let dirs = prepare_dirs(a.target, &seeds, &work)?;
    install_panic_hook();
    guard::arm_alloc_limit(a.max_alloc_mb << 20);
    let mut clean = true;
    for f in &a.replay {
        let data = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        // A safetensors input is tried with every seed's config.json.
        for d in &dirs {
            let out = exec(a.target, d, &data, None);
            clean &= out.is_ok();
            println!("{} [{}]: {out:?}", f.display(), d.display());
            if a.target.companions().is_empty() {
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(clean)
}
