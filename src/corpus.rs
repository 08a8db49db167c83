//! Text corpora as windows of token ids.

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

/// `seqs` non-overlapping windows of `seq_len` tokens, starting `from` (a fraction of the text,
/// e.g. 0.9 for the usual held-out last 10%).
pub fn windows(
    tok: &Tokenizer,
    path: &Path,
    seq_len: usize,
    seqs: usize,
    from: f64,
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
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading corpus {}", path.display()))?;
    let body = strip_gutenberg(&text);
    let mut start = (body.len() as f64 * from) as usize;
    while !body.is_char_boundary(start) {
        start += 1;
    }
    let body = &body[start..];
    let need = seq_len * seqs;
    // Tokenize only as much text as needed (about 4 bytes a token), growing if short.
    let mut take = (need * 6).min(body.len());
    loop {
        let mut end = take;
        while !body.is_char_boundary(end) {
            end += 1;
        }
        let ids = tok.encode(&body[..end])?;
        if ids.len() > need || end >= body.len() {
            if ids.len() < seq_len {
                bail!(
                    "{}: only {} tokens after position {from}, fewer than --seq-len {seq_len}",
                    path.display(),
                    ids.len()
                );
            }
            return Ok(ids
                .chunks_exact(seq_len)
                .take(seqs)
                .map(<[u32]>::to_vec)
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
