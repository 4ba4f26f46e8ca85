//! doccano's JSONL for sequence labelling with relations: one object per line with `text`,
//! `entities` (`[{"id", "label", "start_offset", "end_offset"}]`, offsets in code points, as
//! doccano counts them in Python strings) and `relations` (`[{"id", "from_id", "to_id",
//! "type"}]`, naming entities by id). doccano's sequence labelling without relations
//! (`"label": [[start, end, label], …]`) reads the same way, without relations.
//!
//! The line's entities and relations are its labels, whose meaning [`super::ImportedLabels`]
//! decides; a line without `entities` (or `label`) has none, which is not the same as a line
//! whose list is empty ("no entities"). What Concord's doccano export adds — the item's
//! `tokens`, `meta` and each annotator's answer under `annotations` (`{"annotator",
//! "entities", "relations", …times}`) — is read back; every other field is metadata.

use std::collections::HashMap;

use concord_domain::{AnnotationValue, ProjectSpec, Relation, Span};
use serde_json::Value;

use super::parse::{
    into_meta, read_object, read_times, take_annotations, take_id, take_text, GivenLabels, Parsed,
    ParsedAnnotation,
};
use super::spans::{as_u32, offset, read_score, read_tokens};
use super::{line_error, ImportOptions, ImportedLabels};
use crate::EngineError;

/// One line of a doccano file as an item.
pub(super) fn parse_line(
    line: u64,
    text: &str,
    spec: &ProjectSpec,
    options: &ImportOptions,
) -> Result<Parsed, EngineError> {
    let mut obj = read_object(line, text)?;
    if !spec.task.is_spans() {
        return Err(line_error(
            line,
            format!(
                "doccano's entities and relations are for spans and relations projects, not a {} project",
                spec.task.as_str()
            ),
        ));
    }
    let text = take_text(line, &mut obj, &options.text_field)?;
    let id = take_id(line, &mut obj, &options.id_field)?;
    let tokens = match obj.remove("tokens") {
        None | Some(Value::Null) => None,
        Some(given) => Some(read_tokens(line, &text, &given)?),
    };
    let entities = obj.remove("entities");
    let relations = obj.remove("relations");
    let sequence = match (&entities, obj.get("label")) {
        // doccano's sequence labelling export: `label` as [start, end, label] triples.
        (None, Some(Value::Array(list))) if list.iter().all(Value::is_array) => obj.remove("label"),
        _ => None,
    };
    let mut labels = match (entities, sequence) {
        (Some(entities), _) if !entities.is_null() => Some(read_value(
            line,
            "field \"entities\"",
            &entities,
            relations.as_ref(),
        )?),
        (_, Some(triples)) => Some(read_triples(line, &triples)?),
        _ if relations.as_ref().is_some_and(|r| !r.is_null()) => {
            return Err(line_error(
                line,
                "\"relations\" are given without the \"entities\" they link",
            ))
        }
        _ => None,
    };
    // The line's score for its labels, read only when they are a model's suggestions.
    if let (ImportedLabels::Model { .. }, Some(labels)) = (&options.labels_as, labels.as_mut()) {
        if let Some(score) = obj.remove("score") {
            labels.score = read_score(line, "score", &score)?;
        }
    }
    let annotations = take_annotations(line, &mut obj, |a| read_annotation(line, a))?;
    let meta = into_meta(obj);
    Ok(Parsed {
        line,
        task: None,
        text,
        id,
        meta,
        labels,
        annotations,
        tokens,
        prediction: None,
    })
}

/// One answer Concord's doccano export adds: `{"annotator", "entities", "relations", …}`.
fn read_annotation(line: u64, a: &Value) -> Result<ParsedAnnotation, EngineError> {
    let bad = || {
        line_error(
            line,
            "each entry of \"annotations\" needs \"annotator\" and \"entities\"",
        )
    };
    let name = a.get("annotator").and_then(Value::as_str).ok_or_else(bad)?;
    let entities = a.get("entities").ok_or_else(bad)?;
    let what = format!("entities of annotator {name:?}");
    let given = read_value(line, &what, entities, a.get("relations"))?;
    Ok(ParsedAnnotation {
        annotator: name.to_string(),
        value: given.value,
        times: read_times(line, a)?,
    })
}

