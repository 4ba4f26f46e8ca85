//! Pattern pre-annotation for span projects: the term lists and regular expressions of a
//! project's settings, matched on token boundaries, and how far each rule can be trusted.
//!
//! A term's words must equal whole tokens of the item (as `concord_domain::tokens::tokenize`
//! splits both), so `York` never fires inside `Yorkshire`. A regular expression may match
//! anywhere, but a match counts only if it starts where a token starts and ends where a token
//! ends. A rule has no probability of being right: its suggestions carry its precision on the
//! confirmed items where it fired (once it fired on [`MIN_VALIDATING_MATCHES`] of them), else
//! confidence 0 — an unvalidated rule, which "accept all above the threshold" never takes.

use std::collections::HashMap;

use concord_domain::tokens::{OffsetMap, Token};
use concord_domain::{PatternKind, Span, SpanPattern, SuggestedSpan};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The most memory one compiled regular expression may take (its program and its lazy DFA
/// cache each): a pattern like `\w{1000}{1000}` is refused when it is saved instead of
/// exhausting memory when it runs.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Matches on confirmed items a rule needs before its precision stands for its confidence:
/// below this, one lucky or unlucky match would swing it between 0 and 1.
pub const MIN_VALIDATING_MATCHES: u64 = 5;

/// How one rule fared on the confirmed items: what its suggestions' confidence is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PatternCheck {
    /// Its matches on confirmed items.
    pub matched: u64,
    /// Those that are a confirmed span (same start, end and label).
    pub correct: u64,
}

impl PatternCheck {
    /// `correct / matched` once the rule matched [`MIN_VALIDATING_MATCHES`] times; `None` for
    /// an unvalidated rule.
    pub fn precision(&self) -> Option<f32> {
        (self.matched >= MIN_VALIDATING_MATCHES).then(|| self.correct as f32 / self.matched as f32)
    }

    /// The confidence its suggestions carry: the precision, 0 for an unvalidated rule.
    pub fn confidence(&self) -> f32 {
        self.precision().unwrap_or(0.0)
    }

    /// How the confidence was found, for people.
    pub fn describe(&self) -> String {
        match self.precision() {
            Some(p) => format!(
                "precision {:.0}% on {} matches in confirmed items",
                p * 100.0,
                self.matched
            ),
            None => format!(
                "unvalidated rule ({} of the {MIN_VALIDATING_MATCHES} matches in confirmed items needed)",
                self.matched
            ),
        }
    }
}

/// One rule's match: `[start, end)` in code points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PatternMatch {
    pub start: u32,
    pub end: u32,
    /// The rule's index in the project's patterns.
    pub rule: usize,
}

enum Rule {
    /// The term's words (lowercased when the rule ignores case).
    Term {
        words: Vec<String>,
    },
    Regex(Regex),
}

/// A project's patterns, ready to match.
pub struct CompiledPatterns {
    patterns: Vec<SpanPattern>,
    rules: Vec<Rule>,
    /// Case-sensitive terms by their first word, and case-insensitive ones by its lowercase.
    terms_exact: HashMap<String, Vec<usize>>,
    terms_folded: HashMap<String, Vec<usize>>,
}

/// Why a pattern cannot be used, naming it.
fn invalid(index: usize, pattern: &SpanPattern, why: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!(
        "pattern {} ({} {:?} of label {:?}) is not usable: {why}",
        index + 1,
        pattern.kind.as_str(),
        pattern.pattern,
        pattern.label
    ))
}

