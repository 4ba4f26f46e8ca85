//! CoNLL import: one token per line with its BIO (IOB1 or IOB2) tag in the last column, a
//! blank line between items, `-DOCSTART-` lines skipped. An item's text is its tokens joined
//! by single spaces, its tokens are the file's, and its tags become its spans (what they mean
//! is [`super::ImportedLabels`]'s choice). A line without a tag, a malformed tag or an entity
//! type the project lacks fails the import with that line's number.

use std::io::BufRead;

use concord_domain::bio::TagSet;
use concord_domain::conll::{ConllError, ConllReader, ConllSentence};
use concord_domain::{AnnotationValue, ProjectSpec, Span};

use super::parse::{read_all_lines, GivenLabels, ItemSink, Parsed};
use super::{line_error, ImportProgress, ImportReport};
use crate::EngineError;

pub(super) fn read_conll(
    input: impl BufRead,
    spec: &ProjectSpec,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    each: &mut ItemSink<'_>,
) -> Result<(), EngineError> {
    if !spec.task.is_spans() {
        return Err(line_error(
            1,
            format!(
                "CoNLL files hold entity spans; this is a {} project",
                spec.task.as_str()
            ),
        ));
    }
    let labels: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
    let tags = TagSet::new(&labels);
    let mut reader = ConllReader::new();
    read_all_lines(input, counter, |line, text, counter| {
        let sentence = reader.push_line(line as usize, text).map_err(conll_error)?;
        match sentence {
            Some(sentence) => each(item(&tags, sentence)?, counter, report),
            None => Ok(()),
        }
    })?;
    match reader.finish() {
        Some(sentence) => each(item(&tags, sentence)?, counter, report),
        None => Ok(()),
    }
}

/// A reader error as an import error at the line it names.
fn conll_error(e: ConllError) -> EngineError {
    let line = e.line() as u64;
    // The reader's message starts with "line N: ", which the import error adds itself.
    let message = e.to_string();
    let problem = message
        .split_once(": ")
        .map_or(message.as_str(), |(_, rest)| rest)
        .to_string();
    line_error(line, problem)
}

/// One CoNLL item: its text, tokens and the spans its tags make.
fn item(tags: &TagSet, sentence: ConllSentence) -> Result<Parsed, EngineError> {
    let first = sentence.first_line as u64;
    let mut indices = Vec::with_capacity(sentence.tags.len());
    for (i, tag) in sentence.tags.iter().enumerate() {
        // Token lines are consecutive: token `i` is on the item's first line plus `i`.
        let index = tags
            .parse(tag)
            .map_err(|e| line_error(first + i as u64, e.to_string()))?;
        indices.push(index);
    }
    let (text, tokens) = sentence.text_and_tokens();
    let spans: Vec<Span> = tags
        .decode(&indices)
        .into_iter()
        .filter_map(|s| {
            let (start, end) = concord_domain::bio::char_range(&tokens, s)?;
            Some(Span::new(start, end, tags.labels().get(s.label)?.clone()))
        })
        .collect();
    let mut parsed = Parsed::text_only(first, text);
    parsed.tokens = Some(tokens);
    parsed.labels = Some(GivenLabels::unscored(AnnotationValue::spans(spans)));
    Ok(parsed)
}
