//! Hook selections: glob patterns over hook names (`HookFilter`), checked against a model's hooks.
//! Depends on the hook space only; never on wgpu, models or studies.

use super::{aliases_of, hooks_of, HookSpace, Src};

/// Which hooks to capture: glob patterns (`blocks.*.attn.hook_pattern`), comma-separated on the CLI.
/// Every pattern must select at least one hook point of the model it is used with: forward
/// passes and [`HookFilter::resolve`] refuse a filter with a pattern that matches nothing.
#[derive(Clone, Debug, Default)]
pub struct HookFilter {
    patterns: Vec<glob::Pattern>,
}

impl HookFilter {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn all() -> Self {
        Self::parse("*").expect("valid glob")
    }

    /// Comma-separated globs.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut patterns = Vec::new();
        for p in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            patterns.push(
                glob::Pattern::new(p).map_err(|e| anyhow::anyhow!("hook pattern '{p}': {e}"))?,
            );
        }
        Ok(Self { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn wants(&self, hook: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(hook))
    }

    /// Whether hook `i` of `src` (`hooks_of(src)[i]`) is selected, by its name or its alias.
    pub fn wants_nth(&self, src: Src, i: usize) -> bool {
        hooks_of(src).get(i).is_some_and(|h| self.wants(h))
            || aliases_of(src).get(i).is_some_and(|h| self.wants(h))
    }

    /// Whether any hook of `src` is selected (by name or alias).
    pub fn wants_src(&self, src: Src) -> bool {
        (0..hooks_of(src).len()).any(|i| self.wants_nth(src, i))
    }

    pub fn wants_any_src<const N: usize>(
        &self,
        n_layer: usize,
        f: impl Fn(usize) -> [Src; N],
    ) -> bool {
        (0..n_layer).any(|l| f(l).into_iter().any(|s| self.wants_src(s)))
    }

    /// The glob patterns, as given.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(glob::Pattern::as_str)
    }

    /// Every pattern selects at least one hook point of the model; the error names each one that
    /// selects none, with a hint (the model's layer range, a hook of another architecture, the
    /// nearest hook name). A filter without patterns passes (it captures nothing).
    pub fn check(&self, space: &HookSpace) -> anyhow::Result<()> {
        crate::hooks::check_patterns(&self.patterns, space)
    }

    /// The hooks of a model this filter selects, in forward order. An error when no pattern is
    /// given or when any pattern selects nothing (see [`HookFilter::check`]).
    pub fn resolve(&self, space: &HookSpace) -> anyhow::Result<Vec<String>> {
        if self.patterns.is_empty() {
            anyhow::bail!(
                "no hook pattern given: the hook patterns select no hook point (e.g. 'blocks.0.hook_resid_pre', 'blocks.*.attn.hook_pattern', 'logits')"
            );
        }
        self.check(space)?;
        Ok(space
            .sources()
            .into_iter()
            .flat_map(|src| {
                hooks_of(src)
                    .into_iter()
                    .enumerate()
                    .filter(move |&(i, _)| self.wants_nth(src, i))
                    .map(|(_, h)| h)
            })
            .collect())
    }
}
