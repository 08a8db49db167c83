//! Token (and position) embedding: embed.wgsl, its wrapper and CPU reference.
//! Depends on gpu and the kernels registry only.

use super::{Kernels, Shader};
use crate::gpu::{grid_1d, Graph};

const EMBED: Shader = Shader::main("embed.wgsl", include_str!("embed.wgsl"));

/// The shaders of this op, for `kernels::REGISTRY`.
pub const SHADERS: &[Shader] = &[EMBED];

impl Kernels {
    /// `resid = wte[tok] + wpe[pos]` for the tokens inside one vocabulary chunk `[start, start+count)`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        start: usize,
        count: usize,
        tokens: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        wte_chunk: &wgpu::Buffer,
        wpe: &wgpu::Buffer,
        resid: &wgpu::Buffer,
        tok_emb: &wgpu::Buffer,
        pos_emb: &wgpu::Buffer,
    ) {
        self.embed_opt(
            g,
            rows,
            d,
            start,
            count,
            tokens,
            rowinfo,
            wte_chunk,
            Some(wpe),
            resid,
            tok_emb,
            pos_emb,
        );
    }

    /// `embed` with an optional position table (None for RoPE models: `resid = wte[tok]`).
    #[allow(clippy::too_many_arguments)]
    pub fn embed_opt(
        &self,
        g: &mut Graph,
        rows: usize,
        d: usize,
        start: usize,
        count: usize,
        tokens: &wgpu::Buffer,
        rowinfo: &wgpu::Buffer,
        wte_chunk: &wgpu::Buffer,
        wpe: Option<&wgpu::Buffer>,
        resid: &wgpu::Buffer,
        tok_emb: &wgpu::Buffer,
        pos_emb: &wgpu::Buffer,
    ) {
        g.dispatch(
            "embed",
            self.main_pipeline(&EMBED),
            &[
                rows as u32,
                d as u32,
                start as u32,
                count as u32,
                wpe.is_some() as u32,
                0,
                0,
                0,
            ],
            vec![
                tokens.into(),
                rowinfo.into(),
                wte_chunk.into(),
                wpe.unwrap_or(&self.dummy).into(),
                resid.into(),
                tok_emb.into(),
                pos_emb.into(),
            ],
            grid_1d(rows * d, 256),
        );
    }

    /// The embed kernel in any [`EmbedMode`], position p reading row `p + pos_offset` of `wpe`
    /// `[pos_offset + n_positions, d]` (OPT: 2). `PositionsOnly` is one dispatch for all rows
    /// (the vocabulary chunk is unused); the others run once per chunk `[start, start + count)`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed_mode(
        &self,
        g: &mut Graph,
        (rows, d): (usize, usize),
        (start, count): (usize, usize),
        (tokens, rowinfo): (&wgpu::Buffer, &wgpu::Buffer),
        (wte_chunk, wpe): (&wgpu::Buffer, Option<&wgpu::Buffer>),
        (mode, pos_offset): (EmbedMode, usize),
        (resid, tok_emb, pos_emb): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    ) {
        g.dispatch(
            "embed",
            self.main_pipeline(&EMBED),
            &[
                rows as u32,
                d as u32,
                start as u32,
                count as u32,
                mode as u32,
                pos_offset as u32,
                0,
                0,
            ],
            vec![
                tokens.into(),
                rowinfo.into(),
                wte_chunk.into(),
                wpe.unwrap_or(&self.dummy).into(),
                resid.into(),
                tok_emb.into(),
                pos_emb.into(),
            ],
            grid_1d(rows * d, 256),
        );
    }
}

/// What one embed dispatch writes (embed.wgsl's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedMode {
    /// `resid = tok_emb = wte[tok]` (RoPE models).
    Token = 0,
    /// `resid = wte[tok] + wpe[pos + offset]`; `tok_emb` and `pos_emb` keep both terms.
    TokenAndPosition = 1,
    /// `pos_emb = wpe[pos + offset]` only, every row in one dispatch.
    PositionsOnly = 2,
    /// `tok_emb = wte[tok]` only (OPT's project_in comes between it and the position term).
    TokenOnly = 3,
}

