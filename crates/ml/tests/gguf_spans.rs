//! Named-entity spans from a real generative model, SmolLM2-135M-Instruct quantized to Q4_1
//! (the file `gguf_scoring` uses, looked for in `CONCORD_GGUF_DIR`, else `models/gguf/` at the
//! repository root). Which entities a 135M model finds is not claimed: only that its answer,
//! decoded under the grammar, is the promised JSON and every span sits where its text is.

use std::ops::ControlFlow;

use concord_ml::generative::{
    extract_spans, extract_spans_batch, ChatFormat, ExtractedSpans, LabelSpec, SpanDemonstration,
    SpanOptions, SpanPromptSpec,
};
use concord_ml::MlError;

use crate::gguf_files::smollm2;

const TEXT: &str = "Angela Merkel visited Paris on Monday.";

fn people_and_places() -> SpanPromptSpec {
    SpanPromptSpec {
        guidelines: Some("Mark the names of people and of places.".to_string()),
        labels: vec![
            LabelSpec {
                name: "PERSON".to_string(),
                description: Some("the name of a person".to_string()),
            },
            LabelSpec {
                name: "LOCATION".to_string(),
                description: Some("the name of a place: a city, a country, a region".to_string()),
            },
        ],
        demonstrations: Vec::new(),
    }
}

/// The answer is a JSON array of `{"text", "label"}` objects with known labels, and every span
/// is the text at its offsets (code points).
fn assert_well_formed(text: &str, spec: &SpanPromptSpec, out: &ExtractedSpans) {
    let answer: serde_json::Value =
        serde_json::from_str(&out.raw).unwrap_or_else(|e| panic!("{:?} is not JSON: {e}", out.raw));
    let listed = answer
        .as_array()
        .unwrap_or_else(|| panic!("{:?} is not an array", out.raw));
    let names: Vec<&str> = spec.labels.iter().map(|l| l.name.as_str()).collect();
    for mention in listed {
        let object = mention.as_object().expect("an object per mention");
        assert_eq!(object.len(), 2, "{mention}");
        let mention_text = object["text"].as_str().expect("a text");
        assert!(
            text.contains(mention_text),
            "{mention_text:?} is not in the text"
        );
        let label = object["label"].as_str().expect("a label");
        assert!(names.contains(&label), "unknown label {label:?}");
    }
    assert_eq!(out.unmatched, 0, "{}", out.raw);
    assert_eq!(out.spans.len(), listed.len(), "{}", out.raw);
    let chars: Vec<char> = text.chars().collect();
    for span in &out.spans {
        assert!(span.start < span.end && span.end <= chars.len(), "{span:?}");
        let at: String = chars[span.start..span.end].iter().collect();
        assert_eq!(at, span.text, "{span:?}");
        assert!(span.label < names.len(), "{span:?}");
    }
}

#[test]
fn spans_are_the_promised_json_and_sit_at_their_offsets() {
    let model = smollm2();
    let spec = people_and_places();
    let out = extract_spans(&model, &spec, TEXT, &SpanOptions::default()).unwrap();
    assert_well_formed(TEXT, &spec, &out);

    // Plain text with a demonstration and a short answer limit: still well formed, closed here
    // if the model had not finished.
    let mut spec = spec;
    spec.demonstrations = vec![SpanDemonstration {
        text: "Barack Obama spoke in Ohio.".to_string(),
        mentions: vec![("Barack Obama".to_string(), 0), ("Ohio".to_string(), 1)],
    }];
    let options = SpanOptions {
        format: Some(ChatFormat::Plain),
        max_new_tokens: 24,
    };
    let out = extract_spans(&model, &spec, TEXT, &options).unwrap();
    assert_well_formed(TEXT, &spec, &out);
}

#[test]
fn a_batch_reports_progress_and_can_be_cancelled() {
    let model = smollm2();
    let spec = people_and_places();
    let texts = [
        TEXT,
        "Nothing happened here.",
        "Zoë flew from Köln to Paris.",
    ];
    let options = SpanOptions {
        max_new_tokens: 48,
        ..SpanOptions::default()
    };
    let mut calls = Vec::new();
    let out = extract_spans_batch(&model, &spec, &texts, &options, &mut |done, total| {
        calls.push((done, total));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(calls, vec![(0, 3), (1, 3), (2, 3), (3, 3)]);
    assert_eq!(out.len(), 3);
    for (text, spans) in texts.iter().zip(&out) {
        assert_well_formed(text, &spec, spans);
    }

    let mut calls = Vec::new();
    let result = extract_spans_batch(&model, &spec, &texts, &options, &mut |done, total| {
        calls.push((done, total));
        if done >= 1 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(result, Err(MlError::Cancelled)));
    assert_eq!(calls, vec![(0, 3), (1, 3)]);
}
