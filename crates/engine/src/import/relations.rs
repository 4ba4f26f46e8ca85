//! Relations as files give them: Concord's own `{"from", "to", "label"}` (indices into the
//! answer's spans as the file lists them, the shape an answer is submitted in) and Prodigy's
//! `{"head", "child", "label", "head_span", "child_span"}`. Here a relation only has to name
//! two spans of its line; whether its ends differ, its type exists and allows the ends' entity
//! types is the domain's check (`AnnotationValue::validate`), so every format refuses a bad
//! relation with the same message, after its line number.

use concord_domain::{Relation, Span, Token};
use serde_json::Value;

use super::line_error;
use super::parse::GivenLabels;
use super::spans::{as_u32, read_score, read_spans};
use crate::EngineError;

/// Relations as read, with each one's score (a model's confidence) in the same order.
pub(super) struct GivenRelations {
    pub relations: Vec<Relation>,
    pub scores: Vec<Option<f32>>,
}

/// A relation's optional `score` (or `confidence`), 0–1.
fn relation_score(line: u64, this: &str, relation: &Value) -> Result<Option<f32>, EngineError> {
    match relation.get("score").or_else(|| relation.get("confidence")) {
        Some(v) => read_score(line, &format!("{this}: the score"), v),
        None => Ok(None),
    }
}

/// A relation's type: its `label`.
fn relation_label<'a>(line: u64, this: &str, relation: &'a Value) -> Result<&'a str, EngineError> {
    relation
        .get("label")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            line_error(
                line,
                format!("{this} needs a \"label\" (its relation type)"),
            )
        })
}

/// The list under a relations key: absent or null is none.
fn relation_list<'a>(
    line: u64,
    what: &str,
    value: Option<&'a Value>,
) -> Result<&'a [Value], EngineError> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(list)) => Ok(list),
        Some(_) => Err(line_error(
            line,
            format!("{what} must be a list of relations"),
        )),
    }
}

/// Each relation of `list` with its score: `name` names the relation in errors, and `read`
/// reads its ends and type once it is known to be an object (each format has its own ends).
fn read_each_relation(
    line: u64,
    list: &[Value],
    name: impl Fn(usize) -> String,
    read: impl Fn(&str, &Value) -> Result<Relation, EngineError>,
) -> Result<GivenRelations, EngineError> {
    let mut relations = Vec::with_capacity(list.len());
    let mut scores = Vec::with_capacity(list.len());
    for (i, relation) in list.iter().enumerate() {
        let this = name(i);
        if !relation.is_object() {
            return Err(line_error(line, format!("{this} must be an object")));
        }
        relations.push(read(&this, relation)?);
        scores.push(relation_score(line, &this, relation)?);
    }
    Ok(GivenRelations { relations, scores })
}

/// Concord's relations: `[{"from", "to", "label"}]`, `from` and `to` indices into the spans
/// given beside them (from 0, in the order the file lists them), with an optional `score` or
/// `confidence`.
pub(super) fn read_relations(
    line: u64,
    what: &str,
    value: Option<&Value>,
) -> Result<GivenRelations, EngineError> {
    let list = relation_list(line, what, value)?;
    read_each_relation(
        line,
        list,
        |i| format!("{what}, relation {i}"),
        |this, relation| {
            let end = |key: &str| {
                relation.get(key).and_then(as_u32).ok_or_else(|| {
                    line_error(
                        line,
                        format!("{this}: \"{key}\" must be a whole number (the index of a span, from 0)"),
                    )
                })
            };
            let (from, to) = (end("from")?, end("to")?);
            let label = relation_label(line, this, relation)?;
            Ok(Relation::new(from, to, label))
        },
    )
}

/// An answer as Concord writes it: a list of spans (no relations), or the submitted shape
/// `{"spans": [...], "relations": [{"from", "to", "label"}]}`.
pub(super) fn read_answer(
    line: u64,
    what: &str,
    text: &str,
    tokens: Option<&[Token]>,
    value: &Value,
) -> Result<GivenLabels, EngineError> {
    let Value::Object(obj) = value else {
        return read_spans(line, what, text, tokens, value);
    };
    let Some(spans) = obj.get("spans") else {
        return Err(line_error(
            line,
            format!("{what} must be a list of spans or an object with \"spans\" and \"relations\""),
        ));
    };
    let mut given = read_spans(line, what, text, tokens, spans)?;
    let relations = read_relations(line, what, obj.get("relations"))?;
    given.value.relations = relations.relations;
    given.relation_scores = relations.scores;
    Ok(given)
}

