//! The OpenAPI 3.1 description of `/api/v1`, served at `/api/v1/openapi.json`. A test checks
//! that every route of the REST router is described here and the other way round.

use serde_json::{json, Value};

fn error_responses() -> Value {
    json!({
        "401": { "$ref": "#/components/responses/Error" },
        "403": { "$ref": "#/components/responses/Error" },
        "404": { "$ref": "#/components/responses/Error" },
        "422": { "$ref": "#/components/responses/Error" }
    })
}

fn with_errors(mut ok: Value) -> Value {
    if let (Some(map), Value::Object(errors)) = (ok.as_object_mut(), error_responses()) {
        map.extend(errors);
    }
    ok
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" }, "description": "Project id" })
}

/// A relation as review answers and gold carry it: `from`/`to` index the spans beside it.
/// (A function, not inline: the `json!` documents are deep enough to reach the macro's
/// recursion limit.)
fn review_relation_schema() -> Value {
    json!({ "type": "object", "required": ["from", "to", "label"], "properties": { "from": { "type": "integer", "minimum": 0, "description": "Index of the head span" }, "to": { "type": "integer", "minimum": 0, "description": "Index of the tail span" }, "label": { "type": "string", "description": "A relation type (one of the project's relation_labels)" } } })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

pub fn document() -> Value {
    let mut doc = base_document();
    for more in [model_paths(), credential_paths(), bulk_accept_paths()] {
        if let (Some(paths), Value::Object(more)) =
            (doc.get_mut("paths").and_then(Value::as_object_mut), more)
        {
            paths.extend(more);
        }
    }
    if let (Some(schemas), Value::Object(more)) = (
        doc.pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut),
        annotation_schemas(),
    ) {
        schemas.extend(more);
    }
    doc
}

/// What annotators and reviewers send and receive: labels in classification projects, spans
/// in span projects. Every span offset counts Unicode code points of the item text (as Python,
/// spaCy and Prodigy do), not UTF-16 units or bytes: an emoji is one.
fn annotation_schemas() -> Value {
    let offsets = "Offsets are Unicode code points of the item text, [start, end): an emoji is one, whatever its UTF-16 or UTF-8 length.";
    json!({
        "Span": { "type": "object", "required": ["start", "end", "label"], "description": offsets, "properties": { "start": { "type": "integer", "minimum": 0, "description": "First code point" }, "end": { "type": "integer", "description": "One past the last code point; after start, at most the text's length in code points" }, "label": { "type": "string", "description": "An entity type (one of the project's labels)" } } },
        "SuggestedSpan": { "type": "object", "description": offsets, "properties": { "start": { "type": "integer" }, "end": { "type": "integer" }, "label": { "type": "string" }, "confidence": { "type": "number", "minimum": 0, "maximum": 1 } } },
        "Token": { "type": "object", "description": "A word or punctuation token of the item text, fixed at import; code point offsets", "properties": { "start": { "type": "integer" }, "end": { "type": "integer" } } },
        "Suggestion": { "type": "object", "properties": { "labels": { "type": "array", "items": { "type": "string" }, "description": "Classification: the suggested label(s); empty in span projects" }, "confidence": { "type": "number" }, "model_version": { "type": "integer" }, "spans": { "type": "array", "items": { "$ref": "#/components/schemas/SuggestedSpan" }, "description": "Span projects: the suggested spans with their confidences" }, "validation": { "type": "string", "description": "How the version was validated, in words" }, "preselect": { "type": "boolean", "description": "Whether the page pre-selects the suggestion: only once its version is validated (the lower end of a 95% interval of its accuracy on confirmed labels it was not trained on, held-out and live, above always answering the most common label; span projects: of its held-out strict F1 above the patterns'). Otherwise it is a hint" }, "evidence": { "$ref": "#/components/schemas/Evidence" } } },
        "Evidence": { "type": ["object", "null"], "description": "What a version's pre-selection rests on", "properties": { "metric": { "type": "string", "enum": ["accuracy", "span_f1", "acceptance"] }, "held_out_items": { "type": "integer" }, "live_accepted": { "type": "integer", "description": "Answers that took its suggestion unchanged" }, "live_corrected": { "type": "integer" }, "score": { "type": ["number", "null"] }, "interval": { "type": ["object", "null"], "properties": { "low": { "type": "number" }, "high": { "type": "number" } } }, "baseline": { "type": "number" }, "baseline_name": { "type": "string" }, "validated": { "type": "boolean" }, "sentence": { "type": "string", "description": "Whether it is pre-selected and why, for annotators" } } },
        "QueueItem": { "type": "object", "properties": { "id": { "type": "string" }, "text": { "type": "string" }, "meta": { "type": "object" }, "tokens": { "type": "array", "items": { "$ref": "#/components/schemas/Token" }, "description": "Span projects: the item's tokens, which spans snap to; empty otherwise" }, "mine": { "type": ["array", "null"], "description": "The caller's earlier answer in the shape it was submitted: labels, or in span projects spans", "items": { "anyOf": [{ "type": "string" }, { "$ref": "#/components/schemas/Span" }] } }, "others": { "type": ["array", "null"], "description": "Outside blind mode, and not in span projects: how many other annotators chose each label", "items": { "type": "object", "properties": { "label": { "type": "string" }, "count": { "type": "integer" } } } }, "suggestion": { "oneOf": [{ "$ref": "#/components/schemas/Suggestion" }, { "type": "null" }], "description": "The active model's suggestion; never in blind projects or on gold questions" }, "reason": { "type": ["string", "null"] } } },
        "ReviewItem": { "type": "object", "properties": { "id": { "type": "string" }, "text": { "type": "string" }, "meta": { "type": "object" }, "tokens": { "type": "array", "items": { "$ref": "#/components/schemas/Token" }, "description": "Span projects: the item's tokens; empty otherwise" }, "state": { "type": "string", "enum": ["unannotated", "in_progress", "disagreement", "unanimous", "accepted", "answered", "resolved"] }, "answers": { "type": "array", "items": { "type": "object", "properties": { "annotator": { "type": "string" }, "labels": { "type": "array", "items": { "type": "string" } }, "spans": { "type": "array", "items": { "$ref": "#/components/schemas/Span" }, "description": "Span projects: the annotator's spans" }, "relations": { "type": "array", "items": review_relation_schema(), "description": "Relations projects: the annotator's relations, indexing this answer's spans" }, "source": { "type": "object" }, "time_spent_ms": { "type": "integer" }, "updated_ms": { "type": "integer" } } } }, "proposal": { "type": "array", "items": { "type": "string" }, "description": "The majority label(s); empty on a tie and in span projects" }, "proposal_spans": { "type": "array", "items": { "$ref": "#/components/schemas/Span" }, "description": "Span projects: the spans more than half of the answers contain" }, "proposal_relations": { "type": "array", "items": review_relation_schema(), "description": "Relations projects: the relations more than half of the answers contain whose ends are in proposal_spans (indexing proposal_spans)" }, "gold": { "type": ["array", "null"], "items": { "type": "string" } }, "gold_spans": { "type": ["array", "null"], "items": { "$ref": "#/components/schemas/Span" }, "description": "Span projects: the gold spans in force; [] is a settled \"no entities\"" }, "gold_relations": { "type": ["array", "null"], "items": review_relation_schema(), "description": "Relations projects: the gold relations in force, indexing gold_spans" }, "gold_source": { "type": ["object", "null"] }, "gold_question": { "type": "boolean" }, "suggestion": { "oneOf": [{ "$ref": "#/components/schemas/Suggestion" }, { "type": "null" }] } } },
        "Submission": { "type": "object", "required": ["item_id"], "description": "Classification projects send labels; span projects send spans (an empty list answers \"no entities\"); relations projects send spans and relations between them. Spans are checked against the item text (inside it, not empty, known types, given once; not overlapping unless the project allows it) and stored sorted by start, end and label. Relations name their spans by index into the spans as sent; each is checked (both ends exist and differ, a known relation type whose head and tail entity types allow the ends, given once) and stored re-indexed to the sorted spans. A refused answer changes nothing. Offsets are Unicode code points.", "properties": { "item_id": { "type": "string" }, "labels": { "type": "array", "items": { "type": "string" } }, "spans": { "type": "array", "items": { "$ref": "#/components/schemas/Span" } }, "relations": { "type": "array", "items": review_relation_schema(), "description": "Relations projects: directed, typed links between two of the answer's spans" }, "time_spent_ms": { "type": "integer" } } }
    })
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" }, "description": "Account name" })
}