/// A doccano id (a number or a string) as a key.
fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Entities and the relations between them, relations re-expressed as indices into the
/// entities in the order the line lists them.
fn read_value(
    line: u64,
    what: &str,
    entities: &Value,
    relations: Option<&Value>,
) -> Result<GivenLabels, EngineError> {
    let Value::Array(list) = entities else {
        return Err(line_error(
            line,
            format!("{what} must be a list of entities"),
        ));
    };
    let mut spans = Vec::with_capacity(list.len());
    let mut ids: HashMap<String, u32> = HashMap::with_capacity(list.len());
    for (i, entity) in list.iter().enumerate() {
        let this = format!("{what}, entity {i}");
        if !entity.is_object() {
            return Err(line_error(line, format!("{this} must be an object")));
        }
        let start = offset(line, &this, entity, "start_offset")?;
        let end = offset(line, &this, entity, "end_offset")?;
        let Some(label) = entity.get("label").and_then(Value::as_str) else {
            return Err(line_error(line, format!("{this} needs a \"label\"")));
        };
        if let Some(id) = entity.get("id").filter(|v| !v.is_null()) {
            let Some(key) = id_key(id) else {
                return Err(line_error(
                    line,
                    format!("{this}: \"id\" must be a number or a string"),
                ));
            };
            let index = u32::try_from(i)
                .map_err(|_| line_error(line, format!("{what}: too many entities")))?;
            if ids.insert(key, index).is_some() {
                return Err(line_error(
                    line,
                    format!("{this}: id {id} is given to another entity of the line too"),
                ));
            }
        }
        spans.push(Span::new(start, end, label));
    }
    let relation_list = match relations {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => {
            return Err(line_error(
                line,
                format!("the relations beside {what} must be a list"),
            ))
        }
    };
    let mut relations = Vec::with_capacity(relation_list.len());
    for (i, relation) in relation_list.iter().enumerate() {
        let this = format!(
            "relation {i}{}",
            relation
                .get("id")
                .map_or(String::new(), |id| format!(" (id {id})"))
        );
        let end = |key: &str| {
            let id = relation.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
                line_error(line, format!("{this} needs \"{key}\", the id of an entity"))
            })?;
            id_key(id)
                .and_then(|k| ids.get(&k).copied())
                .ok_or_else(|| {
                    line_error(
                        line,
                        format!("{this}: {key} {id} is not the id of an entity of {what}"),
                    )
                })
        };
        let (from, to) = (end("from_id")?, end("to_id")?);
        let Some(label) = relation.get("type").and_then(Value::as_str) else {
            return Err(line_error(
                line,
                format!("{this} needs a \"type\" (its relation type)"),
            ));
        };
        relations.push(Relation::new(from, to, label));
    }
    let mut value = AnnotationValue::spans(spans);
    let relation_scores = vec![None; relations.len()];
    value.relations = relations;
    let span_scores = vec![None; value.spans.len()];
    Ok(GivenLabels {
        value,
        score: None,
        span_scores,
        relation_scores,
    })
}

/// doccano's sequence labelling `label`: `[[start, end, label], …]`.
fn read_triples(line: u64, value: &Value) -> Result<GivenLabels, EngineError> {
    let Value::Array(list) = value else {
        return Err(line_error(line, "field \"label\" must be a list"));
    };
    let mut spans = Vec::with_capacity(list.len());
    for (i, triple) in list.iter().enumerate() {
        let parts = triple.as_array().map(Vec::as_slice);
        let Some([start, end, label]) = parts else {
            return Err(line_error(
                line,
                format!("field \"label\", entry {i} must be [start, end, label]"),
            ));
        };
        let (Some(start), Some(end), Some(label)) = (as_u32(start), as_u32(end), label.as_str())
        else {
            return Err(line_error(
                line,
                format!("field \"label\", entry {i} must be [start, end, label] with code point offsets"),
            ));
        };
        spans.push(Span::new(start, end, label));
    }
    Ok(GivenLabels::unscored(AnnotationValue::spans(spans)))
}
