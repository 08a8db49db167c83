//! Text corpora as windows of token ids.
//! File formats: depends on tokenizer and tensor; never on wgpu or models.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::tokenizer::Tokenizer;

/// The body of a Project Gutenberg text (between its START and END markers), or the whole text.
pub fn strip_gutenberg(text: &str) -> &str {
    let start = text
        .find("*** START OF")
        .and_then(|i| text[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or(0);
    let end = text[start..]
        .find("*** END OF")
        .map(|i| start + i)
        .unwrap_or(text.len());
    &text[start..end]
}

/// `seqs` windows of `seq_len` tokens each, starting `from` (a fraction of the text, e.g. 0.9 for
/// the usual held-out last 10%), with the BOS the tokenizer asks for.
///
/// The text is tokenized once, without special tokens, and cut into consecutive, non-overlapping
/// chunks. When the tokenizer asks for a BOS ([`Tokenizer::special_prefix`]), every window is
/// that BOS followed by `seq_len - 1` text tokens, as transformers' tokenizer gives for the
/// chunk's text (up to merges across the cut): the model always sees `seq_len` tokens, and the BOS is context,
/// never a target (it predicts the chunk's first token, so each window scores `seq_len - 1`
/// text tokens either way). Special tokens a tokenizer puts after a text (an EOS) are not
/// added: the text goes on past the window. Without a BOS, windows are `seq_len` text tokens.
///
/// Errors: `seq_len` < 2 or not longer than the BOS, `seqs` = 0, `from` outside [0, 1), an
/// unreadable file, or too little text for one window.
pub fn windows(
    tok: &Tokenizer,
    path: &Path,
    seq_len: usize,
    seqs: usize,
    from: f64,
) -> Result<Vec<Vec<u32>>> {
    windows_with(tok, path, seq_len, seqs, from, true)
}

/// [`windows`], with the BOS only when `add_bos` (false: `seq_len` text tokens, whatever the
/// tokenizer asks for).
pub fn windows_with(
    tok: &Tokenizer,
    path: &Path,
    seq_len: usize,
    seqs: usize,
    from: f64,
    add_bos: bool,
) -> Result<Vec<Vec<u32>>> {
    if seq_len < 2 {
        bail!("--seq-len must be at least 2 to predict anything");
    }
    if seqs == 0 {
        bail!("--seqs must be at least 1");
    }
    if !(0.0..1.0).contains(&from) {
        bail!("--from must be in [0, 1)");
    }
    let prefix: &[u32] = if add_bos { tok.special_prefix() } else { &[] };
    if seq_len <= prefix.len() {
        bail!(
            "--seq-len {seq_len} leaves no room for text after the {} BOS token(s)",
            prefix.len()
        );
    }
    let chunk = seq_len - prefix.len();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading corpus {}", path.display()))?;
    let body = strip_gutenberg(&text);
    let mut start = (body.len() as f64 * from) as usize;
    while !body.is_char_boundary(start) {
        start += 1;
    }
    let body = &body[start..];
    let need = chunk * seqs;
    // Tokenize only as much text as needed (about 4 bytes a token), growing if short.
    let mut take = (need * 6).min(body.len());
    loop {
        let mut end = take;
        while !body.is_char_boundary(end) {
            end += 1;
        }
        let ids = tok.encode_with_special(&body[..end], false)?;
        if ids.len() > need || end >= body.len() {
            if ids.len() < chunk {
                let bos = if prefix.is_empty() {
                    ""
                } else {
                    " less the BOS"
                };
                bail!(
                    "{}: only {} tokens after position {from}, fewer than --seq-len {seq_len}{bos}",
                    path.display(),
                    ids.len()
                );
            }
            return Ok(ids
                .chunks_exact(chunk)
                .take(seqs)
                .map(|c| [prefix, c].concat())
                .collect());
        }
        take = (take * 2).min(body.len());
    }
}

/// Mean negative log-likelihood (nats) of each next token given the logits [T, V] of a window.
pub fn nll(logits: &crate::tensor::Tensor, tokens: &[u32]) -> (f64, usize) {
    let mut sum = 0.0;
    let n = tokens.len().saturating_sub(1);
    for t in 0..n {
        let row = logits.row(t);
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        sum += lse - row[tokens[t + 1] as usize] as f64;
    }
    (sum, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gutenberg_markers() {
        let t = "header\n*** START OF THE BOOK ***\nbody text\n*** END OF THE BOOK ***\nlicense";
        assert_eq!(strip_gutenberg(t), "body text\n");
        assert_eq!(strip_gutenberg("plain"), "plain");
    }

    #[test]
    fn nll_of_uniform_logits_is_log_v() {
        let l = crate::tensor::Tensor::new(vec![3, 4], vec![0.5; 12]);
        let (s, n) = nll(&l, &[0, 1, 2]);
        assert_eq!(n, 2);
        assert!((s / n as f64 - 4f64.ln()).abs() < 1e-9);
        let mut d = vec![0.0; 12];
        d[1] = 50.0;
        let (s, _) = nll(&crate::tensor::Tensor::new(vec![3, 4], d), &[0, 1, 2]);
        assert!(s > 0.0 && s < 60.0);
    }
}