/// API tokens and the account lifecycle (disable, enable, password, sign out everywhere).
fn credential_paths() -> Value {
    json!({
        "/tokens": {
            "get": {
                "summary": "API tokens, never their secrets: the caller's own; `?user=NAME` a named account's (administrators, or oneself); without `user` an administrator gets every account's",
                "parameters": [{ "name": "user", "in": "query", "required": false, "schema": { "type": "string" } }],
                "responses": with_errors(json!({ "200": { "description": "Tokens, newest first", "content": json_content(json!({ "type": "array", "items": { "$ref": "#/components/schemas/Token" } })) } }))
            },
            "post": {
                "summary": "Create an API token for the caller (or, for administrators, the account named in `user`), optionally expiring after `expires_days`; the secret is in the answer only",
                "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["name"], "properties": { "name": { "type": "string", "maxLength": 100 }, "expires_days": { "type": "integer", "minimum": 1 }, "user": { "type": "string" } } })) },
                "responses": with_errors(json!({ "201": { "description": "{id, token}" } }))
            }
        },
        "/tokens/{id}": {
            "delete": {
                "summary": "Revoke an API token: one's own, or any (administrators); it stops working at once",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": "The token's id from GET /tokens" }],
                "responses": with_errors(json!({ "204": { "description": "Revoked" } }))
            }
        },
        "/users/{name}/disable": {
            "post": { "summary": "Disable an account (administrators; not one's own): its sessions end and its tokens stop working at once, and it cannot sign in", "parameters": [name_param()], "responses": with_errors(json!({ "204": { "description": "Disabled" } })) }
        },
        "/users/{name}/enable": {
            "post": { "summary": "Enable a disabled account (administrators); its API tokens work again", "parameters": [name_param()], "responses": with_errors(json!({ "204": { "description": "Enabled" } })) }
        },
        "/users/{name}/password": {
            "put": {
                "summary": "Change a password: one's own with `current_password`, or any account's (administrators). The account's sessions end",
                "parameters": [name_param()],
                "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["new_password"], "properties": { "current_password": { "type": "string" }, "new_password": { "type": "string", "minLength": 8 } } })) },
                "responses": with_errors(json!({ "204": { "description": "Changed" } }))
            }
        },
        "/users/{name}/sign-out-everywhere": {
            "post": {
                "summary": "End every session of an account (oneself, or any for administrators); with `tokens: true` revoke its API tokens too",
                "parameters": [name_param()],
                "requestBody": { "required": false, "content": json_content(json!({ "type": "object", "properties": { "tokens": { "type": "boolean", "default": false } } })) },
                "responses": with_errors(json!({ "200": { "description": "{sessions, tokens}: how many were removed" } }))
            }
        }
    })
}

