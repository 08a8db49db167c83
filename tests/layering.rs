//! The layout's rules, checked on the source text: no import cycle between the library's
//! modules, dependencies pointing one way (data types ← file formats ← GPU ← kernels ← models ←
//! studies), no source file over the size limit, and a `//!` header on every file. (That analysis
//! and report cannot reach wgpu is checked by the compiler: they live in `crates/core`, which does
//! not depend on wgpu.) Run: `cargo test --release --test layering`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of its own layer or below, never above.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "data types",
        &[
            "tensor",
            "analysis",
            "report",
            "finite",
            "capture_file",
            "hooks",
            "intervene",
            "forward",
            "select",
            "rope",
            "config",
            "config_fields",
            "study_types",
        ],
    ),
    (
        "file formats",
        &[
            "gguf",
            "gguf_keys",
            "gguf_config",
            "gguf_tokenizer",
            "tokenizer",
            "weights",
            "model_files",
            "convert",
            "fetch",
            "hub",
            "corpus",
        ],
    ),
    ("GPU context", &["gpu"]),
    ("kernels", &["kernels"]),
    ("models", &["model"]),
    (
        "studies",
        &[
            "probe", "ppl", "compress", "bench", "generate", "zoo", "scale",
        ],
    ),
    // crates/python: the Python bindings, a frontend over the public API.
    (
        "bindings",
        &[
            "py_errors",
            "py_arrays",
            "py_inputs",
            "py_model",
            "py_studies",
        ],
    ),
];

/// Files the size limit does not apply to, with the reason.
const LONG_FILES: &[(&str, &str)] = &[];

/// Lines a source file may have (the layout's "~400").
const MAX_LINES: usize = 420;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `root` belongs to (`src/model/pass.rs` → `model`).
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let m = first.trim_end_matches(".rs");
    (!matches!(m, "lib" | "main" | "cli" | "prompt_args")).then(|| m.to_string())
}

/// Code without comments (line comments and doc comments; string contents are kept, which
/// only errs on the side of more arrows).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names: `crate::x`, and `crate::{x, y::z}` groups.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas at brace depth 0.
            let (mut depth, mut start) = (0usize, 0usize);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

struct Crate {
    root: PathBuf,
    /// module → modules it names.
    graph: BTreeMap<String, BTreeSet<String>>,
    /// module → (file, module named) for messages.
    witness: BTreeMap<(String, String), PathBuf>,
}

fn read_crate(root: &Path) -> Crate {
    let mut fs = Vec::new();
    files(root, &mut fs);
    assert!(!fs.is_empty(), "no sources under {}", root.display());
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut witness = BTreeMap::new();
    for f in fs {
        let Some(m) = module_of(root, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = graph.entry(m.clone()).or_default();
        for u in uses(&code(&text)) {
            if u != m {
                witness.entry((m.clone(), u.clone())).or_insert(f.clone());
                deps.insert(u);
            }
        }
    }
    Crate {
        root: root.to_path_buf(),
        graph,
        witness,
    }
}

fn crates() -> Vec<Crate> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![repo.join("src")];
    if let Ok(rd) = std::fs::read_dir(repo.join("crates")) {
        roots.extend(rd.flatten().map(|e| e.path().join("src")));
    }
    roots.iter().map(|r| read_crate(r)).collect()
}

/// A cycle through `start`, if any (depth-first search over the module graph).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn dfs(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if g.contains_key(next) && seen.insert(next.clone()) {
                path.push(next.clone());
                if dfs(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    dfs(graph, start, start, &mut path, &mut seen).then(|| {
        path.push(start.to_string());
        path
    })
}

