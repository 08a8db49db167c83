//! The embedding ops of a [`Pass`]: tokens (+ learned positions) into the residual stream, with
//! a position offset (OPT), or tokens and positions apart (OPT with `project_in`); one dispatch
//! per vocabulary chunk. Part of the op vocabulary of `pass.rs`; never names an architecture.

use super::acts::Acts;
use super::pass::Pass;
use crate::kernels::EmbedMode;

impl Pass<'_> {
    /// Token embedding (+ learned positions `wpe` `[n_positions, D]`) into `a.resid`, one
    /// dispatch per vocabulary chunk; also writes `a.tok_emb` and `a.pos_emb`.
    pub fn embed(&mut self, a: &Acts, wpe: Option<&wgpu::Buffer>) {
        for c in &self.emb.wte {
            if let Some(q) = &c.q {
                assert!(
                    wpe.is_none(),
                    "blocks are kept only for embeddings without positions"
                );
                let (rows, d) = (self.rows, self.cfg.n_embd);
                let (resid, tok) = (&a.resid, &a.tok_emb);
                self.k
                    .qembed(&mut self.g, (rows, d), c.start, &self.tokens, q, resid, tok);
                continue;
            }
            self.k.embed_opt(
                &mut self.g,
                self.rows,
                self.cfg.n_embd,
                c.start,
                c.count,
                &self.tokens,
                &self.info,
                &c.buf,
                wpe,
                &a.resid,
                &a.tok_emb,
                &a.pos_emb,
            );
        }
    }

    /// Token embedding + learned positions into `a.resid` like [`Pass::embed`], position p
    /// reading row `p + pos_offset` of `wpe` (OPT: `cfg.pos_offset` = 2).
    pub fn embed_offset(&mut self, a: &Acts, wpe: &wgpu::Buffer, pos_offset: usize) {
        for c in &self.emb.wte {
            self.k.embed_mode(
                &mut self.g,
                (self.rows, self.cfg.n_embd),
                (c.start, c.count),
                (&self.tokens, &self.info),
                (&c.buf, Some(wpe)),
                (EmbedMode::TokenAndPosition, pos_offset),
                (&a.resid, &a.tok_emb, &a.pos_emb),
            );
        }
    }

    /// The embedding matrix's rows only, `[R, embed_dim]`, into `a.tok_emb` (OPT with
    /// project_in: the position term comes after the projection).
    pub fn embed_tokens_only(&mut self, a: &Acts) {
        for c in &self.emb.wte {
            self.k.embed_mode(
                &mut self.g,
                (self.rows, self.cfg.embed_dim),
                (c.start, c.count),
                (&self.tokens, &self.info),
                (&c.buf, None),
                (EmbedMode::TokenOnly, 0),
                (&a.resid, &a.tok_emb, &a.pos_emb),
            );
        }
    }

    /// Learned positions only, `[R, D]`, into `a.pos_emb`: position p reads row
    /// `p + pos_offset` of `wpe`.
    pub fn positions_only(&mut self, a: &Acts, wpe: &wgpu::Buffer, pos_offset: usize) {
        let any_chunk = &self.emb.wte[0].buf;
        self.k.embed_mode(
            &mut self.g,
            (self.rows, self.cfg.n_embd),
            (0, 0),
            (&self.tokens, &self.info),
            (any_chunk, Some(wpe)),
            (EmbedMode::PositionsOnly, pos_offset),
            (&a.resid, &a.tok_emb, &a.pos_emb),
        );
    }
}