/// The model endpoints (kept apart: one `json!` for everything exceeds the macro's recursion).
fn model_paths() -> Value {
    json!({
            "/models": {
                "get": { "summary": "Whether model features are available (no server paths: the reason is in the server log), the installed encoder names, and the generators: each GGUF file of the models folder (and its gguf/ folder) by file stem with its architecture, whether this build runs it and its size, and the OpenAI-compatible server CONCORD_LLM_BASE_URL and CONCORD_LLM_MODEL name as server:MODEL", "responses": with_errors(json!({ "200": { "description": "{available, model, reason, installed, generators: [{name, kind, architecture, supported, bytes}]}" } })) }
            },
            "/backup": {
                "post": { "summary": "A consistent snapshot of the whole database, taken in one read transaction while the server runs, as a redb file (administrators; `concord backup FILE --url` calls this)", "responses": with_errors(json!({ "200": { "description": "The snapshot (application/octet-stream)" } })) }
            },
            "/projects/{id}/models": {
                "get": { "summary": "The project's model versions with trainer, training-set size and hash, parent, held-out metrics (accuracy, macro-F1, per-label P/R/F1, confusion, calibration error) and which is active (reviewers, administrators)", "parameters": [id_param()], "responses": with_errors(json!({ "200": { "description": "Versions, oldest first" } })) }
            },
            "/projects/{id}/learning-curve": {
                "get": { "summary": "The learning curve (reviewers, administrators): one point per trained version with held-out figures — confirmed labels when it was trained → held-out accuracy and macro-F1 (span projects: strict micro entity F1), each with a 95% percentile bootstrap interval (1,000 resamples, fixed seed; none for versions stored before held-out predictions were kept) —, an inverse power law score(n) = a − b·n^(−c) fitted through them (a ≤ 1, weighted by held-out items; needs three or more label counts), the labels at which it reaches `target` and how many more than now (or `why_not`), the majority-label rate (span projects: the patterns' F1) on the newest point's held-out items, and the rounds of the loop: per trained version the labels added, the score change, the answers last saved in between, the annotators' time on them and the wall time", "parameters": [id_param(), { "name": "target", "in": "query", "required": false, "schema": { "type": "number", "exclusiveMinimum": 0, "maximum": 1 }, "description": "The held-out score to estimate the labels for; default: 95% of the fitted ceiling a" }], "responses": with_errors(json!({ "200": { "description": "{metric, points, fit, labels_now, target, target_is_default, labels_needed, more_labels, why_not, baseline, rounds, pending}" } })) }
            },
            "/projects/{id}/label-errors": {
                "get": { "summary": "Likely label errors (reviewers, administrators; single-label and span projects): every confirmed label with a cached embedding (gold, else an agreed majority; bulk-accepted gold excluded) is checked against 5-fold out-of-fold logistic heads on the cached embeddings (confident learning) and, where annotators answered the item, their votes weighted by estimated accuracy (CROWDLAB-style consensus). Items a reviewer already decided are not listed. Computed in the request from cached embeddings only, for at most 10,000 confirmed labels (a project with more is refused with 422: compute time grows about 3–7 ms per label). Span projects: every item with confirmed spans is scored token by token against its annotators' answers and the active version's stored suggestion (a version possibly trained on the item weighs half); `given`/`suggested` are the spans as text and `reason.kind` is `span`", "parameters": [id_param(), { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }], "responses": with_errors(json!({ "200": { "description": "[{item_id, seq, text, score, given, suggested, reason: {kind: model_disagrees|annotators_disagree|both|span, model_probability, agreeing, total; span: span, missing, model_disagrees, model_sample: out_of_sample|in_sample|external|no_suggestion, annotators_disagree}, annotators: [{annotator, label}]}], most likely error first (score: 1 − the given label's quality, in [0, 1])" }, "503": { "$ref": "#/components/responses/Error" } })) }
            },
            "/projects/{id}/annotator-quality": {
                "get": { "summary": "Each annotator's quality (reviewers, administrators; single-label and span projects), from the consensus the label errors are ranked by: `agreement` is the share of their answers on items others answered too that agree with the consensus (null without such items), `quality` in [0, 1] mixes it with the consensus probability of their answers; highest quality first. Same limits and errors as `label-errors`", "parameters": [id_param()], "responses": with_errors(json!({ "200": { "description": "[{annotator, answers, agreement, quality}]" }, "503": { "$ref": "#/components/responses/Error" } })) }
            },
            "/projects/{id}/models/{version}/activate": {
                "post": { "summary": "Activate (or roll back to) a version and refresh every suggestion with it; returns the job (project administrators)", "parameters": [id_param(), { "name": "version", "in": "path", "required": true, "schema": { "type": "integer" } }], "responses": with_errors(json!({ "202": { "description": "{job}" } })) }
            },
            "/projects/{id}/train": {
                "post": { "summary": "Train a new version on the confirmed labels (gold, else an agreed majority) in the background; returns the job (project administrators, who also activate versions). At most one queued job per kind and project: another answers 409 naming it. Without a body: a head on the frozen encoder (seconds); `{\"trainer\": \"fine_tune\", \"epochs\": 3}` fine-tunes the encoder too (minutes) and re-embeds every item; `{\"trainer\": \"setfit\"}` (single-label classification, few labels) tunes the encoder on pairs of labelled texts SetFit-style, then the head (tens of seconds at 50–100 labels), and re-embeds every item", "parameters": [id_param()], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "trainer": { "type": "string", "enum": ["head", "fine_tune", "setfit"], "default": "head" }, "epochs": { "type": "integer", "minimum": 1, "maximum": 20, "description": "default 3 (fine_tune), 2 (setfit)" } } } } } }, "responses": with_errors(json!({ "202": { "description": "{job}" }, "503": { "$ref": "#/components/responses/Error" } })) }
            },
            "/projects/{id}/predict": {
                "post": { "summary": "Pre-annotate every item with the active version (zero-shot when none) in the background; returns the job (project administrators). With a body {\"generator\": name from GET /models, \"shots\": 0-32 (default 8)} a generative model labels every single-label item instead by the log-probability of each label's words (demonstrations: the nearest confirmed training-split items), and the run becomes a version with trainer llm, measured on the held-out split. At most one queued job per kind and project: another answers 409 naming it", "parameters": [id_param()], "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "generator": { "type": "string" }, "shots": { "type": "integer", "minimum": 0, "maximum": 32 } }, "required": ["generator"], "additionalProperties": false } } } }, "responses": with_errors(json!({ "202": { "description": "{job}" }, "503": { "$ref": "#/components/responses/Error" } })) }
            },
            "/projects/{id}/jobs": {
                "get": { "summary": "The project's background jobs, newest first (reviewers, administrators)", "parameters": [id_param()], "responses": with_errors(json!({ "200": { "description": "Jobs" } })) }
            },
            "/jobs/{job}": {
                "get": { "summary": "A job's state (queued, running, done, failed, cancelled), progress, rate and ETA", "parameters": [{ "name": "job", "in": "path", "required": true, "schema": { "type": "integer" } }], "responses": with_errors(json!({ "200": { "description": "The job" } })) }
            },
            "/jobs/{job}/cancel": {
                "post": { "summary": "Stop a queued or running job at its next batch (project administrators)", "parameters": [{ "name": "job", "in": "path", "required": true, "schema": { "type": "integer" } }], "responses": with_errors(json!({ "200": { "description": "The job" } })) }
            }
    })
}