/// Compiles every pattern; the first one that is not a valid regular expression (or a term
/// without a word) is refused, named.
pub fn compile(patterns: &[SpanPattern]) -> Result<CompiledPatterns, EngineError> {
    let mut compiled = CompiledPatterns {
        patterns: patterns.to_vec(),
        rules: Vec::with_capacity(patterns.len()),
        terms_exact: HashMap::new(),
        terms_folded: HashMap::new(),
    };
    for (index, pattern) in patterns.iter().enumerate() {
        let rule = match pattern.kind {
            PatternKind::Term => {
                let words: Vec<String> = words_of(&pattern.pattern)
                    .into_iter()
                    .map(|w| fold(w, pattern.case_insensitive))
                    .collect();
                let Some(first) = words.first() else {
                    return Err(invalid(index, pattern, "it has no word"));
                };
                let by_first = if pattern.case_insensitive {
                    &mut compiled.terms_folded
                } else {
                    &mut compiled.terms_exact
                };
                by_first.entry(first.clone()).or_default().push(index);
                Rule::Term { words }
            }
            PatternKind::Regex => Rule::Regex(
                RegexBuilder::new(&pattern.pattern)
                    .case_insensitive(pattern.case_insensitive)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| invalid(index, pattern, e))?,
            ),
        };
        compiled.rules.push(rule);
    }
    Ok(compiled)
}

/// Refuses patterns that cannot be compiled (invalid regular expressions), naming the first.
pub(crate) fn check_patterns(patterns: &[SpanPattern]) -> Result<(), EngineError> {
    compile(patterns).map(|_| ())
}

fn fold(word: &str, case_insensitive: bool) -> String {
    if case_insensitive {
        word.to_lowercase()
    } else {
        word.to_string()
    }
}

/// The words of `text` as the item tokenizer splits them.
fn words_of(text: &str) -> Vec<&str> {
    concord_domain::tokens::token_texts(text, &concord_domain::tokens::tokenize(text))
}