#[test]
fn no_import_cycles_between_modules() {
    let mut found = Vec::new();
    for c in crates() {
        for m in c.graph.keys() {
            if let Some(cy) = cycle(&c.graph, m) {
                let steps: Vec<String> = cy
                    .windows(2)
                    .map(|w| {
                        let f = &c.witness[&(w[0].clone(), w[1].clone())];
                        format!("{} -> {} ({})", w[0], w[1], f.display())
                    })
                    .collect();
                found.push(format!("{}: {}", c.root.display(), steps.join(", ")));
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn dependencies_point_down_the_layers() {
    let layer = |m: &str| LAYERS.iter().position(|(_, ms)| ms.contains(&m));
    let mut wrong = Vec::new();
    for c in crates() {
        for (m, deps) in &c.graph {
            let Some(lm) = layer(m) else {
                wrong.push(format!(
                    "module '{m}' ({}) is in no layer of LAYERS",
                    c.root.display()
                ));
                continue;
            };
            for d in deps {
                if let Some(ld) = layer(d) {
                    if ld > lm {
                        let f = &c.witness[&(m.clone(), d.clone())];
                        wrong.push(format!(
                            "{m} ({}) uses {d} ({}) in {}",
                            LAYERS[lm].0,
                            LAYERS[ld].0,
                            f.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Below the GPU layer no code names wgpu: those modules run on any machine, GPU or not.
#[test]
fn data_and_formats_never_name_wgpu() {
    let gpu = LAYERS
        .iter()
        .position(|(n, _)| *n == "GPU context")
        .unwrap();
    let below: Vec<&str> = LAYERS[..gpu]
        .iter()
        .flat_map(|(_, ms)| ms.iter().copied())
        .collect();
    let mut wrong = Vec::new();
    for c in crates() {
        let mut fs = Vec::new();
        files(&c.root, &mut fs);
        for f in fs {
            let Some(m) = module_of(&c.root, &f) else {
                continue;
            };
            if below.contains(&m.as_str())
                && code(&std::fs::read_to_string(&f).unwrap()).contains("wgpu")
            {
                wrong.push(f.display().to_string());
            }
        }
    }
    assert!(wrong.is_empty(), "these files name wgpu: {wrong:?}");
}

#[test]
fn source_files_are_short_and_say_what_they_hold() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    for c in crates() {
        let mut fs = Vec::new();
        files(&c.root, &mut fs);
        for f in fs {
            let text = std::fs::read_to_string(&f).unwrap();
            let rel = f.strip_prefix(repo).unwrap().display().to_string();
            let n = text.lines().count();
            if n > MAX_LINES && !LONG_FILES.iter().any(|(p, _)| *p == rel) {
                wrong.push(format!("{rel}: {n} lines (limit {MAX_LINES})"));
            }
            if !text.trim_start().starts_with("//!") && !text.trim_start().starts_with("#![") {
                wrong.push(format!("{rel}: no `//!` header saying what it holds"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_arrows_and_cycles() {
    let u = uses("use crate::{a::X, b, c::{d, e}};\nfn f() { crate::g::h(); }");
    assert_eq!(u, ["a", "b", "c", "g"].map(String::from).into());
    let mut g = BTreeMap::new();
    g.insert("x".to_string(), BTreeSet::from(["y".to_string()]));
    g.insert("y".to_string(), BTreeSet::from(["x".to_string()]));
    assert!(cycle(&g, "x").is_some());
    g.insert("y".to_string(), BTreeSet::new());
    assert!(cycle(&g, "x").is_none());
}

/// The API frontends use (CLI, Python bindings, examples) speaks in token ids, tensors, hook
/// names and reports: no public item of these files names a wgpu type. (`gpu` and `kernels` are
/// the engine's own layers, public for the kernel benchmarks.)
#[test]
fn the_model_api_has_no_wgpu_types() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut api = vec![repo.join("src/forward.rs")];
    for f in ["mod.rs", "session.rs", "run.rs"] {
        api.push(repo.join("src/model").join(f));
    }
    let mut wrong = Vec::new();
    for f in api {
        let text = code(&std::fs::read_to_string(&f).unwrap());
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("pub ") && !t.starts_with("pub(") && t.contains("wgpu") {
                wrong.push(format!("{}:{}: {}", f.display(), i + 1, t));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "public items with wgpu types:\n{}",
        wrong.join("\n")
    );
}
