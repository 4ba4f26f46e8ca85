//! The span-aware export shapes: Concord's JSONL for span and relations projects, CoNLL,
//! Prodigy JSONL, Label Studio tasks and doccano JSONL. Each is the shape the importer reads
//! back (`crate::import`), so an export re-imports into a new project with the same items,
//! tokens, gold and answers, relations included.
//!
//! In a relations project every answer Concord writes in its own shape (JSONL gold, every
//! format's `annotations`) is the shape one is submitted in: `{"spans": [...], "relations":
//! [{"from", "to", "label"}]}`, `from` and `to` indices into those spans.

use std::collections::HashMap;

use concord_domain::bio::TagSet;
use concord_domain::tokens::OffsetMap;
use concord_domain::{
    aggregate_relations, aggregate_spans, AnnotationValue, ProjectSpec, Relation, Span, Token,
    UserId,
};
use concord_store::{AnnotationRecord, ItemRecord, SuggestionRecord};
use serde_json::{json, Map, Value};

use crate::import::label_studio::CONCORD_KEY;
use crate::review::effective_gold;

/// The Label Studio control and object names Concord's export uses (a labelling config with
/// `<Labels name="label" toName="text">` or `<Choices name="label" toName="text">`).
const LS_FROM_NAME: &str = "label";
const LS_TO_NAME: &str = "text";

/// An item's tokens in Prodigy's shape: `{"text", "start", "end", "id"}`, offsets in code
/// points.
fn tokens_json(text: &str, map: &OffsetMap, tokens: &[Token]) -> Value {
    tokens
        .iter()
        .enumerate()
        .map(|(id, t)| {
            json!({
                "text": map.slice(text, t.start, t.end).unwrap_or_default(),
                "start": t.start,
                "end": t.end,
                "id": id,
            })
        })
        .collect()
}

/// A confidence as JSON: the shortest decimal that reads back as the same `f32` (`0.9`, not
/// the `0.8999999761581421` of widening it to `f64`), so a re-import stores the same bits.
fn confidence_json(confidence: f32) -> Value {
    confidence
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Spans as `{"start", "end", "label"}` objects.
fn spans_json(spans: &[Span]) -> Value {
    spans
        .iter()
        .map(|s| json!({ "start": s.start, "end": s.end, "label": s.label }))
        .collect()
}

/// Spans in Prodigy's shape: with `token_start` and `token_end` (inclusive) where the span
/// starts and ends on token boundaries (Prodigy's own spans always do; a character-mode span
/// has none, rather than indices that would contradict its offsets).
fn prodigy_spans_json(spans: &[Span], tokens: &[Token]) -> Value {
    spans
        .iter()
        .map(|s| {
            let mut span = json!({ "start": s.start, "end": s.end, "label": s.label });
            // Tokens are in order and never overlap: sorted by start and by end alike.
            let first = tokens.binary_search_by_key(&s.start, |t| t.start).ok();
            let last = tokens.binary_search_by_key(&s.end, |t| t.end).ok();
            if let (Some(first), Some(last)) = (first, last) {
                span["token_start"] = first.into();
                span["token_end"] = last.into();
            }
            span
        })
        .collect()
}

/// Relations as `{"from", "to", "label"}` objects (indices into the answer's spans).
fn relations_json(relations: &[Relation]) -> Value {
    relations
        .iter()
        .map(|r| json!({ "from": r.from, "to": r.to, "label": r.label }))
        .collect()
}

/// An answer in Concord's shape: its spans, and in a relations project the object an answer
/// is submitted as, `{"spans", "relations"}`.
fn answer_json(spec: &ProjectSpec, value: &AnnotationValue) -> Value {
    if spec.task.has_relations() {
        json!({ "spans": spans_json(&value.spans), "relations": relations_json(&value.relations) })
    } else {
        spans_json(&value.spans)
    }
}

/// An answer's fields in an `annotations` entry: `spans` as `spans` writes them, and in a
/// relations project `relations` in Concord's shape.
type AnswerFields<'a> = dyn Fn(&AnnotationValue) -> Vec<(&'static str, Value)> + 'a;

