//! Word tokens of an item's text, and the offset units formats use.
//!
//! Every offset Concord stores or sends is a **Unicode code point** index into the item text
//! (as in Python, spaCy and Prodigy): `"🙂 Paris"` has `Paris` at `[2, 7)`. Label Studio counts
//! UTF-16 code units instead (what JavaScript strings index), so [`OffsetMap`] converts both
//! ways, and byte offsets for slicing Rust strings.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// A word or punctuation token `[start, end)` of an item's text, in code points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Token {
    pub start: u32,
    pub end: u32,
}

/// The most tokens one item may have (about 1 MB of text in words and punctuation; an import
/// refuses an item with more, naming its line).
pub const MAX_TOKENS: usize = 200_000;

/// Splits `text` into word and punctuation tokens, Unicode-aware: words by UAX #29 word
/// boundaries (so a letter with combining marks, an emoji with its modifiers or ZWJ sequence,
/// and a flag stay one token; each CJK ideograph is its own token), every punctuation mark on
/// its own, whitespace dropped. Two tweet conventions are kept whole: a URL (`http://…`,
/// `https://…`, `www.…`, up to the next space, less trailing sentence punctuation) and an `@`
/// or `#` directly followed by a word (`@user`, `#tag`).
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut byte_to_cp = ByteToCodePoint::new(text);
    for (chunk_start, chunk) in whitespace_chunks(text) {
        if let Some(url_len) = url_prefix_len(chunk) {
            let start = byte_to_cp.at(chunk_start);
            let end = byte_to_cp.at(chunk_start + url_len);
            tokens.push(Token { start, end });
            if url_len < chunk.len() {
                push_words(
                    &chunk[url_len..],
                    chunk_start + url_len,
                    &mut byte_to_cp,
                    &mut tokens,
                );
            }
            continue;
        }
        push_words(chunk, chunk_start, &mut byte_to_cp, &mut tokens);
    }
    tokens
}

fn push_words(chunk: &str, base: usize, map: &mut ByteToCodePoint, tokens: &mut Vec<Token>) {
    let mut pending_sigil: Option<usize> = None;
    for (offset, word) in chunk.split_word_bound_indices() {
        let byte_start = base + offset;
        let byte_end = byte_start + word.len();
        if word == "@" || word == "#" {
            if let Some(sigil) = pending_sigil.take() {
                tokens.push(Token {
                    start: map.at(sigil),
                    end: map.at(sigil + 1),
                });
            }
            pending_sigil = Some(byte_start);
            continue;
        }
        let starts_word = word.chars().next().is_some_and(char::is_alphanumeric);
        let start = match pending_sigil.take() {
            Some(sigil) if starts_word => sigil,
            Some(sigil) => {
                tokens.push(Token {
                    start: map.at(sigil),
                    end: map.at(sigil + 1),
                });
                byte_start
            }
            None => byte_start,
        };
        tokens.push(Token {
            start: map.at(start),
            end: map.at(byte_end),
        });
    }
    if let Some(sigil) = pending_sigil {
        tokens.push(Token {
            start: map.at(sigil),
            end: map.at(sigil + 1),
        });
    }
}

/// Maximal runs of non-whitespace, with their byte offsets.
fn whitespace_chunks(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_whitespace().map(move |chunk| {
        // `split_whitespace` yields subslices of `text`, so the pointer difference is the offset.
        let offset = chunk.as_ptr() as usize - text.as_ptr() as usize;
        (offset, chunk)
    })
}

/// The byte length of a URL at the start of `chunk`, without trailing sentence punctuation.
fn url_prefix_len(chunk: &str) -> Option<usize> {
    let lower = chunk.get(..8).unwrap_or(chunk).to_ascii_lowercase();
    let is_url =
        lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("www.");
    if !is_url {
        return None;
    }
    let trimmed = chunk.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
    Some(trimmed.len()).filter(|&n| n > 0)
}