fn base_document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Concord API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Projects, items, annotations and exports. Authenticate with `Authorization: Bearer <token>` (create tokens in the UI under Accounts, or with `concord token add USER`). Errors are `{\"error\": \"...\"}` with a 4xx status."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/me": { "get": { "summary": "The account behind the token", "responses": with_errors(json!({ "200": { "description": "The caller", "content": json_content(json!({ "$ref": "#/components/schemas/User" })) } })) } },
            "/projects": {
                "get": { "summary": "Projects the caller belongs to, with progress", "responses": with_errors(json!({ "200": { "description": "Projects", "content": json_content(json!({ "type": "array", "items": { "$ref": "#/components/schemas/Project" } })) } })) },
                "post": {
                    "summary": "Create a project (administrators)",
                    "requestBody": { "required": true, "content": json_content(json!({ "$ref": "#/components/schemas/NewProject" })) },
                    "responses": with_errors(json!({ "201": { "description": "Created; the body carries its \"id\"", "content": json_content(json!({ "$ref": "#/components/schemas/Project" })) }, "409": { "$ref": "#/components/responses/Error" } }))
                }
            },
            "/projects/{id}": { "get": { "summary": "One project", "parameters": [id_param()], "responses": with_errors(json!({ "200": { "description": "The project", "content": json_content(json!({ "$ref": "#/components/schemas/Project" })) } })) } },
            "/projects/{id}/items": {
                "post": {
                    "summary": "Import items (project administrators); all or nothing",
                    "description": "The body is JSONL by default: one object per line with \"text\" and optional \"id\", \"meta\", \"gold\" (other fields are kept as metadata). In span projects a line may be Concord's export shape (\"gold\" and each annotation's \"spans\" as [{\"start\",\"end\",\"label\"}], \"tokens\") or Prodigy's (\"text\", \"tokens\" [{\"text\",\"start\",\"end\",\"id\"}], \"spans\" [{\"start\",\"end\",\"label\",\"token_start\",\"token_end\"}], \"answer\"); given tokens become the item's tokens. format=conll reads one token per line with its BIO tag in the last column and a blank line between items (the text is the tokens joined by single spaces); format=label-studio reads a JSON array of Label Studio tasks (data.text, annotations[].result[] of type labels or choices, predictions[] with model_version and score), numbering errors by task. Relations projects: Concord's \"gold\" and each annotation as {\"spans\", \"relations\": [{\"from\",\"to\",\"label\"}]} (indices into those spans), Prodigy's rel.manual \"relations\" [{\"head\",\"child\",\"label\",\"head_span\",\"child_span\"}] (head/child the token index of each span's last token; head_span/child_span, when given, name the spans by offsets), Label Studio results of type relation (from_id/to_id naming labels regions by id, direction right or left, labels), and format=doccano lines (text, entities [{id,label,start_offset,end_offset}], relations [{id,from_id,to_id,type}]). A relation naming a missing span, region or entity id, an unknown relation type, or ends whose entity types its type forbids fails the import with its line. Offsets are Unicode code points of the item text everywhere; Label Studio's UTF-16 offsets are converted and each region's value.text is checked. A bad line fails the whole import with its line number; nothing is stored.",
                    "parameters": [
                        id_param(),
                        { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["jsonl", "csv", "text", "conll", "label-studio", "prodigy", "doccano"], "default": "jsonl" }, "description": "prodigy is read as jsonl" },
                        { "name": "labels_as", "in": "query", "schema": { "type": "string", "enum": ["gold", "annotator", "model"], "default": "gold" }, "description": "What the file's labels (gold field or column, CoNLL tags, Prodigy spans, a Label Studio task's annotation) are: gold, the answers of the annotator account named by labels_name, or suggestions of an external model: a new model version (trainer \"external\") named by labels_name, active when the project has none, with the file's scores as confidences (0, no claim, where it gives none; the report counts those)" },
                        { "name": "labels_name", "in": "query", "schema": { "type": "string" }, "description": "The annotator's account name (labels_as=annotator) or the model version's name (labels_as=model)" },
                        { "name": "text_field", "in": "query", "schema": { "type": "string", "default": "text" } },
                        { "name": "id_field", "in": "query", "schema": { "type": "string", "default": "id" } },
                        { "name": "gold_field", "in": "query", "schema": { "type": "string", "default": "gold" } },
                        { "name": "skip_duplicates", "in": "query", "schema": { "type": "boolean", "default": false } }
                    ],
                    "requestBody": { "required": true, "content": { "application/x-ndjson": { "schema": { "type": "string" } }, "text/csv": { "schema": { "type": "string" } }, "text/plain": { "schema": { "type": "string" } }, "application/json": { "schema": { "type": "string" } } } },
                    "responses": with_errors(json!({ "200": { "description": "Import report", "content": json_content(json!({ "$ref": "#/components/schemas/ImportReport" })) }, "409": { "$ref": "#/components/responses/Error" }, "413": { "$ref": "#/components/responses/Error" } }))
                }
            },
            "/projects/{id}/next": {
                "get": {
                    "summary": "The caller's next item, reserved for them; in span projects with its tokens and the suggested spans (code point offsets)",
                    "parameters": [id_param(), { "name": "exclude", "in": "query", "schema": { "type": "string" }, "description": "Comma-separated ids the client already holds" }],
                    "responses": with_errors(json!({ "200": { "description": "An item", "content": json_content(json!({ "$ref": "#/components/schemas/QueueItem" })) }, "204": { "description": "Nothing left for the caller" } }))
                }
            },
            "/projects/{id}/annotations": {
                "post": {
                    "summary": "Store the caller's answer for an item (durable when answered; repeating it is harmless)",
                    "description": "Classification projects: `{\"item_id\", \"labels\"}`. Span projects: `{\"item_id\", \"spans\": [{\"start\", \"end\", \"label\"}]}`, offsets in Unicode code points of the item text (an emoji counts one), an empty list for \"no entities\". An invalid answer is refused with 422 naming the problem (the span, and the text's length in code points) and changes nothing.",
                    "parameters": [id_param()],
                    "requestBody": { "required": true, "content": json_content(json!({ "$ref": "#/components/schemas/Submission" })) },
                    "responses": with_errors(json!({ "200": { "description": "Stored", "content": json_content(json!({ "type": "object", "properties": { "outcome": { "type": "string", "enum": ["created", "updated", "unchanged"] } } })) } }))
                }
            },
            "/projects/{id}/skip": {
                "post": {
                    "summary": "Take an item out of the caller's queue",
                    "parameters": [id_param()],
                    "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["item_id"], "properties": { "item_id": { "type": "string" } } })) },
                    "responses": with_errors(json!({ "200": { "description": "Skipped" } }))
                }
            },
            "/projects/{id}/members": {
                "get": { "summary": "Members and their progress (reviewers, administrators)", "parameters": [id_param()], "responses": with_errors(json!({ "200": { "description": "Members" } })) },
                "post": {
                    "summary": "Set a member's role, or remove them with role null (project administrators)",
                    "parameters": [id_param()],
                    "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["user"], "properties": { "user": { "type": "string" }, "role": { "type": ["string", "null"], "enum": ["annotator", "reviewer", "admin", null] } } })) },
                    "responses": with_errors(json!({ "200": { "description": "Applied" } }))
                }
            },
            "/projects/{id}/export": {
                "get": {
                    "summary": "Every item with text, metadata, gold, each annotator's answer and the majority (reviewers, administrators)",
                    "description": "Span offsets are Unicode code points of the item text, except in label-studio, which counts UTF-16 code units as Label Studio does. jsonl: span projects add \"tokens\", gold and answers as \"spans\", and the latest suggestion's spans with confidences. csv: classification projects only. conll: span projects' gold as IOB2 tags, one token per line; items without gold are left out, and spans off token boundaries are widened to the tokens they touch. prodigy: span projects, Prodigy JSONL (text, tokens, spans with token_start/token_end, answer accept). label-studio: a JSON array of tasks, gold as the ground_truth annotation, each annotator's answer as an annotation, the latest suggestion as a prediction. doccano: span projects, doccano JSONL (text, entities, relations; ids numbered from 1 within each answer), items without gold without entities. Relations projects carry relations wherever spans are: jsonl gold, answers and majority as {\"spans\", \"relations\"} and the suggestion's relations with confidences; prodigy \"relations\" in rel.manual's shape; label-studio relation results between regions s0, s1, … (the span's index in the answer's sorted spans); doccano relations. Each re-imports into a new project with the same items, tokens, gold and answers.",
                    "parameters": [id_param(), { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["jsonl", "csv", "conll", "prodigy", "label-studio", "doccano"], "default": "jsonl" } }],
                    "responses": with_errors(json!({ "200": { "description": "The export", "content": { "application/x-ndjson": {}, "text/csv": {}, "text/plain": {}, "application/json": {} } } }))
                }
            },
            "/projects/{id}/agreement": {
                "get": {
                    "summary": "Inter-annotator agreement: every coefficient (percent agreement in three definitions, Fleiss' and Conger's κ, Gwet's AC1/AC2, Brennan–Prediger, Krippendorff's α at four levels, mean pairwise Cohen's κ), 95% bootstrap intervals, per-label agreement, the annotator-pair matrices, per-annotator statistics and agreement per day (reviewers, administrators). Undefined coefficients are {\"undefined\": reason}. Span projects add a `spans` section: span F1 exact (same start, end and type) and overlap-based (same type, any shared character), micro and macro, per entity type and per annotator pair (means over pairs); Krippendorff's unitizing α_U (continuum: the item texts laid end to end, in code points) over the items every annotator answered and per pair over their shared items; each annotator against independent gold; and each model version's stored suggestions as a rater, with span F1 against every annotator and the gold. Relations projects add a `relations` section: relation F1 (a relation counts when both its spans — start, end, entity type — and its type match, direction included) per annotator pair (relations of each, shared, micro and macro), per relation type and overall (means over pairs), with the items and relations compared; each annotator against independent gold; and each model version's suggested relations as a rater against every annotator and the gold.",
                    "parameters": [id_param()],
                    "responses": with_errors(json!({ "200": { "description": "Agreement figures" } }))
                }
            },
            "/projects/{id}/agreement/confusion": {
                "get": {
                    "summary": "The confusion matrix of two annotators over the items both answered (reviewers, administrators)",
                    "parameters": [id_param(), { "name": "a", "in": "query", "required": true, "schema": { "type": "string" } }, { "name": "b", "in": "query", "required": true, "schema": { "type": "string" } }],
                    "responses": with_errors(json!({ "200": { "description": "counts[a][b] over the categories" } }))
                }
            },
            "/projects/{id}/settings": {
                "patch": {
                    "summary": "Change workflow settings; absent fields keep their value (project administrators). The overlap cannot change once answers exist.",
                    "parameters": [id_param()],
                    "requestBody": { "required": true, "content": json_content(json!({ "$ref": "#/components/schemas/Settings" })) },
                    "responses": with_errors(json!({ "200": { "description": "The project", "content": json_content(json!({ "$ref": "#/components/schemas/Project" })) } }))
                }
            },
            "/projects/{id}/review/next": {
                "get": {
                    "summary": "The next item waiting for review after `after` (wrapping around): all its answers side by side, the majority proposal, the gold label in force (reviewers, administrators)",
                    "parameters": [id_param(), { "name": "after", "in": "query", "schema": { "type": "string" }, "description": "Item id the reviewer comes from" }],
                    "responses": with_errors(json!({ "200": { "description": "An item to review", "content": json_content(json!({ "$ref": "#/components/schemas/ReviewItem" })) }, "204": { "description": "Nothing waits for review" } }))
                }
            },
            "/projects/{id}/review/summary": {
                "get": {
                    "summary": "How many items are unannotated, in progress, waiting for review, accepted unanimously, resolved by review, imported with gold, or gold questions (reviewers, administrators)",
                    "parameters": [id_param()],
                    "responses": with_errors(json!({ "200": { "description": "Counts" } }))
                }
            },
            "/projects/{id}/items/{item}/gold": {
                "put": {
                    "summary": "Set an item's gold answer as a review decision — `labels`, or in span projects `spans` (code point offsets; [] for \"no entities\"), in relations projects `spans` and `relations` (indexing `spans` as sent), checked like an annotator's answer — optionally making it a gold question (reviewers, administrators)",
                    "parameters": [id_param(), { "name": "item", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "properties": { "labels": { "type": "array", "items": { "type": "string" } }, "spans": { "type": "array", "items": { "$ref": "#/components/schemas/Span" } }, "relations": { "type": "array", "items": review_relation_schema() }, "gold_question": { "type": "boolean" } } })) },
                    "responses": with_errors(json!({ "200": { "description": "The item as reviewed", "content": json_content(json!({ "$ref": "#/components/schemas/ReviewItem" })) } }))
                }
            },
            "/projects/{id}/items/{item}/gold_question": {
                "put": {
                    "summary": "Make an item with a gold label a gold question (mixed into every annotator's queue to measure accuracy), or a regular item again (reviewers, administrators)",
                    "parameters": [id_param(), { "name": "item", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["gold_question"], "properties": { "gold_question": { "type": "boolean" } } })) },
                    "responses": with_errors(json!({ "200": { "description": "The item", "content": json_content(json!({ "$ref": "#/components/schemas/ReviewItem" })) } }))
                }
            },
            "/users": {
                "get": { "summary": "All accounts (administrators)", "responses": with_errors(json!({ "200": { "description": "Accounts" } })) },
                "post": {
                    "summary": "Create an account (administrators)",
                    "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["name", "password"], "properties": { "name": { "type": "string" }, "password": { "type": "string", "minLength": 8 }, "admin": { "type": "boolean" } } })) },
                    "responses": with_errors(json!({ "201": { "description": "Created" }, "409": { "$ref": "#/components/responses/Error" } }))
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": { "description": "An error", "content": json_content(json!({ "type": "object", "required": ["error", "kind"], "properties": { "error": { "type": "string" }, "kind": { "type": "string", "enum": ["not_signed_in", "forbidden", "not_found", "invalid_input", "conflict", "unavailable", "internal"] } } })) } },
            "schemas": {
                "User": { "type": "object", "properties": { "id": { "type": "integer" }, "name": { "type": "string" }, "is_admin": { "type": "boolean" }, "disabled": { "type": "boolean" } } },
                "Token": { "type": "object", "properties": { "id": { "type": "string" }, "user": { "type": "string" }, "name": { "type": "string" }, "created_ms": { "type": "integer" }, "last_used_ms": { "type": ["integer", "null"] }, "expires_ms": { "type": ["integer", "null"] } } },
                "Label": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" }, "description": { "type": "string" }, "hotkey": { "type": "string", "maxLength": 1 }, "colour": { "type": "string", "pattern": "^#[0-9a-fA-F]{6}$" } } },
                "AutoTrain": { "type": "object", "description": "The loop that trains itself: the head is retrained after every `every` new confirmed labels the encoder fine-tuned when the confirmed labels reach each of `fine_tune_at`, and tuned few-shot (SetFit-style; single-label classification) when they reach each of `few_shot_at` not already passed by a tuned version; an automatic version replaces the active one only if it is not worse on the same held-out items", "properties": { "enabled": { "type": "boolean", "description": "default true" }, "every": { "type": "integer", "minimum": 5, "maximum": 100000, "description": "default 20" }, "fine_tune_at": { "type": "array", "items": { "type": "integer", "minimum": 1 }, "description": "ascending label counts, at most 10 (default [100, 300, 1000])" }, "few_shot_at": { "type": "array", "items": { "type": "integer", "minimum": 1 }, "description": "ascending label counts, at most 10 (default [50])" } } },
                "NewProject": { "type": "object", "required": ["name", "task", "labels"], "properties": { "name": { "type": "string" }, "task": { "type": "string", "enum": ["classification", "multilabel", "spans", "relations"], "description": "spans: named entities, the labels are the entity types; relations: entities and directed, typed relations between them (relation_labels)" }, "labels": { "type": "array", "items": { "$ref": "#/components/schemas/Label" } }, "guidelines": { "type": "string", "description": "Markdown" }, "overlap": { "type": "integer", "minimum": 1 }, "blind": { "type": "boolean", "description": "Hide others' answers and model suggestions from annotators; default: true when overlap ≥ 2" }, "overlapping_spans": { "type": "boolean", "description": "Span projects: spans may overlap or nest (default: flat)" }, "accept_threshold": { "type": "integer", "minimum": 0, "maximum": 100, "description": "Span projects: \"accept all suggestions\" takes suggested spans with at least this confidence, in percent (default 80)" }, "patterns": { "type": "array", "description": "Span projects: pre-annotation rules, matched on token boundaries and shown as suggestions of a \"patterns\" version (a PATCH replaces the whole list)", "items": { "$ref": "#/components/schemas/SpanPattern" } }, "auto_train": { "$ref": "#/components/schemas/AutoTrain" }, "relation_labels": { "type": "array", "description": "Relations projects (at least one; none for other tasks): the relation types", "items": { "$ref": "#/components/schemas/RelationLabel" } } } },
                "RelationLabel": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" }, "description": { "type": "string" }, "head": { "type": "array", "items": { "type": "string" }, "description": "Entity types (project labels) a head span may have; absent or empty: any" }, "tail": { "type": "array", "items": { "type": "string" }, "description": "Entity types a tail span may have; absent or empty: any" }, "hotkey": { "type": "string", "description": "One character in its own key space (not >, \\ or ~); assigned when absent" }, "colour": { "type": "string", "description": "#rrggbb; assigned when absent" } } },
                "Project": { "type": "object", "properties": { "id": { "type": "integer" }, "name": { "type": "string" }, "task": { "type": "string" }, "labels": { "type": "array", "items": { "$ref": "#/components/schemas/Label" } }, "relation_labels": { "type": "array", "items": { "$ref": "#/components/schemas/RelationLabel" } }, "guidelines": { "type": "string" }, "overlap": { "type": "integer" }, "settings": { "$ref": "#/components/schemas/Settings" }, "role": { "type": "string" }, "total": { "type": "integer" }, "done": { "type": "integer" }, "mine": { "type": "integer" } } },
                "Settings": { "type": "object", "properties": { "overlap": { "type": "integer", "minimum": 1, "maximum": 50 }, "blind": { "type": "boolean", "description": "Annotators never see others' answers or model suggestions" }, "auto_accept_unanimous": { "type": "boolean", "description": "With overlap ≥ 2, unanimous items become gold without review" }, "gold_every": { "type": "integer", "description": "About one gold question per this many items; 0 for none" }, "queue_order": { "type": "string", "enum": ["auto", "least_confidence", "margin", "entropy", "random", "import"], "description": "How active learning orders the queue (auto: margin once trained, representative items before)" }, "diversity": { "type": "boolean", "description": "Spread each batch over clusters of similar items" }, "model": { "type": "string", "description": "The encoder: a folder in the models folder (GET /models lists them); the next prediction makes a zero-shot version with it" }, "overlapping_spans": { "type": "boolean", "description": "Span projects: spans may overlap or nest (default: flat)" }, "accept_threshold": { "type": "integer", "minimum": 0, "maximum": 100, "description": "Span projects: \"accept all suggestions\" takes suggested spans with at least this confidence, in percent (default 80)" }, "patterns": { "type": "array", "description": "Span projects: pre-annotation rules, matched on token boundaries and shown as suggestions of a \"patterns\" version (a PATCH replaces the whole list)", "items": { "$ref": "#/components/schemas/SpanPattern" } }, "auto_train": { "$ref": "#/components/schemas/AutoTrain" } } },
                "SpanPattern": { "type": "object", "required": ["label", "kind", "pattern"], "properties": { "label": { "type": "string", "description": "The entity type it suggests" }, "kind": { "type": "string", "enum": ["term", "regex"], "description": "term: a literal phrase matched as whole tokens; regex: a regular expression (Rust regex syntax) whose match must start and end on token boundaries" }, "pattern": { "type": "string", "maxLength": 1000 }, "case_insensitive": { "type": "boolean" } } },
                "ImportReport": { "type": "object", "properties": { "imported": { "type": "integer" }, "duplicates": { "type": "integer" }, "skipped_duplicates": { "type": "integer" }, "duplicate_examples": { "type": "array" }, "blank_lines": { "type": "integer" }, "annotations": { "type": "integer" }, "suggestions": { "type": "integer", "description": "Model suggestions stored (labels_as=model, Label Studio predictions)" }, "suggestions_without_score": { "type": "integer", "description": "Of those, how many the file gave no score, stored with confidence 0 (no claim)" }, "model_version": { "type": ["integer", "null"], "description": "The external model version this import created" } } }
            }
        }
    })
}