/// Concord's answer fields: `spans`, and `relations` in a relations project.
fn concord_fields<'a>(
    spec: &'a ProjectSpec,
    spans: &'a dyn Fn(&[Span]) -> Value,
) -> impl Fn(&AnnotationValue) -> Vec<(&'static str, Value)> + 'a {
    move |value| {
        let mut fields = vec![("spans", spans(&value.spans))];
        if spec.task.has_relations() {
            fields.push(("relations", relations_json(&value.relations)));
        }
        fields
    }
}

/// Each annotator's answer as `{"annotator", …fields, "source", …times}`, sorted by name.
fn annotations_json(
    anns: Vec<(UserId, AnnotationRecord)>,
    name_of: &dyn Fn(UserId) -> String,
    fields: &AnswerFields<'_>,
) -> Value {
    let mut sorted: Vec<(String, AnnotationRecord)> =
        anns.into_iter().map(|(u, a)| (name_of(u), a)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .into_iter()
        .map(|(name, a)| {
            let mut entry = Map::new();
            entry.insert("annotator".into(), Value::String(name));
            for (key, value) in fields(&a.value) {
                entry.insert(key.into(), value);
            }
            entry.insert("source".into(), json!(a.source));
            entry.insert("created_ms".into(), json!(a.created_ms));
            entry.insert("updated_ms".into(), json!(a.updated_ms));
            entry.insert("time_spent_ms".into(), json!(a.time_spent_ms));
            Value::Object(entry)
        })
        .collect()
}

/// One line of a span project's JSONL export: the classification shape with `tokens`, spans
/// for gold and answers, the majority spans and the latest suggestion's spans with their
/// confidences; in a relations project each of them with its relations too (gold as
/// `{"spans", "relations"}`, the suggestion's relations with their confidences).
pub(super) fn span_jsonl_line(
    spec: &ProjectSpec,
    item: ItemRecord,
    anns: Vec<(UserId, AnnotationRecord)>,
    gold_question: bool,
    suggestion: Option<&SuggestionRecord>,
    name_of: &dyn Fn(UserId) -> String,
) -> Map<String, Value> {
    let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &anns);
    let aggregate = if spec.task.has_relations() {
        let answers: Vec<&AnnotationValue> = anns.iter().map(|(_, a)| &a.value).collect();
        let majority = aggregate_relations(&answers);
        json!({ "spans": spans_json(&majority.spans), "relations": relations_json(&majority.relations) })
    } else {
        let answers: Vec<&[Span]> = anns.iter().map(|(_, a)| a.value.spans.as_slice()).collect();
        json!({ "spans": spans_json(&aggregate_spans(&answers)) })
    };
    let map = OffsetMap::new(&item.text);
    let tokens = tokens_json(&item.text, &map, &item.tokens());
    let mut line = Map::new();
    line.insert("id".into(), Value::String(item.id));
    line.insert("text".into(), Value::String(item.text));
    line.insert("meta".into(), Value::Object(item.meta));
    line.insert("tokens".into(), tokens);
    line.insert(
        "gold".into(),
        gold.as_ref()
            .map_or(Value::Null, |(g, _)| answer_json(spec, g)),
    );
    line.insert(
        "gold_source".into(),
        gold.as_ref()
            .map_or(Value::Null, |(_, s)| Value::String(s.as_str().into())),
    );
    line.insert("gold_question".into(), Value::Bool(gold_question));
    line.insert(
        "annotations".into(),
        annotations_json(anns, name_of, &concord_fields(spec, &spans_json)),
    );
    line.insert("aggregate".into(), aggregate);
    line.insert(
        "suggestion".into(),
        suggestion.map_or(Value::Null, |s| {
            let spans: Vec<Value> = s
                .spans
                .iter()
                .map(|x| json!({ "start": x.start, "end": x.end, "label": x.label, "confidence": confidence_json(x.confidence) }))
                .collect();
            let mut suggestion = json!({ "spans": spans });
            if spec.task.has_relations() {
                suggestion["relations"] = s
                    .relations
                    .iter()
                    .map(|r| json!({ "from": r.from, "to": r.to, "label": r.label, "confidence": confidence_json(r.confidence) }))
                    .collect();
            }
            suggestion["confidence"] = confidence_json(s.confidence);
            suggestion["model_version"] = s.version.into();
            suggestion
        }),
    );
    line
}

/// The index of the last token holding part of `span`: a Prodigy relation's `head` or
/// `child` (Prodigy names a relation's ends by their spans' last tokens, `token_end`). A span
/// off token boundaries (character mode) gets the last token it touches; none when it touches
/// no token, and then only `head_span`/`child_span`, which the importer reads first, name it.
fn last_token(span: &Span, tokens: &[Token]) -> Option<usize> {
    // Tokens are in order and never overlap: those starting before the span's end come first.
    let before_end = tokens.partition_point(|t| t.start < span.end);
    let last = before_end.checked_sub(1)?;
    (tokens[last].end > span.start).then_some(last)
}

/// Relations in Prodigy's shape (`rel.manual`): `head` and `child` the last token of each
/// end ([`last_token`]), `head_span` and `child_span` the ends as Prodigy spans, and `label`.
fn prodigy_relations_json(value: &AnnotationValue, tokens: &[Token]) -> Value {
    let spans = prodigy_spans_json(&value.spans, tokens);
    let span = |i: u32| spans.get(i as usize).cloned().unwrap_or(Value::Null);
    let token = |i: u32| {
        value
            .spans
            .get(i as usize)
            .and_then(|s| last_token(s, tokens))
            .map_or(Value::Null, Value::from)
    };
    value
        .relations
        .iter()
        .map(|r| {
            json!({
                "head": token(r.from),
                "child": token(r.to),
                "head_span": span(r.from),
                "child_span": span(r.to),
                "label": r.label,
            })
        })
        .collect()
}

/// One line of a Prodigy export: `text`, `tokens`, the gold `spans` (and in a relations
/// project the gold `relations` in Prodigy's shape) with `answer: "accept"` (an item without
/// gold has none of them), plus Concord's `id`, `meta` and each annotator's answer (spans in
/// Prodigy's shape, relations in Concord's), which Prodigy keeps as they are.
pub(super) fn prodigy_line(
    spec: &ProjectSpec,
    item: ItemRecord,
    anns: Vec<(UserId, AnnotationRecord)>,
    name_of: &dyn Fn(UserId) -> String,
) -> Map<String, Value> {
    let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &anns);
    let map = OffsetMap::new(&item.text);
    let tokens = item.tokens().into_owned();
    let mut line = Map::new();
    line.insert("id".into(), Value::String(item.id));
    line.insert("text".into(), Value::String(item.text.clone()));
    line.insert("meta".into(), Value::Object(item.meta));
    line.insert("tokens".into(), tokens_json(&item.text, &map, &tokens));
    if let Some((gold, _)) = &gold {
        line.insert("spans".into(), prodigy_spans_json(&gold.spans, &tokens));
        if spec.task.has_relations() {
            line.insert("relations".into(), prodigy_relations_json(gold, &tokens));
        }
        line.insert("answer".into(), Value::String("accept".into()));
    }
    if !anns.is_empty() {
        let spans = |s: &[Span]| prodigy_spans_json(s, &tokens);
        line.insert(
            "annotations".into(),
            annotations_json(anns, name_of, &concord_fields(spec, &spans)),
        );
    }
    line
}

