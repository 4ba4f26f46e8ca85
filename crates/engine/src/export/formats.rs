//! The span-aware export shapes: Concord's JSONL for span projects, CoNLL, Prodigy JSONL and
//! Label Studio tasks. Each is the shape the importer reads back (`crate::import`), so an
//! export re-imports into a new project with the same items, tokens, gold and answers.

use std::collections::HashMap;

use concord_domain::bio::TagSet;
use concord_domain::tokens::OffsetMap;
use concord_domain::{aggregate_spans, AnnotationValue, ProjectSpec, Span, Token, UserId};
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

/// Each annotator's answer as `{"annotator", "spans", "source", …times}`, sorted by name.
fn annotations_json(
    anns: Vec<(UserId, AnnotationRecord)>,
    name_of: &dyn Fn(UserId) -> String,
    spans: &dyn Fn(&[Span]) -> Value,
) -> Value {
    let mut sorted: Vec<(String, AnnotationRecord)> =
        anns.into_iter().map(|(u, a)| (name_of(u), a)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .into_iter()
        .map(|(name, a)| {
            json!({
                "annotator": name,
                "spans": spans(&a.value.spans),
                "source": a.source,
                "created_ms": a.created_ms,
                "updated_ms": a.updated_ms,
                "time_spent_ms": a.time_spent_ms,
            })
        })
        .collect()
}

/// One line of a span project's JSONL export: the classification shape with `tokens`, spans
/// for gold and answers, the majority spans and the latest suggestion's spans with their
/// confidences.
pub(super) fn span_jsonl_line(
    spec: &ProjectSpec,
    item: ItemRecord,
    anns: Vec<(UserId, AnnotationRecord)>,
    gold_question: bool,
    suggestion: Option<&SuggestionRecord>,
    name_of: &dyn Fn(UserId) -> String,
) -> Map<String, Value> {
    let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &anns);
    let answers: Vec<&[Span]> = anns.iter().map(|(_, a)| a.value.spans.as_slice()).collect();
    let majority = aggregate_spans(&answers);
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
            .map_or(Value::Null, |(g, _)| spans_json(&g.spans)),
    );
    line.insert(
        "gold_source".into(),
        gold.as_ref()
            .map_or(Value::Null, |(_, s)| Value::String(s.as_str().into())),
    );
    line.insert("gold_question".into(), Value::Bool(gold_question));
    line.insert(
        "annotations".into(),
        annotations_json(anns, name_of, &spans_json),
    );
    line.insert(
        "aggregate".into(),
        json!({ "spans": spans_json(&majority) }),
    );
    line.insert(
        "suggestion".into(),
        suggestion.map_or(Value::Null, |s| {
            let spans: Vec<Value> = s
                .spans
                .iter()
                .map(|x| json!({ "start": x.start, "end": x.end, "label": x.label, "confidence": confidence_json(x.confidence) }))
                .collect();
            json!({ "spans": spans, "confidence": confidence_json(s.confidence), "model_version": s.version })
        }),
    );
    line
}

/// One line of a Prodigy export: `text`, `tokens`, the gold `spans` with `answer: "accept"`
/// (an item without gold has neither), plus Concord's `id`, `meta` and each annotator's
/// answer, which Prodigy keeps as they are.
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
        line.insert("answer".into(), Value::String("accept".into()));
    }
    if !anns.is_empty() {
        let spans = |s: &[Span]| prodigy_spans_json(s, &tokens);
        line.insert(
            "annotations".into(),
            annotations_json(anns, name_of, &spans),
        );
    }
    line
}

/// Label Studio results for a value: a `labels` region per span (offsets converted to UTF-16
/// code units, with the text they cover) or one `choices` result, each with `score` when given.
fn ls_results(
    spec: &ProjectSpec,
    text: &str,
    map: &OffsetMap,
    value: &AnnotationValue,
    scores: Option<&[f32]>,
) -> Value {
    if spec.task.is_spans() {
        value
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
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
                if let Some(score) = scores.and_then(|c| c.get(i)) {
                    region["score"] = confidence_json(*score);
                }
                region
            })
            .collect()
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
            let (value, scores) = if spec.task.is_spans() {
                let spans = s
                    .spans
                    .iter()
                    .map(|x| Span::new(x.start, x.end, x.label.clone()))
                    .collect();
                let scores: Vec<f32> = s.spans.iter().map(|x| x.confidence).collect();
                (AnnotationValue::spans(spans), Some(scores))
            } else {
                (AnnotationValue::labels(s.labels.clone()), None)
            };
            json!({
                "model_version": version_names
                    .get(&s.version)
                    .cloned()
                    .unwrap_or_else(|| format!("concord-v{}", s.version)),
                "score": confidence_json(s.confidence),
                "result": ls_results(spec, &item.text, &map, &value, scores.as_deref()),
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
