//! How a version's suggestions have been validated, in words an annotator reads beside them:
//! a suggestion must say how sure it is and what that sureness rests on.

use concord_ml::Evaluation;
use concord_store::ModelVersionRecord;

use super::span_metrics::SpanMetrics;
use super::span_model::PATTERNS_TRAINER;
use crate::EXTERNAL_TRAINER;

/// One sentence on what a version's suggestions have been measured against.
pub(crate) fn describe_validation(record: &ModelVersionRecord) -> String {
    let name = record.name.as_deref().unwrap_or("an external model");
    match record.trainer.as_str() {
        PATTERNS_TRAINER => "rules: each span's confidence is its rule's precision on confirmed \
                             items; 0 means the rule has not been validated yet"
            .to_string(),
        EXTERNAL_TRAINER => format!(
            "imported suggestions of {name}: confidences come from the file and are not \
             validated on this project"
        ),
        "zero_shot" => "zero-shot: label descriptions only, not validated on this project's \
                        labels"
            .to_string(),
        _ => describe_held_out(record),
    }
}

fn describe_held_out(record: &ModelVersionRecord) -> String {
    let Some(metrics) = record.metrics.clone() else {
        return format!(
            "trained on {} items; not validated: no held-out confirmed items yet",
            record.train_size
        );
    };
    if let Ok(spans) = serde_json::from_value::<SpanMetrics>(metrics.clone()) {
        return format!(
            "held-out strict entity F1 {:.2} (precision {:.2}, recall {:.2}) on {} confirmed \
             items it was not trained on",
            spans.micro_f1, spans.micro_precision, spans.micro_recall, spans.items
        );
    }
    match serde_json::from_value::<Evaluation>(metrics) {
        Ok(eval) => format!(
            "held-out accuracy {:.0}% (macro F1 {:.2}) on {} confirmed items it was not \
             trained on",
            100.0 * eval.accuracy,
            eval.macro_f1,
            eval.items
        ),
        Err(_) => format!(
            "trained on {} items; its metrics are unreadable",
            record.train_size
        ),
    }
}