/// An answer as doccano's `entities` and `relations`. An entity's `id` is 1 + its index in
/// the answer's spans (canonical order: start, end, label), a relation's `id` 1 + its index
/// in the answer's relations (canonical order) — ids of one line's answer only, so the same
/// answer always gets the same ids. Offsets are code points, as doccano counts them.
fn doccano_parts(value: &AnnotationValue) -> (Value, Value) {
    let entities = value
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({ "id": i + 1, "label": s.label, "start_offset": s.start, "end_offset": s.end })
        })
        .collect();
    let relations = value
        .relations
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({ "id": i + 1, "from_id": r.from + 1, "to_id": r.to + 1, "type": r.label })
        })
        .collect();
    (entities, relations)
}

/// One line of a doccano export: Concord's `id`, `text`, the gold as `entities` and
/// `relations` (an item without gold has neither: an empty list would say "no entities"),
/// plus what doccano keeps as metadata and Concord reads back: `meta`, the item's `tokens`
/// and each annotator's answer as `{"annotator", "entities", "relations", …times}`.
pub(super) fn doccano_line(
    spec: &ProjectSpec,
    item: ItemRecord,
    anns: Vec<(UserId, AnnotationRecord)>,
    name_of: &dyn Fn(UserId) -> String,
) -> Map<String, Value> {
    let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &anns);
    let map = OffsetMap::new(&item.text);
    let tokens = tokens_json(&item.text, &map, &item.tokens());
    let mut line = Map::new();
    line.insert("id".into(), Value::String(item.id));
    line.insert("text".into(), Value::String(item.text));
    if let Some((gold, _)) = &gold {
        let (entities, relations) = doccano_parts(gold);
        line.insert("entities".into(), entities);
        line.insert("relations".into(), relations);
    }
    line.insert("meta".into(), Value::Object(item.meta));
    line.insert("tokens".into(), tokens);
    if !anns.is_empty() {
        let fields = |value: &AnnotationValue| {
            let (entities, relations) = doccano_parts(value);
            vec![("entities", entities), ("relations", relations)]
        };
        line.insert(
            "annotations".into(),
            annotations_json(anns, name_of, &fields),
        );
    }
    line
}