/// Converts increasing byte offsets of one text into code point offsets in one pass.
struct ByteToCodePoint<'a> {
    text: &'a str,
    byte: usize,
    code_point: u32,
}

impl<'a> ByteToCodePoint<'a> {
    fn new(text: &'a str) -> Self {
        ByteToCodePoint {
            text,
            byte: 0,
            code_point: 0,
        }
    }

    /// The code point offset of byte offset `byte` (a char boundary). Offsets asked for go
    /// forward except for a sigil's one byte, so the walk restarts only in that case.
    fn at(&mut self, byte: usize) -> u32 {
        if byte < self.byte {
            self.byte = 0;
            self.code_point = 0;
        }
        let walked = self.text[self.byte..byte].chars().count() as u32;
        self.byte = byte;
        self.code_point += walked;
        self.code_point
    }
}

/// The number of code points of `text`: the end offset of the whole text.
pub fn char_len(text: &str) -> u32 {
    text.chars().count() as u32
}

/// Offsets of one text in every unit Concord meets: code points (Concord's), UTF-16 code units
/// (Label Studio, JavaScript) and bytes (Rust string slices).
#[derive(Debug, Clone)]
pub struct OffsetMap {
    /// For each code point index `i` (and one past the end), its byte offset.
    bytes: Vec<u32>,
    /// For each code point index `i` (and one past the end), its UTF-16 offset.
    utf16: Vec<u32>,
}

impl OffsetMap {
    pub fn new(text: &str) -> OffsetMap {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        let mut utf16 = Vec::with_capacity(text.len() + 1);
        let mut u = 0u32;
        for (b, c) in text.char_indices() {
            bytes.push(b as u32);
            utf16.push(u);
            u += c.len_utf16() as u32;
        }
        bytes.push(text.len() as u32);
        utf16.push(u);
        OffsetMap { bytes, utf16 }
    }

    /// Code points in the text.
    pub fn len(&self) -> u32 {
        (self.bytes.len() - 1) as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte offset of code point offset `cp` (`None` past the end).
    pub fn byte(&self, cp: u32) -> Option<usize> {
        self.bytes.get(cp as usize).map(|&b| b as usize)
    }

    /// The UTF-16 offset of code point offset `cp` (`None` past the end).
    pub fn utf16(&self, cp: u32) -> Option<u32> {
        self.utf16.get(cp as usize).copied()
    }

    /// The code point offset of UTF-16 offset `u`; `None` past the end or inside a surrogate
    /// pair (an offset no well-formed tool produces).
    pub fn from_utf16(&self, u: u32) -> Option<u32> {
        self.utf16.binary_search(&u).ok().map(|i| i as u32)
    }

    /// The code point offset of byte offset `b`; `None` past the end or inside a character.
    pub fn from_byte(&self, b: usize) -> Option<u32> {
        self.bytes.binary_search(&(b as u32)).ok().map(|i| i as u32)
    }

    /// The text between two code point offsets (`None` if out of range or reversed).
    pub fn slice<'t>(&self, text: &'t str, start: u32, end: u32) -> Option<&'t str> {
        if start > end {
            return None;
        }
        text.get(self.byte(start)?..self.byte(end)?)
    }
}

/// The code point offset of every user-perceived character (extended grapheme cluster) of
/// `text`, and the text's end: a character-mode boundary must never split an emoji sequence,
/// a flag or a letter from its combining marks.
pub fn grapheme_boundaries(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cp = 0u32;
    for cluster in text.graphemes(true) {
        out.push(cp);
        cp += cluster.chars().count() as u32;
    }
    out.push(cp);
    out
}

/// The text of each token (empty for a token outside the text, which no stored item has).
pub fn token_texts<'t>(text: &'t str, tokens: &[Token]) -> Vec<&'t str> {
    let map = OffsetMap::new(text);
    tokens
        .iter()
        .map(|t| map.slice(text, t.start, t.end).unwrap_or(""))
        .collect()
}

