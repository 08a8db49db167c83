//! Token classes of outlier tokens (paper §3: outlier tokens are the initial token, strong delimiters
//! and weak-semantic words).
//! Depends on std only; never on the report, wgpu or models.
//!
//! Rule, applied to a token string as the tokenizer decodes it (`" the"`, `"."`, `"\n"`); byte-level
//! and SentencePiece markers (`Ġ` space, `Ċ` newline, `ĉ` tab, `▁` space, `<0x0A>`) are mapped to the
//! characters they stand for first:
//! 1. position 0 → [`TokenClass::Initial`] (whatever the token is);
//! 2. the raw string contains a newline (`"\n"`, `".\n"`, `"\n\n"`) → [`TokenClass::StrongDelimiter`]:
//!    stripping would turn a bare newline into the empty string, which the paper's code would count as
//!    weak semantic, but a line break is a delimiter in every sense the paper means;
//! 3. the stripped string is a special token (`<|endoftext|>`, `<s>`, `</s>`) or made only of the
//!    delimiter characters `. , ; : ! ? - – — …` → [`TokenClass::StrongDelimiter`];
//! 4. the stripped string is empty (a lone space or `▁`), all digits, or (case-insensitively) one of the
//!    function words in [`WEAK_WORDS`] → [`TokenClass::WeakSemantic`];
//! 5. anything else → [`TokenClass::Other`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Class of one token position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenClass {
    Initial,
    StrongDelimiter,
    WeakSemantic,
    Other,
}

impl TokenClass {
    pub const ALL: [TokenClass; 4] = [
        TokenClass::Initial,
        TokenClass::StrongDelimiter,
        TokenClass::WeakSemantic,
        TokenClass::Other,
    ];

    /// Human-readable name ("initial", "strong delimiter", …).
    pub fn label(self) -> &'static str {
        match self {
            TokenClass::Initial => "initial",
            TokenClass::StrongDelimiter => "strong delimiter",
            TokenClass::WeakSemantic => "weak semantic",
            TokenClass::Other => "other",
        }
    }
}

/// Characters that make up strong-delimiter tokens.
pub const DELIMITER_CHARS: &[char] = &['.', ',', ';', ':', '!', '?', '-', '–', '—', '…'];

/// Special tokens counted as strong delimiters when they occur after position 0.
pub const SPECIAL_TOKENS: &[&str] = &["<|endoftext|>", "<s>", "</s>", "<|begin_of_text|>"];

/// Function words counted as weak semantic (compared lower-cased, after stripping).
pub const WEAK_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "in", "on", "at", "to", "for", "from", "by",
    "with", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "there",
    "than", "so", "if", "not", "no", "'s", "s",
];

/// Map tokenizer markers to the characters they stand for (`Ġ` → space, `Ċ` → `\n`, `ĉ` → `\t`,
/// `▁` → space, `<0x0A>` → `\n`).
pub fn normalize_token(raw: &str) -> String {
    raw.replace("<0x0A>", "\n")
        .replace("<0x09>", "\t")
        .replace("<0x20>", " ")
        .chars()
        .map(|c| match c {
            'Ġ' | '▁' => ' ',
            'Ċ' => '\n',
            'ĉ' => '\t',
            c => c,
        })
        .collect()
}

/// Class of the token `raw` at `position` (rule in the module documentation).
pub fn classify_token(position: usize, raw: &str) -> TokenClass {
    if position == 0 {
        return TokenClass::Initial;
    }
    let norm = normalize_token(raw);
    if norm.contains('\n') || norm.contains('\r') {
        return TokenClass::StrongDelimiter;
    }
    let s = norm.trim();
    if SPECIAL_TOKENS.contains(&s)
        || (!s.is_empty() && s.chars().all(|c| DELIMITER_CHARS.contains(&c)))
    {
        return TokenClass::StrongDelimiter;
    }
    if s.is_empty() || s.chars().all(|c| c.is_ascii_digit()) {
        return TokenClass::WeakSemantic;
    }
    let lower = s.to_lowercase();
    if WEAK_WORDS.contains(&lower.as_str()) {
        return TokenClass::WeakSemantic;
    }
    TokenClass::Other
}

/// Classes of every position of a sequence.
pub fn classify_sequence(tokens: &[String]) -> Vec<TokenClass> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| classify_token(i, t))
        .collect()
}

/// How many tokens fall in each class, and which strings they were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub initial: usize,
    pub strong_delimiter: usize,
    pub weak_semantic: usize,
    pub other: usize,
    /// Token strings (as decoded, markers normalised) with their counts.
    pub texts: BTreeMap<String, usize>,
}