/// The scores a prediction's results carry: one per span and one per relation, in the
/// value's order.
struct LsScores<'a> {
    spans: &'a [f32],
    relations: &'a [f32],
}

/// Label Studio results for a value: a `labels` region per span (offsets converted to UTF-16
/// code units, with the text they cover), then in a relations project a `relation` result per
/// relation, or one `choices` result; each with `score` when given.
///
/// Region ids are deterministic, so the same answer always exports to the same bytes: a
/// region's `id` is `s` followed by the span's index in the answer's spans in their canonical
/// order (by start, end, label; `s0`, `s1`, …), counted within each annotation and prediction
/// (Label Studio keeps a region's id within its own annotation). A relation result has no id
/// of its own: `{"from_id": "s<head index>", "to_id": "s<tail index>", "type": "relation",
/// "direction": "right", "labels": [type]}`, in the answer's relation order (by head index,
/// tail index, type). The `choices` result of a classification answer is `c0`.
fn ls_results(
    spec: &ProjectSpec,
    text: &str,
    map: &OffsetMap,
    value: &AnnotationValue,
    scores: Option<LsScores<'_>>,
) -> Value {
    if spec.task.is_spans() {
        let regions = value.spans.iter().enumerate().map(|(i, s)| {
            let mut region = json!({
                "id": format!("s{i}"),
                "from_name": LS_FROM_NAME,
                "to_name": LS_TO_NAME,
                "type": "labels",
                "value": {
                    "start": map.utf16(s.start),
                    "end": map.utf16(s.end),
                    "text": map.slice(text, s.start, s.end),
                    "labels": [s.label],
                },
            });
            if let Some(score) = scores.as_ref().and_then(|c| c.spans.get(i)) {
                region["score"] = confidence_json(*score);
            }
            region
        });
        let relations = value.relations.iter().enumerate().map(|(i, r)| {
            let mut result = json!({
                "from_id": format!("s{}", r.from),
                "to_id": format!("s{}", r.to),
                "type": "relation",
                "direction": "right",
                "labels": [r.label],
            });
            if let Some(score) = scores.as_ref().and_then(|c| c.relations.get(i)) {
                result["score"] = confidence_json(*score);
            }
            result
        });
        regions.chain(relations).collect()
    } else if value.labels.is_empty() {
        // No label at all (a multi-label "none of them"): no choices result.
        json!([])
    } else {
        json!([{
            "id": "c0",
            "from_name": LS_FROM_NAME,
            "to_name": LS_TO_NAME,
            "type": "choices",
            "value": { "choices": value.labels },
        }])
    }
}