impl CompiledPatterns {
    /// Every rule's matches in `text` (whose tokens are `tokens`), on token boundaries only,
    /// sorted by start, end and rule.
    pub fn find(&self, text: &str, tokens: &[Token]) -> Vec<PatternMatch> {
        let map = OffsetMap::new(text);
        let words = concord_domain::tokens::token_texts(text, tokens);
        let mut out = Vec::new();
        self.find_terms(tokens, &words, &mut out);
        self.find_regexes(text, tokens, &map, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn find_terms(&self, tokens: &[Token], words: &[&str], out: &mut Vec<PatternMatch>) {
        if self.terms_exact.is_empty() && self.terms_folded.is_empty() {
            return;
        }
        let folded: Vec<String> = if self.terms_folded.is_empty() {
            Vec::new()
        } else {
            words.iter().map(|w| w.to_lowercase()).collect()
        };
        for i in 0..words.len() {
            let exact = self
                .terms_exact
                .get(words[i])
                .into_iter()
                .flatten()
                .map(|&rule| (rule, false));
            let folded_first = folded
                .get(i)
                .and_then(|w| self.terms_folded.get(w.as_str()))
                .into_iter()
                .flatten()
                .map(|&rule| (rule, true));
            for (rule, case_insensitive) in exact.chain(folded_first) {
                let Rule::Term { words: term } = &self.rules[rule] else {
                    continue;
                };
                let end = i + term.len();
                if end > words.len() {
                    continue;
                }
                let same = if case_insensitive {
                    folded[i..end].iter().zip(term).all(|(a, b)| a == b)
                } else {
                    words[i..end].iter().zip(term).all(|(a, b)| a == b)
                };
                if same {
                    out.push(PatternMatch {
                        start: tokens[i].start,
                        end: tokens[end - 1].end,
                        rule,
                    });
                }
            }
        }
    }

    fn find_regexes(
        &self,
        text: &str,
        tokens: &[Token],
        map: &OffsetMap,
        out: &mut Vec<PatternMatch>,
    ) {
        // Token boundaries as byte offsets (what the regex engine reports), sorted.
        let starts: Vec<usize> = tokens.iter().filter_map(|t| map.byte(t.start)).collect();
        let mut ends: Vec<usize> = tokens.iter().filter_map(|t| map.byte(t.end)).collect();
        ends.sort_unstable();
        for (rule, compiled) in self.rules.iter().enumerate() {
            let Rule::Regex(regex) = compiled else {
                continue;
            };
            let mut at = 0;
            while at <= text.len() {
                let Some(m) = regex.find_at(text, at) else {
                    break;
                };
                let on_boundaries = m.start() < m.end()
                    && starts.binary_search(&m.start()).is_ok()
                    && ends.binary_search(&m.end()).is_ok();
                if on_boundaries {
                    if let (Some(start), Some(end)) =
                        (map.from_byte(m.start()), map.from_byte(m.end()))
                    {
                        out.push(PatternMatch { start, end, rule });
                    }
                    at = m.end();
                } else {
                    // A match that starts or ends inside a token does not count, but it may
                    // have hidden one that starts at a later token inside it: search again
                    // from the next token start after its start.
                    let next = starts.partition_point(|&s| s <= m.start());
                    match starts.get(next) {
                        Some(&s) => at = s,
                        None => break,
                    }
                }
            }
        }
    }

    /// The suggestions of the matches in one item: each match's rule label with the rule's
    /// confidence (`checks`, by rule). Flat projects keep no two overlapping spans: longer
    /// matches win, then earlier ones, then earlier rules. The result is sorted by start,
    /// end and label, with no span given twice.
    pub fn suggest(
        &self,
        matches: &[PatternMatch],
        checks: &[PatternCheck],
        overlapping: bool,
    ) -> Vec<SuggestedSpan> {
        let mut ranked: Vec<&PatternMatch> = matches.iter().collect();
        let kept: Vec<&PatternMatch> = if overlapping {
            ranked
        } else {
            ranked.sort_by_key(|m| (std::cmp::Reverse(m.end - m.start), m.start, m.rule));
            // Kept spans never overlap, so by start they are also ordered by end: a match is
            // free when the kept span starting before it ends in time and the next one starts
            // after it (a lookup per match, not a scan: a regex can match every token).
            let mut taken: std::collections::BTreeMap<u32, u32> = Default::default();
            let mut kept = Vec::new();
            for m in ranked {
                let before_ok = taken
                    .range(..=m.start)
                    .next_back()
                    .is_none_or(|(_, &end)| end <= m.start);
                let after_ok = taken
                    .range(m.start..)
                    .next()
                    .is_none_or(|(&start, _)| m.end <= start);
                if before_ok && after_ok {
                    taken.insert(m.start, m.end);
                    kept.push(m);
                }
            }
            kept
        };
        let mut out: Vec<SuggestedSpan> = Vec::with_capacity(kept.len());
        let mut index: HashMap<(u32, u32, &str), usize> = HashMap::new();
        for m in kept {
            let label = self.patterns[m.rule].label.as_str();
            let confidence = checks.get(m.rule).map_or(0.0, PatternCheck::confidence);
            match index.get(&(m.start, m.end, label)) {
                // Two rules giving the same span: the better validated one speaks for it.
                Some(&i) => out[i].confidence = out[i].confidence.max(confidence),
                None => {
                    index.insert((m.start, m.end, label), out.len());
                    out.push(SuggestedSpan {
                        start: m.start,
                        end: m.end,
                        label: label.to_string(),
                        confidence,
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.start, a.end, &a.label).cmp(&(b.start, b.end, &b.label)));
        out
    }

    /// Each rule's matches and correct matches over confirmed items (`text`, tokens, spans).
    pub fn check<'a>(
        &self,
        confirmed: impl IntoIterator<Item = (&'a str, &'a [Token], &'a [Span])>,
    ) -> Vec<PatternCheck> {
        let mut checks = vec![
            PatternCheck {
                matched: 0,
                correct: 0
            };
            self.rules.len()
        ];
        for (text, tokens, spans) in confirmed {
            for m in self.find(text, tokens) {
                let label = &self.patterns[m.rule].label;
                let check = &mut checks[m.rule];
                check.matched += 1;
                if spans
                    .iter()
                    .any(|s| s.start == m.start && s.end == m.end && &s.label == label)
                {
                    check.correct += 1;
                }
            }
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str, kind: PatternKind, pattern: &str, case_insensitive: bool) -> SpanPattern {
        SpanPattern {
            label: label.into(),
            kind,
            pattern: pattern.into(),
            case_insensitive,
        }
    }

    fn spans(patterns: &[SpanPattern], text: &str) -> Vec<(String, String)> {
        let compiled = compile(patterns).expect("valid patterns");
        let tokens = concord_domain::tokens::tokenize(text);
        let matches = compiled.find(text, &tokens);
        let map = OffsetMap::new(text);
        compiled
            .suggest(&matches, &[], false)
            .into_iter()
            .map(|s| {
                (
                    map.slice(text, s.start, s.end).unwrap().to_string(),
                    s.label,
                )
            })
            .collect()
    }

    #[test]
    fn regex_matches_count_only_on_token_boundaries() {
        let p = [rule("year", PatternKind::Regex, r"\d{4}", false)];
        // "12345" holds a 4-digit run but no 4-digit token; "x2020" neither.
        assert_eq!(
            spans(&p, "12345 x2020 in 2020."),
            [("2020".to_string(), "year".to_string())]
        );
    }

    #[test]
    fn a_rejected_match_does_not_hide_a_later_token() {
        // The first match of `[a-z]+ [a-z]+` is "ab cd" starting inside "Xab"; the match
        // starting at the token "cd" is still found.
        let p = [rule("pair", PatternKind::Regex, "[a-z]+ [a-z]+", false)];
        assert_eq!(
            spans(&p, "Xab cd ef"),
            [("cd ef".to_string(), "pair".to_string())]
        );
    }

    #[test]
    fn flat_projects_keep_the_longest_match() {
        let p = [
            rule("city", PatternKind::Term, "York", false),
            rule("city", PatternKind::Term, "New York", false),
        ];
        assert_eq!(
            spans(&p, "New York and York"),
            [
                ("New York".to_string(), "city".to_string()),
                ("York".to_string(), "city".to_string())
            ]
        );
    }

    #[test]
    fn a_rule_is_measured_on_confirmed_items_and_its_precision_is_its_confidence() {
        let p = [rule("city", PatternKind::Term, "paris", true)];
        let compiled = compile(&p).unwrap();
        let text = "Paris paris PARIS";
        let tokens = concord_domain::tokens::tokenize(text);
        // Two of its three matches here are confirmed cities; twice over, six matches.
        let confirmed = [Span::new(0, 5, "city"), Span::new(12, 17, "city")];
        let items = [
            (text, tokens.as_slice(), confirmed.as_slice()),
            (text, tokens.as_slice(), confirmed.as_slice()),
        ];
        let checks = compiled.check(items);
        assert_eq!(
            checks,
            [PatternCheck {
                matched: 6,
                correct: 4
            }]
        );
        let suggested = compiled.suggest(&compiled.find(text, &tokens), &checks, false);
        assert_eq!(suggested.len(), 3);
        assert!(suggested
            .iter()
            .all(|s| (s.confidence - 4.0 / 6.0).abs() < 1e-6));
    }

    #[test]
    fn checks_need_enough_matches_to_stand_for_confidence() {
        let few = PatternCheck {
            matched: MIN_VALIDATING_MATCHES - 1,
            correct: MIN_VALIDATING_MATCHES - 1,
        };
        assert_eq!(few.precision(), None);
        assert_eq!(few.confidence(), 0.0);
        assert!(few.describe().starts_with("unvalidated rule"));
        let enough = PatternCheck {
            matched: 8,
            correct: 6,
        };
        assert_eq!(enough.precision(), Some(0.75));
    }
}