/// Reviewers' bulk acceptance of a validated version's suggestions as gold.
fn bulk_accept_paths() -> Value {
    let batch = json!({ "type": "object", "properties": { "version": { "type": "integer" }, "min_confidence": { "type": "integer" }, "reviewer": { "type": "integer", "description": "The reviewer's account id" }, "reviewer_name": { "type": "string" }, "at_ms": { "type": "integer" }, "items": { "type": "integer", "description": "Items whose gold is from this batch" } } });
    json!({
        "/projects/{id}/bulk-accept": {
            "get": {
                "summary": "Preview: how many items no one has answered or settled have the version's suggestion at or above `min_confidence` percent, and that slice's error rate on the version's held-out labels at the same threshold (count, errors, 95% Wilson interval). Label projects; the version must be the active one and validated (409 otherwise); reviewers, administrators",
                "parameters": [id_param(), { "name": "version", "in": "query", "required": true, "schema": { "type": "integer" } }, { "name": "min_confidence", "in": "query", "required": true, "schema": { "type": "integer", "minimum": 0, "maximum": 100 } }],
                "responses": with_errors(json!({ "200": { "description": "{version, min_confidence, items, held_out_items, held_out_errors, error_rate, error_interval, evidence}" }, "409": { "$ref": "#/components/responses/Error" } }))
            },
            "post": {
                "summary": "Set the previewed slice's suggestions as gold in one transaction; the gold source is `bulk_accept` with the version, threshold, reviewer and time (training and evaluation never count it as a confirmed label). Reviewers, administrators",
                "parameters": [id_param()],
                "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["version", "min_confidence"], "properties": { "version": { "type": "integer" }, "min_confidence": { "type": "integer", "minimum": 0, "maximum": 100 } } })) },
                "responses": with_errors(json!({ "200": { "description": "The batch", "content": json_content(batch.clone()) }, "409": { "$ref": "#/components/responses/Error" } }))
            }
        },
        "/projects/{id}/bulk-accept/batches": {
            "get": { "summary": "Bulk acceptances whose gold is still in force, newest first (reviewers, administrators)", "parameters": [id_param()], "responses": with_errors(json!({ "200": { "description": "Batches", "content": json_content(json!({ "type": "array", "items": batch })) } })) }
        },
        "/projects/{id}/bulk-accept/undo": {
            "post": {
                "summary": "Remove one batch's gold (named by reviewer and time) from every item where it is still in force, in one transaction; gold set since by review stays (reviewers, administrators)",
                "parameters": [id_param()],
                "requestBody": { "required": true, "content": json_content(json!({ "type": "object", "required": ["reviewer", "at_ms"], "properties": { "reviewer": { "type": "integer" }, "at_ms": { "type": "integer" } } })) },
                "responses": with_errors(json!({ "200": { "description": "{cleared}: items whose gold was removed" } }))
            }
        }
    })
}
