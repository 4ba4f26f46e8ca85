//! CoNLL token files, line by line: one token per line with its BIO tag in the last column
//! (tab- or space-separated), a blank line between items, `-DOCSTART-` lines skipped. Pure, so
//! the importer can stream a file through it and the benchmarks read the same way.

use crate::tokens::Token;

/// One item of a CoNLL file: its tokens and their tag strings (not yet checked against a
/// project's labels), and the line its first token is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConllSentence {
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
    pub first_line: usize,
    /// Bytes of the item text so far (tokens and the spaces between them).
    pub text_bytes: usize,
}

impl ConllSentence {
    /// The item text (tokens joined by single spaces) and each token's code-point range in it.
    pub fn text_and_tokens(&self) -> (String, Vec<Token>) {
        join_tokens(&self.tokens)
    }
}

/// The most tokens one CoNLL item may have before the file is refused (as for any item).
pub const MAX_CONLL_TOKENS: usize = crate::tokens::MAX_TOKENS;

/// The longest item text (tokens joined by spaces) a CoNLL item may make: the line limit of
/// the other formats, so one item's memory is bounded whatever the file.
pub const MAX_CONLL_ITEM_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConllError {
    #[error("line {line}: expected a token and its tag separated by whitespace, got {got:?}")]
    MissingTag { line: usize, got: String },
    #[error(
        "line {line}: an item has more than {max} tokens (is a blank line missing between items?)"
    )]
    TooManyTokens { line: usize, max: usize },
    #[error("line {line}: an item's text is longer than {max} bytes (is a blank line missing between items?)")]
    ItemTooLong { line: usize, max: usize },
}

impl ConllError {
    /// The line the problem is on.
    pub fn line(&self) -> usize {
        match self {
            ConllError::MissingTag { line, .. }
            | ConllError::TooManyTokens { line, .. }
            | ConllError::ItemTooLong { line, .. } => *line,
        }
    }
}

/// Assembles items from lines fed one at a time.
#[derive(Debug, Default)]
pub struct ConllReader {
    current: Option<ConllSentence>,
}

impl ConllReader {
    pub fn new() -> ConllReader {
        ConllReader::default()
    }

    /// Feeds line `line` (1-based, without its line ending); returns an item when a blank or
    /// `-DOCSTART-` line ends one.
    pub fn push_line(
        &mut self,
        line: usize,
        text: &str,
    ) -> Result<Option<ConllSentence>, ConllError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with("-DOCSTART-") {
            return Ok(self.current.take());
        }
        let mut fields = trimmed.split_whitespace();
        let token = fields.next().unwrap_or_default();
        let Some(tag) = fields.last() else {
            return Err(ConllError::MissingTag {
                line,
                got: truncate(trimmed, 80),
            });
        };
        let sentence = self.current.get_or_insert_with(|| ConllSentence {
            tokens: Vec::new(),
            tags: Vec::new(),
            first_line: line,
            text_bytes: 0,
        });
        if sentence.tokens.len() >= MAX_CONLL_TOKENS {
            return Err(ConllError::TooManyTokens {
                line,
                max: MAX_CONLL_TOKENS,
            });
        }
        sentence.text_bytes += token.len() + usize::from(!sentence.tokens.is_empty());
        if sentence.text_bytes > MAX_CONLL_ITEM_BYTES {
            return Err(ConllError::ItemTooLong {
                line,
                max: MAX_CONLL_ITEM_BYTES,
            });
        }
        sentence.tokens.push(token.to_string());
        sentence.tags.push(tag.to_string());
        Ok(None)
    }

    /// The last item, when the file does not end with a blank line.
    pub fn finish(self) -> Option<ConllSentence> {
        self.current
    }
}

/// Reads a whole CoNLL text (for small files and tests; the importer streams with
/// [`ConllReader`]).
pub fn parse_conll(text: &str) -> Result<Vec<ConllSentence>, ConllError> {
    let mut reader = ConllReader::new();
    let mut sentences = Vec::new();
    for (i, line) in text.lines().enumerate() {
        sentences.extend(reader.push_line(i + 1, line)?);
    }
    sentences.extend(reader.finish());
    Ok(sentences)
}

/// Joins tokens by single spaces; returns the text and each token's code-point range.
pub fn join_tokens<S: AsRef<str>>(tokens: &[S]) -> (String, Vec<Token>) {
    let mut text = String::new();
    let mut offsets = Vec::with_capacity(tokens.len());
    let mut position = 0u32;
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            text.push(' ');
            position += 1;
        }
        let token = token.as_ref();
        let len = token.chars().count() as u32;
        text.push_str(token);
        offsets.push(Token {
            start: position,
            end: position + len,
        });
        position += len;
    }
    (text, offsets)
}

/// Appends one item as CoNLL lines (`token\ttag`) and the blank line that ends it. Tokens
/// never contain whitespace (whitespace separates them), so they are written as they are.
pub fn write_sentence<S: AsRef<str>, T: AsRef<str>>(out: &mut String, tokens: &[S], tags: &[T]) {
    for (token, tag) in tokens.iter().zip(tags) {
        out.push_str(token.as_ref());
        out.push('\t');
        out.push_str(tag.as_ref());
        out.push('\n');
    }
    out.push('\n');
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_between_blank_lines_and_skips_docstart() {
        let text =
            "-DOCSTART- -X- O O\n\n@paulwalk\tO\nIt\tO\n\nEmpire B-facility\nState I-facility\n";
        let items = parse_conll(text).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].tokens, ["@paulwalk", "It"]);
        assert_eq!(items[0].first_line, 3);
        assert_eq!(items[1].tags, ["B-facility", "I-facility"]);
        let (text, tokens) = items[1].text_and_tokens();
        assert_eq!(text, "Empire State");
        assert_eq!(tokens[1], Token { start: 7, end: 12 });
    }

    #[test]
    fn a_line_without_a_tag_is_refused_with_its_number() {
        let err = parse_conll("a\tO\nb\tO\n\nbroken\n").unwrap_err();
        assert_eq!(
            err,
            ConllError::MissingTag {
                line: 4,
                got: "broken".into()
            }
        );
        assert!(err.to_string().starts_with("line 4:"));
    }

    #[test]
    fn write_then_read_round_trips() {
        let mut out = String::new();
        write_sentence(&mut out, &["🙂", "Paris"], &["O", "B-geo-loc"]);
        write_sentence(&mut out, &["x"], &["O"]);
        let items = parse_conll(&out).unwrap();
        assert_eq!(items[0].tokens, ["🙂", "Paris"]);
        assert_eq!(items[0].tags, ["O", "B-geo-loc"]);
        let (_, tokens) = items[0].text_and_tokens();
        assert_eq!(tokens[1], Token { start: 2, end: 7 });
        assert_eq!(items[1].first_line, 4);
    }
}