/// The tokens a span `[start, end)` covers: the first token that ends after `start` up to the
/// last that starts before `end`, as a token index range. `None` when it covers no token.
pub fn covered_tokens(tokens: &[Token], start: u32, end: u32) -> Option<std::ops::Range<usize>> {
    let first = tokens.partition_point(|t| t.end <= start);
    let last = tokens.partition_point(|t| t.start < end);
    (first < last).then_some(first..last)
}

/// Whether `[start, end)` begins at a token's start and ends at a token's end (token mode).
pub fn on_token_boundaries(tokens: &[Token], start: u32, end: u32) -> bool {
    tokens.iter().any(|t| t.start == start) && tokens.iter().any(|t| t.end == end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let map = OffsetMap::new(text);
        tokenize(text)
            .iter()
            .map(|t| map.slice(text, t.start, t.end).unwrap().to_string())
            .collect()
    }

    #[test]
    fn splits_words_and_punctuation() {
        let check = |text: &str, want: &[&str]| assert_eq!(words(text), want, "{text:?}");
        check("Hello, world!", &["Hello", ",", "world", "!"]);
        check("  don't  stop ", &["don't", "stop"]);
        check("@paulwalk loves #Paris", &["@paulwalk", "loves", "#Paris"]);
        check(
            "see https://t.co/x1. ok",
            &["see", "https://t.co/x1", ".", "ok"],
        );
        check("a @ b # c", &["a", "@", "b", "#", "c"]);
        check("(NYC)", &["(", "NYC", ")"]);
        check("", &[]);
    }

    #[test]
    fn keeps_emoji_marks_and_ideographs_apart_correctly() {
        // A family emoji (ZWJ sequence), a thumbs up with skin tone, a flag, a combining accent
        // and CJK ideographs.
        let text = "Hi 👨‍👩‍👧 👍🏽 🇫🇷 Cafe\u{301} 東京";
        assert_eq!(
            words(text),
            ["Hi", "👨‍👩‍👧", "👍🏽", "🇫🇷", "Cafe\u{301}", "東", "京"]
        );
        let tokens = tokenize(text);
        // Offsets are code points: the family emoji is 5 code points (3 people, 2 joiners).
        assert_eq!(tokens[1], Token { start: 3, end: 8 });
        assert_eq!(tokens.last().unwrap().end, char_len(text));
    }

    #[test]
    fn offsets_convert_between_units() {
        let text = "🙂 Paris é";
        let map = OffsetMap::new(text);
        assert_eq!(map.len(), 9);
        // "Paris" is [2, 7) in code points, [3, 8) in UTF-16 (the emoji is a surrogate pair),
        // [5, 10) in bytes.
        assert_eq!(map.utf16(2), Some(3));
        assert_eq!(map.from_utf16(3), Some(2));
        assert_eq!(map.from_utf16(1), None, "inside the surrogate pair");
        assert_eq!(map.byte(2), Some(5));
        assert_eq!(map.from_byte(5), Some(2));
        assert_eq!(map.slice(text, 2, 7), Some("Paris"));
        assert_eq!(map.slice(text, 8, 10), None);
        assert_eq!(map.from_utf16(map.utf16(9).unwrap()), Some(9));
    }

    #[test]
    fn grapheme_boundaries_keep_emoji_and_marks_whole() {
        // e + combining acute, a family emoji (5 code points), a flag (2), "x".
        let text = "e\u{301}👨‍👩‍👧🇫🇷x";
        assert_eq!(grapheme_boundaries(text), [0, 2, 7, 9, 10]);
        assert_eq!(grapheme_boundaries(""), [0]);
    }

    #[test]
    fn covered_tokens_snaps_to_whole_tokens() {
        let tokens = tokenize("New York is big");
        assert_eq!(covered_tokens(&tokens, 0, 8), Some(0..2));
        assert_eq!(covered_tokens(&tokens, 1, 5), Some(0..2));
        assert_eq!(covered_tokens(&tokens, 3, 4), None);
        assert!(on_token_boundaries(&tokens, 4, 8));
        assert!(!on_token_boundaries(&tokens, 5, 8));
    }
}
