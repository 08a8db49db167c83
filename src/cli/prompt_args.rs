//! Prompt and BOS arguments of the commands (`--prompt-file`, `--no-bos`) and the lines that say
//! whether a BOS was added. Binary only: depends on the library's tokenizer, nothing else of it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use outlier_probe::tokenizer::Tokenizer;

/// Whether texts get the BOS their tokenizer asks for.
#[derive(Args, Clone, Copy)]
pub struct BosArgs {
    /// Add no BOS (nor any other special token) even where the tokenizer's files ask for one
    /// (tokenizer.json post-processor, GGUF tokenizer.ggml.add_bos_token)
    #[arg(long)]
    no_bos: bool,
}

impl BosArgs {
    /// Whether to add the special tokens the tokenizer asks for.
    pub fn add(self) -> bool {
        !self.no_bos
    }
}

/// The text of a --prompt-file: the file's bytes exactly, or all of stdin for `-`.
fn read_prompt_file(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the prompt from stdin (--prompt-file -): is it UTF-8 text?")?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("reading --prompt-file {}", path.display()))
}

/// The prompts of `generate`: the --prompt texts, or one per --prompt-file (stdin at most once).
pub fn prompts_from(prompt: Vec<String>, files: &[PathBuf]) -> Result<Vec<String>> {
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        anyhow::bail!("--prompt-file - (stdin) can be given only once");
    }
    if files.is_empty() {
        return Ok(prompt);
    }
    files.iter().map(|f| read_prompt_file(f)).collect()
}

/// The one prompt of `capture` or `probe`, from --prompt or --prompt-file.
pub fn prompt_from(prompt: Option<String>, file: Option<&Path>) -> Result<Option<String>> {
    match (prompt, file) {
        (Some(_), Some(_)) => anyhow::bail!("give --prompt or --prompt-file, not both"),
        (Some(p), None) => Ok(Some(p)),
        (None, Some(f)) => read_prompt_file(f).map(Some),
        (None, None) => Ok(None),
    }
}

/// What corpus windows start with, for messages.
pub fn window_bos(tok: &Tokenizer, add: bool) -> String {
    if add && !tok.special_prefix().is_empty() {
        format!("each starts with the BOS; {}", tok.describe_special(true))
    } else {
        tok.describe_special(add)
    }
}

/// ", BOS <|begin_of_text|> first" for a report's source line when a BOS is added, else "".
pub fn bos_note(tok: &Tokenizer, add: bool) -> String {
    match tok.special_prefix() {
        [] => String::new(),
        p if add => {
            let names: Vec<String> = p.iter().map(|&i| tok.token_str(i)).collect();
            format!(", BOS {} first", names.join(" "))
        }
        _ => ", no BOS (--no-bos)".into(),
    }
}
