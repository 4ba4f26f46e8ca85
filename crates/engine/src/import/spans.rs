//! Spans and tokens as files give them (Concord's JSONL, Prodigy): read from JSON with their
//! line, and checked against the item's text where the file repeats it (a token's or span's
//! `text`, Prodigy's `token_start`/`token_end`), so offsets in another unit than code points are
//! refused instead of silently shifting every entity. Bounds, labels and overlap are checked
//! later, with the project (`AnnotationValue::validate`).

use concord_domain::tokens::{OffsetMap, MAX_TOKENS};
use concord_domain::{AnnotationValue, Span, Token};
use serde_json::Value;

use super::line_error;
use super::parse::GivenLabels;
use crate::EngineError;

/// A JSON value that is a whole number small enough for an offset or an index.
pub(super) fn as_u32(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A code point offset field of a JSON object.
pub(super) fn offset(line: u64, what: &str, obj: &Value, key: &str) -> Result<u32, EngineError> {
    obj.get(key).and_then(as_u32).ok_or_else(|| {
        line_error(
            line,
            format!("{what}: \"{key}\" must be a whole number (a code point offset)"),
        )
    })
}

/// A score: absent or null is none; otherwise a number from 0 to 1.
pub(super) fn read_score(line: u64, what: &str, v: &Value) -> Result<Option<f32>, EngineError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(Some(x as f32)),
            _ => Err(line_error(
                line,
                format!("{what} must be between 0 and 1, not {n}"),
            )),
        },
        _ => Err(line_error(
            line,
            format!("{what} must be a number from 0 to 1"),
        )),
    }
}

/// Whether `s` holds whitespace beside other characters: no tokenizer makes such a token,
/// and it could not be written back one token per line.
fn mixes_whitespace(s: &str) -> bool {
    s.chars().any(char::is_whitespace) && !s.chars().all(char::is_whitespace)
}

/// Prodigy's tokens (`[{"text", "start", "end", "id"}]`, offsets in code points): in order,
/// not overlapping, inside the text, each `text` (when given) equal to the text there and each
/// `id` (when given) its index.
pub(super) fn read_tokens(line: u64, text: &str, value: &Value) -> Result<Vec<Token>, EngineError> {
    let Value::Array(list) = value else {
        return Err(line_error(
            line,
            "field \"tokens\" must be a list of tokens",
        ));
    };
    if list.len() > MAX_TOKENS {
        return Err(line_error(
            line,
            format!("an item has at most {MAX_TOKENS} tokens"),
        ));
    }
    let map = OffsetMap::new(text);
    let mut tokens = Vec::with_capacity(list.len());
    let mut previous_end = 0;
    for (i, token) in list.iter().enumerate() {
        let what = format!("token {i}");
        if !token.is_object() {
            return Err(line_error(line, format!("{what} must be an object")));
        }
        let start = offset(line, &what, token, "start")?;
        let end = offset(line, &what, token, "end")?;
        if start >= end || start < previous_end {
            return Err(line_error(
                line,
                format!("{what} ({start}..{end}) is empty or overlaps the token before it"),
            ));
        }
        let Some(slice) = map.slice(text, start, end) else {
            return Err(line_error(
                line,
                format!(
                    "{what} ({start}..{end}) is not inside the text, which has {} characters (offsets count Unicode code points)",
                    map.len()
                ),
            ));
        };
        if let Some(given) = token.get("text") {
            if given.as_str() != Some(slice) {
                return Err(line_error(
                    line,
                    format!(
                        "{what} ({start}..{end}) is {given} but the text there is {slice:?} (offsets count Unicode code points)"
                    ),
                ));
            }
        }
        if let Some(id) = token.get("id") {
            if id.as_u64() != Some(i as u64) {
                return Err(line_error(
                    line,
                    format!("{what} has id {id}; token ids count from 0 in order"),
                ));
            }
        }
        if mixes_whitespace(slice) {
            return Err(line_error(
                line,
                format!("{what} ({slice:?}) mixes whitespace with other characters"),
            ));
        }
        tokens.push(Token { start, end });
        previous_end = end;
    }
    Ok(tokens)
}

/// Spans as a list of `{"start", "end", "label"}` objects (code points), with Prodigy's
/// optional `token_start`/`token_end` (inclusive token indices into `tokens`, checked when the
/// file gives its tokens), an optional `text` (checked against the item's text) and an optional
/// `score` or `confidence` (0–1).
pub(super) fn read_spans(
    line: u64,
    what: &str,
    text: &str,
    tokens: Option<&[Token]>,
    value: &Value,
) -> Result<GivenLabels, EngineError> {
    let Value::Array(list) = value else {
        return Err(line_error(line, format!("{what} must be a list of spans")));
    };
    let mut map: Option<OffsetMap> = None;
    let mut spans = Vec::with_capacity(list.len());
    let mut scores = Vec::with_capacity(list.len());
    for (i, span) in list.iter().enumerate() {
        let this = format!("{what}, span {i}");
        if !span.is_object() {
            return Err(line_error(line, format!("{this} must be an object")));
        }
        let start = offset(line, &this, span, "start")?;
        let end = offset(line, &this, span, "end")?;
        let Some(label) = span.get("label").and_then(Value::as_str) else {
            return Err(line_error(line, format!("{this} needs a \"label\"")));
        };
        if let Some(given) = span.get("text") {
            let map = map.get_or_insert_with(|| OffsetMap::new(text));
            let slice = map.slice(text, start, end);
            if slice.is_none() || given.as_str() != slice {
                return Err(line_error(
                    line,
                    format!(
                        "{this} ({start}..{end}, {label:?}) is {given} but the text there is {} (offsets count Unicode code points)",
                        slice.map_or("outside the text".to_string(), |s| format!("{s:?}"))
                    ),
                ));
            }
        }
        if let Some(tokens) = tokens {
            for (key, at, edge) in [("token_start", start, true), ("token_end", end, false)] {
                let Some(index) = span.get(key).filter(|v| !v.is_null()) else {
                    continue;
                };
                let token = index
                    .as_u64()
                    .and_then(|i| tokens.get(usize::try_from(i).ok()?));
                let matches = token.is_some_and(|t| if edge { t.start == at } else { t.end == at });
                if !matches {
                    return Err(line_error(
                        line,
                        format!(
                            "{this} ({start}..{end}, {label:?}): {key} {index} is not the token that {} at {at}",
                            if edge { "starts" } else { "ends" }
                        ),
                    ));
                }
            }
        }
        let score = match span.get("score").or_else(|| span.get("confidence")) {
            Some(v) => read_score(line, &format!("{this}: the score"), v)?,
            None => None,
        };
        spans.push(Span::new(start, end, label));
        scores.push(score);
    }
    Ok(GivenLabels {
        value: AnnotationValue::spans(spans),
        score: None,
        span_scores: scores,
        relation_scores: Vec::new(),
    })
}