impl ClassCounts {
    pub fn add(&mut self, class: TokenClass, text: &str) {
        match class {
            TokenClass::Initial => self.initial += 1,
            TokenClass::StrongDelimiter => self.strong_delimiter += 1,
            TokenClass::WeakSemantic => self.weak_semantic += 1,
            TokenClass::Other => self.other += 1,
        }
        *self.texts.entry(normalize_token(text)).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &ClassCounts) {
        self.initial += other.initial;
        self.strong_delimiter += other.strong_delimiter;
        self.weak_semantic += other.weak_semantic;
        self.other += other.other;
        for (k, v) in &other.texts {
            *self.texts.entry(k.clone()).or_insert(0) += v;
        }
    }

    pub fn get(&self, class: TokenClass) -> usize {
        match class {
            TokenClass::Initial => self.initial,
            TokenClass::StrongDelimiter => self.strong_delimiter,
            TokenClass::WeakSemantic => self.weak_semantic,
            TokenClass::Other => self.other,
        }
    }

    pub fn total(&self) -> usize {
        self.initial + self.strong_delimiter + self.weak_semantic + self.other
    }

    /// Share of `class` among all counted tokens (0 when none were counted).
    pub fn share(&self, class: TokenClass) -> f32 {
        let n = self.total();
        if n == 0 {
            0.0
        } else {
            self.get(class) as f32 / n as f32
        }
    }

    /// The most frequent token strings, most frequent first (ties alphabetical).
    pub fn top_texts(&self, k: usize) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self.texts.iter().map(|(s, n)| (s.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }
}

/// Counts of the classes of the given positions of one sequence.
pub fn count_classes(tokens: &[String], positions: &[usize]) -> ClassCounts {
    let mut c = ClassCounts::default();
    for &p in positions {
        if let Some(t) = tokens.get(p) {
            c.add(classify_token(p, t), t);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenClass::*;

    #[test]
    fn probe_prompt_classes() {
        // GPT-2 tokens of "Summer is warm. Winter is cold.\n"
        let toks: Vec<String> = [
            "Summer", " is", " warm", ".", " Winter", " is", " cold", ".", "\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            classify_sequence(&toks),
            vec![
                Initial,
                WeakSemantic,
                Other,
                StrongDelimiter,
                Other,
                WeakSemantic,
                Other,
                StrongDelimiter,
                StrongDelimiter
            ]
        );
    }

    #[test]
    fn newline_and_markers() {
        assert_eq!(classify_token(3, "\n"), StrongDelimiter);
        assert_eq!(classify_token(3, "\n\n"), StrongDelimiter);
        assert_eq!(classify_token(3, "Ċ"), StrongDelimiter);
        assert_eq!(classify_token(3, "<0x0A>"), StrongDelimiter);
        assert_eq!(classify_token(3, ".\n"), StrongDelimiter);
        assert_eq!(
            classify_token(3, "▁"),
            WeakSemantic,
            "bare SentencePiece space strips to empty"
        );
        assert_eq!(classify_token(3, " "), WeakSemantic);
        assert_eq!(classify_token(3, "Ġthe"), WeakSemantic);
        assert_eq!(classify_token(3, "▁The"), WeakSemantic);
    }

    #[test]
    fn delimiters_words_digits_other() {
        for d in [
            ",",
            " ,",
            ";",
            ":",
            "!",
            "?",
            " -",
            "—",
            "...",
            "…",
            "<|endoftext|>",
        ] {
            assert_eq!(classify_token(1, d), StrongDelimiter, "{d:?}");
        }
        for w in [
            " and", " of", " the", " a", " in", " to", " AND", "2024", " 7",
        ] {
            assert_eq!(classify_token(1, w), WeakSemantic, "{w:?}");
        }
        for o in [" Summer", " cold", "(", "\"", " 3.5", " theory", "-based"] {
            assert_eq!(classify_token(1, o), Other, "{o:?}");
        }
        assert_eq!(classify_token(0, " cold"), Initial);
    }

    #[test]
    fn counts_and_shares() {
        let toks: Vec<String> = ["A", " b", ".", " the", "."]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = count_classes(&toks, &[0, 2, 4, 3]);
        assert_eq!(
            (c.initial, c.strong_delimiter, c.weak_semantic, c.other),
            (1, 2, 1, 0)
        );
        assert_eq!(c.share(StrongDelimiter), 0.5);
        assert_eq!(c.top_texts(1), vec![(".".to_string(), 2)]);
        let mut d = c.clone();
        d.merge(&c);
        assert_eq!(d.total(), 8);
        assert_eq!(ClassCounts::default().share(Initial), 0.0);
    }
}