/// Prodigy's relations (`rel.manual`): `{"head", "child", "label", "head_span",
/// "child_span"}`. Prodigy's `head` and `child` are token indices: the LAST token of each span
/// (its `token_end`; spaCy's relation-extraction example maps a relation back to its spans by
/// each span's `token_end`). A span is found by its `head_span`/`child_span` (`start`, `end`,
/// `label`) when given, since offsets name a span even where two spans end on one token;
/// otherwise by the span of the line whose last token is `head`/`child` in the file's
/// `tokens`, which must then be given (Prodigy's token indices mean nothing without them).
pub(super) fn read_prodigy_relations(
    line: u64,
    spans: &[Span],
    tokens: Option<&[Token]>,
    value: Option<&Value>,
) -> Result<GivenRelations, EngineError> {
    let list = relation_list(line, "field \"relations\"", value)?;
    read_each_relation(
        line,
        list,
        |i| format!("relation {i}"),
        |this, relation| {
            let label = relation_label(line, this, relation)?;
            let from = prodigy_end(line, this, spans, tokens, relation, "head")?;
            let to = prodigy_end(line, this, spans, tokens, relation, "child")?;
            Ok(Relation::new(from, to, label))
        },
    )
}

/// The indices in `spans` of the spans `is_end` accepts: a relation's end needs exactly one.
fn matching_spans(spans: &[Span], is_end: impl Fn(&Span) -> bool) -> Vec<usize> {
    spans
        .iter()
        .enumerate()
        .filter_map(|(i, s)| is_end(s).then_some(i))
        .collect()
}

/// The index in `spans` of a Prodigy relation's `end` (`head` or `child`).
fn prodigy_end(
    line: u64,
    this: &str,
    spans: &[Span],
    tokens: Option<&[Token]>,
    relation: &Value,
    end: &str,
) -> Result<u32, EngineError> {
    let token = match relation.get(end) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            line_error(
                line,
                format!("{this}: \"{end}\" must be a whole number (a token index)"),
            )
        })?),
    };
    let found = match relation.get(format!("{end}_span")) {
        Some(span) if !span.is_null() => {
            let offset = |key: &str| {
                span.get(key).and_then(as_u32).ok_or_else(|| {
                    line_error(
                        line,
                        format!(
                            "{this}: {end}_span.{key} must be a whole number (a code point offset)"
                        ),
                    )
                })
            };
            let (start, stop) = (offset("start")?, offset("end")?);
            let label = span.get("label").and_then(Value::as_str);
            // Prodigy writes the span's last token as the relation's end: the two must agree.
            if let (Some(token), Some(token_end)) =
                (token, span.get("token_end").and_then(Value::as_u64))
            {
                if token != token_end {
                    return Err(line_error(
                        line,
                        format!("{this}: \"{end}\" is token {token} but {end}_span ends at token {token_end}"),
                    ));
                }
            }
            let matches = matching_spans(spans, |s| {
                s.start == start && s.end == stop && label.is_none_or(|l| s.label == l)
            });
            match matches.as_slice() {
                [one] => *one,
                [] => {
                    return Err(line_error(
                        line,
                        format!(
                            "{this}: {end}_span ({start}..{stop}{}) is not one of the line's spans",
                            label.map_or(String::new(), |l| format!(", {l:?}"))
                        ),
                    ))
                }
                _ => {
                    return Err(line_error(
                        line,
                        format!("{this}: {end}_span ({start}..{stop}) has no label and the line has several spans there"),
                    ))
                }
            }
        }
        _ => {
            let Some(token) = token else {
                return Err(line_error(
                    line,
                    format!("{this} needs \"{end}_span\" or \"{end}\" (the token index of its {end} span's last token)"),
                ));
            };
            let Some(tokens) = tokens else {
                return Err(line_error(
                    line,
                    format!("{this}: \"{end}\" is a token index, and the line gives no \"tokens\": give them, or \"{end}_span\""),
                ));
            };
            let Some(last) = usize::try_from(token).ok().and_then(|t| tokens.get(t)) else {
                return Err(line_error(
                    line,
                    format!(
                        "{this}: \"{end}\" is token {token}, but the line has {} tokens",
                        tokens.len()
                    ),
                ));
            };
            let matches = matching_spans(spans, |s| s.end == last.end);
            match matches.as_slice() {
                [one] => *one,
                [] => {
                    return Err(line_error(
                        line,
                        format!("{this}: \"{end}\" is token {token}, which ends none of the line's spans (a relation links two spans)"),
                    ))
                }
                _ => {
                    return Err(line_error(
                        line,
                        format!("{this}: several spans end at token {token}: give \"{end}_span\" to say which"),
                    ))
                }
            }
        }
    };
    // Bounded by the spans' count, which validation bounds far below u32::MAX.
    u32::try_from(found).map_err(|_| line_error(line, format!("{this}: too many spans")))
}
