//! BIO tags over word tokens: what CoNLL files store and what the token classifier predicts.
//!
//! Tag indices: `0` is `O`; label `i` (the project's label order) has `B-` at `1 + 2i` and `I-`
//! at `2 + 2i`. Decoding follows seqeval's default (lenient) convention, so IOB1 files (where
//! `B-` appears only between two adjacent entities of one type) and IOB2 files read alike: an
//! `I-X` after `O` or after another type starts a new entity.

use serde::{Deserialize, Serialize};

use crate::tokens::{covered_tokens, Token};
use crate::Span;

/// A labelled run of tokens `[start, end)` (token indices); `label` indexes the project's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenSpan {
    pub start: usize,
    pub end: usize,
    pub label: usize,
}

/// One tag, parsed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Outside,
    Begin(usize),
    Inside(usize),
}

/// Why a tag string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("tag {tag:?} is not O, B-<type> or I-<type>")]
    Malformed { tag: String },
    #[error("entity type {label:?} (tag {tag:?}) is not one of the project's labels")]
    UnknownType { tag: String, label: String },
}

/// The BIO tag set of a project's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSet {
    labels: Vec<String>,
}

impl TagSet {
    pub fn new(labels: &[String]) -> TagSet {
        TagSet {
            labels: labels.to_vec(),
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of tags: `O` plus `B-` and `I-` per label.
    pub fn len(&self) -> usize {
        1 + 2 * self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn index(&self, tag: Tag) -> u16 {
        match tag {
            Tag::Outside => 0,
            Tag::Begin(label) => (1 + 2 * label) as u16,
            Tag::Inside(label) => (2 + 2 * label) as u16,
        }
    }

    /// The tag at an index (`O` for an index past the set).
    pub fn tag(&self, index: u16) -> Tag {
        let index = index as usize;
        if index == 0 || index >= self.len() {
            Tag::Outside
        } else if index % 2 == 1 {
            Tag::Begin((index - 1) / 2)
        } else {
            Tag::Inside((index - 2) / 2)
        }
    }

    pub fn tag_name(&self, index: u16) -> String {
        match self.tag(index) {
            Tag::Outside => "O".to_string(),
            Tag::Begin(l) => format!("B-{}", self.labels[l]),
            Tag::Inside(l) => format!("I-{}", self.labels[l]),
        }
    }

    /// Reads `O`, `B-<type>` or `I-<type>` (also `B_`/`I_`, and `S-`/`E-` of BIOES read as
    /// `B-`/`I-`); the type must be one of the labels.
    pub fn parse(&self, tag: &str) -> Result<u16, TagError> {
        if tag == "O" {
            return Ok(0);
        }
        let malformed = || TagError::Malformed {
            tag: tag.to_string(),
        };
        let mut chars = tag.chars();
        let prefix = chars.next().ok_or_else(malformed)?;
        let separator = chars.next().ok_or_else(malformed)?;
        if separator != '-' && separator != '_' {
            return Err(malformed());
        }
        let label = chars.as_str();
        if label.is_empty() {
            return Err(malformed());
        }
        let index =
            self.labels
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| TagError::UnknownType {
                    tag: tag.to_string(),
                    label: label.to_string(),
                })?;
        match prefix {
            'B' | 'S' => Ok(self.index(Tag::Begin(index))),
            'I' | 'E' => Ok(self.index(Tag::Inside(index))),
            _ => Err(malformed()),
        }
    }

    /// Whether `tag` may follow `previous` (`None`: at the start) in a well-formed IOB2
    /// sequence: `I-X` only after `B-X` or `I-X`. For constrained decoding.
    pub fn allowed(&self, previous: Option<u16>, tag: u16) -> bool {
        match self.tag(tag) {
            Tag::Inside(label) => matches!(
                previous.map(|p| self.tag(p)),
                Some(Tag::Begin(l) | Tag::Inside(l)) if l == label
            ),
            Tag::Outside | Tag::Begin(_) => true,
        }
    }

    /// IOB2 tags for `n_tokens` tokens carrying `spans`. BIO cannot express nesting: where
    /// spans overlap (an overlapping project, or two character-mode spans widened to one
    /// token), the longest are kept (then the earliest), so no tag sequence ever reads as an
    /// entity nobody marked.
    pub fn encode(&self, n_tokens: usize, spans: &[TokenSpan]) -> Vec<u16> {
        let mut tags = vec![0u16; n_tokens];
        for span in flat_subset(spans, n_tokens, self.labels.len()) {
            tags[span.start] = self.index(Tag::Begin(span.label));
            for tag in &mut tags[span.start + 1..span.end] {
                *tag = self.index(Tag::Inside(span.label));
            }
        }
        tags
    }

    /// The entities of a tag sequence (seqeval's lenient reading, see the module doc).
    pub fn decode(&self, tags: &[u16]) -> Vec<TokenSpan> {
        let mut spans = Vec::new();
        let mut open: Option<TokenSpan> = None;
        for (i, &index) in tags.iter().enumerate() {
            let tag = self.tag(index);
            let continues = matches!((open, tag), (Some(o), Tag::Inside(l)) if o.label == l);
            if continues {
                continue;
            }
            if let Some(mut o) = open.take() {
                o.end = i;
                spans.push(o);
            }
            if let Tag::Begin(label) | Tag::Inside(label) = tag {
                open = Some(TokenSpan {
                    start: i,
                    end: i + 1,
                    label,
                });
            }
        }
        if let Some(mut o) = open {
            o.end = tags.len();
            spans.push(o);
        }
        spans
    }
}

/// Character spans as token spans over `tokens` (a sub-token span takes its whole tokens);
/// spans of labels outside `labels`, or covering no token, are left out.
pub fn token_spans(tokens: &[Token], spans: &[Span], labels: &[String]) -> Vec<TokenSpan> {
    spans
        .iter()
        .filter_map(|s| {
            let label = labels.iter().position(|l| *l == s.label)?;
            let range = covered_tokens(tokens, s.start, s.end)?;
            Some(TokenSpan {
                start: range.start,
                end: range.end,
                label,
            })
        })
        .collect()
}

/// The character range `[start, end)` of a token span: from its first token's start to its
/// last token's end (`None` for an empty span or one past the tokens).
pub fn char_range(tokens: &[Token], span: TokenSpan) -> Option<(u32, u32)> {
    let first = tokens.get(span.start)?;
    let last = tokens.get(span.end.checked_sub(1)?)?;
    (span.start < span.end).then_some((first.start, last.end))
}

/// The spans BIO tags can carry: inside `n_tokens`, of a known label, no two sharing a token
/// (longest first, then earliest), in order.
pub fn flat_subset(spans: &[TokenSpan], n_tokens: usize, labels: usize) -> Vec<TokenSpan> {
    let mut ranked: Vec<TokenSpan> = spans
        .iter()
        .filter(|s| s.start < s.end && s.end <= n_tokens && s.label < labels)
        .copied()
        .collect();
    ranked.sort_by_key(|s| (std::cmp::Reverse(s.end - s.start), s.start, s.label));
    let mut taken = vec![false; n_tokens];
    let mut kept = Vec::new();
    for span in ranked {
        if taken[span.start..span.end].iter().all(|t| !t) {
            taken[span.start..span.end]
                .iter_mut()
                .for_each(|t| *t = true);
            kept.push(span);
        }
    }
    kept.sort();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TagSet {
        TagSet::new(&["person".to_string(), "geo-loc".to_string()])
    }

    fn tags(set: &TagSet, names: &[&str]) -> Vec<u16> {
        names.iter().map(|n| set.parse(n).unwrap()).collect()
    }

    #[test]
    fn decode_reads_iob2_and_iob1_alike() {
        let s = set();
        let span = |start, end, label| TokenSpan { start, end, label };
        let check = |names: &[&str], want: &[TokenSpan]| {
            assert_eq!(s.decode(&tags(&s, names)), want, "{names:?}");
        };
        check(
            &["B-person", "I-person", "O", "B-geo-loc"],
            &[span(0, 2, 0), span(3, 4, 1)],
        );
        // IOB1: I- opens an entity; B- separates two adjacent ones of one type.
        check(
            &["I-person", "I-person", "B-person", "O"],
            &[span(0, 2, 0), span(2, 3, 0)],
        );
        // A type change inside a run starts a new entity.
        check(
            &["B-person", "I-geo-loc", "I-geo-loc"],
            &[span(0, 1, 0), span(1, 3, 1)],
        );
        check(&["O", "O"], &[]);
        check(&["B-person"], &[span(0, 1, 0)]);
    }

    #[test]
    fn encode_then_decode_is_identity_for_flat_spans() {
        let s = set();
        let spans = vec![
            TokenSpan {
                start: 0,
                end: 1,
                label: 0,
            },
            TokenSpan {
                start: 1,
                end: 3,
                label: 0,
            },
            TokenSpan {
                start: 4,
                end: 5,
                label: 1,
            },
        ];
        let encoded = s.encode(6, &spans);
        let names: Vec<String> = encoded.iter().map(|&t| s.tag_name(t)).collect();
        assert_eq!(
            names,
            ["B-person", "B-person", "I-person", "O", "B-geo-loc", "O"]
        );
        assert_eq!(s.decode(&encoded), spans);
    }

    #[test]
    fn overlapping_spans_encode_as_the_longest_never_as_invented_ones() {
        let s = set();
        let span = |start, end, label| TokenSpan { start, end, label };
        // A person over five tokens with a place nested in its second token.
        let tags = s.encode(5, &[span(0, 5, 0), span(1, 2, 1)]);
        assert_eq!(s.decode(&tags), [span(0, 5, 0)]);
        // Two spans widened to the same token: one is kept, never a mix.
        let tags = s.encode(3, &[span(1, 2, 0), span(1, 2, 1)]);
        assert_eq!(s.decode(&tags).len(), 1);
    }

    #[test]
    fn parse_names_the_problem() {
        let s = set();
        assert_eq!(
            s.parse("B-company"),
            Err(TagError::UnknownType {
                tag: "B-company".into(),
                label: "company".into()
            })
        );
        assert_eq!(
            s.parse("X-person"),
            Err(TagError::Malformed {
                tag: "X-person".into()
            })
        );
        assert!(s.parse("B-").is_err());
        assert_eq!(s.parse("I_person"), Ok(2));
    }

    #[test]
    fn allowed_forbids_inside_without_its_begin() {
        let s = set();
        let b0 = s.parse("B-person").unwrap();
        let i0 = s.parse("I-person").unwrap();
        let i1 = s.parse("I-geo-loc").unwrap();
        assert!(s.allowed(None, b0));
        assert!(!s.allowed(None, i0));
        assert!(s.allowed(Some(b0), i0));
        assert!(s.allowed(Some(i0), i0));
        assert!(!s.allowed(Some(i0), i1));
        assert!(!s.allowed(Some(0), i0));
    }
}