/// CPU reference of `embed` over the whole vocabulary: (resid, tok_emb, pos_emb), each
/// `[rows, d]`, for rows of token `tokens[r]` at position `pos[r]`; `wte` is `[vocab, d]`, `wpe`
/// `[n_pos, d]`.
pub fn embed_ref(
    d: usize,
    tokens: &[u32],
    pos: &[u32],
    wte: &[f32],
    wpe: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut want_r, mut want_t, mut want_p) = (vec![], vec![], vec![]);
    for r in 0..tokens.len() {
        let (t, p) = (tokens[r] as usize, pos[r] as usize);
        for c in 0..d {
            let (e, q) = (wte[t * d + c], wpe[p * d + c]);
            want_t.push(e);
            want_p.push(q);
            want_r.push(e + q);
        }
    }
    (want_r, want_t, want_p)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::{embed_ref, EmbedMode};
    use crate::gpu::Graph;
    use crate::kernels::test_util::*;

    #[test]
    fn embed_two_vocab_chunks() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(6);
        let (vocab, n_pos, d, split) = (10, 20, 37, 6);
        let wte = randn(&mut rng, vocab * d, 1.0);
        let wpe = randn(&mut rng, n_pos * d, 1.0);
        let tokens: Vec<u32> = vec![0, 9, 5, 6, 3, 7, 9];
        let pos: Vec<u32> = vec![0, 19, 3, 3, 11, 1, 0];
        let rows = tokens.len();
        let rowinfo: Vec<[u32; 4]> = pos.iter().map(|&p| [p % 2, p, 1, 0]).collect();
        let (tb, ib, pb) = (
            upload(&ctx, &tokens),
            upload(&ctx, &rowinfo),
            upload(&ctx, &wpe),
        );
        let chunk0 = upload(&ctx, &wte[..split * d]);
        let chunk1 = upload(&ctx, &wte[split * d..]);
        let (resid, te, pe) = (
            zeros(&ctx, rows * d),
            zeros(&ctx, rows * d),
            zeros(&ctx, rows * d),
        );
        let mut g = Graph::default();
        for (start, count, chunk) in [(0, split, &chunk0), (split, vocab - split, &chunk1)] {
            kern.embed(
                &mut g, rows, d, start, count, &tb, &ib, chunk, &pb, &resid, &te, &pe,
            );
        }
        run(&ctx, g);
        let (want_r, want_t, want_p) = embed_ref(d, &tokens, &pos, &wte, &wpe);
        assert_eq!(read(&ctx, &te, rows * d), want_t, "tok_emb");
        assert_eq!(read(&ctx, &pe, rows * d), want_p, "pos_emb");
        assert_eq!(read(&ctx, &resid, rows * d), want_r, "resid");
    }

    /// OPT's path: token rows only (two chunks, width 23), then positions only at an offset of
    /// 2 (one dispatch); nothing else is written.
    #[test]
    fn embed_token_only_and_offset_positions() {
        let (ctx, kern) = setup();
        let mut rng = StdRng::seed_from_u64(61);
        let (vocab, n_pos, d, split, off) = (10, 9, 23, 6, 2);
        let wte = randn(&mut rng, vocab * d, 1.0);
        let wpe = randn(&mut rng, (n_pos + off) * d, 1.0);
        let tokens: Vec<u32> = vec![0, 9, 5, 6, 3, 7, 9];
        let pos: Vec<u32> = vec![0, 8, 3, 3, 1, 1, 0];
        let rows = tokens.len();
        let rowinfo: Vec<[u32; 4]> = pos.iter().map(|&p| [0, p, 1, 0]).collect();
        let (tb, ib, pb) = (
            upload(&ctx, &tokens),
            upload(&ctx, &rowinfo),
            upload(&ctx, &wpe),
        );
        let chunk0 = upload(&ctx, &wte[..split * d]);
        let chunk1 = upload(&ctx, &wte[split * d..]);
        let sentinel = vec![7.5f32; rows * d];
        let (resid, te, pe) = (
            upload(&ctx, &sentinel),
            upload(&ctx, &sentinel),
            upload(&ctx, &sentinel),
        );
        let mut g = Graph::default();
        for (start, count, chunk) in [(0, split, &chunk0), (split, vocab - split, &chunk1)] {
            let mode = (EmbedMode::TokenOnly, 0);
            kern.embed_mode(
                &mut g,
                (rows, d),
                (start, count),
                (&tb, &ib),
                (chunk, None),
                mode,
                (&resid, &te, &pe),
            );
        }
        let mode = (EmbedMode::PositionsOnly, off);
        let (res, tee) = (zeros(&ctx, rows * d), zeros(&ctx, rows * d));
        kern.embed_mode(
            &mut g,
            (rows, d),
            (0, 0),
            (&tb, &ib),
            (&chunk0, Some(&pb)),
            mode,
            (&res, &tee, &pe),
        );
        run(&ctx, g);
        let shifted: Vec<u32> = pos.iter().map(|p| p + off as u32).collect();
        let (_, want_t, want_p) = embed_ref(d, &tokens, &shifted, &wte, &wpe);
        assert!(want_p.iter().all(|&v| v != 7.5 && v != 0.0));
        assert_eq!(read(&ctx, &te, rows * d), want_t, "tok_emb");
        assert_eq!(read(&ctx, &pe, rows * d), want_p, "pos_emb at offset 2");
        assert_eq!(read(&ctx, &resid, rows * d), sentinel, "resid untouched");
        assert_eq!(
            read(&ctx, &tee, rows * d),
            vec![0.0; rows * d],
            "positions only"
        );
    }
}