/// One Label Studio task: `data` (the text and Concord's id), `meta`, the gold as a
/// `ground_truth` annotation, each annotator's answer as an annotation naming them under
/// [`CONCORD_KEY`] (with `lead_time` in seconds for Label Studio), and the latest suggestion as
/// a prediction of its model version.
pub(super) fn label_studio_task(
    spec: &ProjectSpec,
    seq: u64,
    item: ItemRecord,
    anns: Vec<(UserId, AnnotationRecord)>,
    suggestion: Option<&SuggestionRecord>,
    version_names: &HashMap<u64, String>,
    name_of: &dyn Fn(UserId) -> String,
) -> Value {
    let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &anns);
    let map = OffsetMap::new(&item.text);
    let tokens = if spec.task.is_spans() {
        item.tokens().into_owned()
    } else {
        Vec::new()
    };
    let mut annotations = Vec::new();
    if let Some((gold, _)) = &gold {
        annotations.push(json!({
            "ground_truth": true,
            "was_cancelled": false,
            "result": ls_results(spec, &item.text, &map, gold, None),
        }));
    }
    let mut sorted: Vec<(String, AnnotationRecord)> =
        anns.into_iter().map(|(u, a)| (name_of(u), a)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, a) in sorted {
        annotations.push(json!({
            "ground_truth": false,
            "was_cancelled": false,
            "lead_time": a.time_spent_ms as f64 / 1000.0,
            "result": ls_results(spec, &item.text, &map, &a.value, None),
            CONCORD_KEY: {
                "annotator": name,
                "source": a.source,
                "created_ms": a.created_ms,
                "updated_ms": a.updated_ms,
                "time_spent_ms": a.time_spent_ms,
            },
        }));
    }
    let predictions: Vec<Value> = suggestion
        .map(|s| {
            let span_scores: Vec<f32> = s.spans.iter().map(|x| x.confidence).collect();
            let relation_scores: Vec<f32> = s.relations.iter().map(|x| x.confidence).collect();
            let (value, scores) = if spec.task.is_spans() {
                let spans = s
                    .spans
                    .iter()
                    .map(|x| Span::new(x.start, x.end, x.label.clone()))
                    .collect();
                let relations = s
                    .relations
                    .iter()
                    .map(|x| Relation::new(x.from, x.to, x.label.clone()))
                    .collect();
                let value = AnnotationValue {
                    spans,
                    relations,
                    ..AnnotationValue::default()
                };
                let scores = LsScores {
                    spans: &span_scores,
                    relations: &relation_scores,
                };
                (value, Some(scores))
            } else {
                (AnnotationValue::labels(s.labels.clone()), None)
            };
            json!({
                "model_version": version_names
                    .get(&s.version)
                    .cloned()
                    .unwrap_or_else(|| format!("concord-v{}", s.version)),
                "score": confidence_json(s.confidence),
                "result": ls_results(spec, &item.text, &map, &value, scores),
            })
        })
        .into_iter()
        .collect();
    let mut task = json!({
        "id": seq + 1,
        "data": { LS_TO_NAME: item.text, "id": item.id },
        "meta": item.meta,
        "annotations": annotations,
        "predictions": predictions,
    });
    if spec.task.is_spans() {
        // Label Studio has no place for tokens; Concord's import reads them back from here.
        let text = task["data"][LS_TO_NAME]
            .as_str()
            .unwrap_or_default()
            .to_string();
        task[CONCORD_KEY] = json!({ "tokens": tokens_json(&text, &map, &tokens) });
    }
    task
}

/// Writes items as CoNLL sentences: the item's tokens (whitespace tokens, which some
/// tokenizers make, left out: a CoNLL line cannot hold one) with IOB2 tags. A span that does
/// not start and end on token boundaries (character mode) is widened to the tokens it
/// touches; where spans overlap (a project that allows it), the longest are written (BIO
/// cannot nest: `TagSet::encode`).
pub(super) struct ConllWriter {
    tags: TagSet,
}

impl ConllWriter {
    pub(super) fn new(spec: &ProjectSpec) -> ConllWriter {
        let labels: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        ConllWriter {
            tags: TagSet::new(&labels),
        }
    }

    /// One item's lines and the blank line that ends them.
    pub(super) fn sentence(&self, item: &ItemRecord, spans: &[Span]) -> String {
        let map = OffsetMap::new(&item.text);
        let tokens: Vec<Token> = item
            .tokens()
            .iter()
            .copied()
            .filter(|t| {
                map.slice(&item.text, t.start, t.end)
                    .is_some_and(|s| !s.trim().is_empty())
            })
            .collect();
        let token_spans = concord_domain::bio::token_spans(&tokens, spans, self.tags.labels());
        let tags: Vec<String> = self
            .tags
            .encode(tokens.len(), &token_spans)
            .into_iter()
            .map(|t| self.tags.tag_name(t))
            .collect();
        let words = concord_domain::tokens::token_texts(&item.text, &tokens);
        let mut out = String::new();
        concord_domain::conll::write_sentence(&mut out, &words, &tags);
        out
    }
}
