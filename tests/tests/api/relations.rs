//! Relations projects over the REST API: creating one (and every way a definition is
//! refused), answers with relations (and every way one is refused, storing nothing), and the
//! export shapes that carry the relations.

use concord_tests::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// works_for: PER → ORG; located_in: ORG or LOC → LOC; knows: any entity types.
fn relations_spec(name: &str) -> Value {
    json!({
        "name": name,
        "task": "relations",
        "labels": [{"name": "PER"}, {"name": "ORG"}, {"name": "LOC"}],
        "relation_labels": [
            {"name": "works_for", "description": "employment", "head": ["PER"], "tail": ["ORG"]},
            {"name": "located_in", "head": ["ORG", "LOC"], "tail": ["LOC"]},
            {"name": "knows"},
        ],
        "overlap": 1,
    })
}

/// The admin creates the relations project `name`; its id.
async fn relations_project(s: &TestServer, name: &str) -> u64 {
    let (status, body) = s.create_project(&s.admin_token, relations_spec(name)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_u64().expect("project id")
}

/// The names of the projects the admin sees.
async fn project_names(s: &TestServer) -> Vec<String> {
    let (status, list) = s.api(Method::GET, &s.admin_token, "/projects", None).await;
    assert_eq!(status, StatusCode::OK);
    list.as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_relations_project_is_created_and_each_bad_definition_refused() {
    let s = TestServer::start().await;
    let (status, body) = s
        .create_project(&s.admin_token, relations_spec("Relations"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["task"], "relations");
    let types = body["relation_labels"].as_array().expect("relation types");
    assert_eq!(types.len(), 3);
    assert_eq!(types[0]["name"], "works_for");
    assert_eq!(types[0]["head"], json!(["PER"]));
    assert_eq!(types[0]["tail"], json!(["ORG"]));
    assert_eq!(
        types[2]["head"],
        json!([]),
        "no restriction: any entity type"
    );
    for t in types {
        assert!(t["hotkey"].is_string(), "a hotkey is assigned: {t}");
        assert!(
            t["colour"].as_str().is_some_and(|c| c.starts_with('#')),
            "{t}"
        );
    }
    let (_, fetched) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{}", body["id"]),
            None,
        )
        .await;
    assert_eq!(fetched["relation_labels"], body["relation_labels"]);

    let with = |change: &dyn Fn(&mut Value)| {
        let mut spec = relations_spec("Refused");
        change(&mut spec);
        spec
    };
    let cases = [
        (
            with(&|s| s["relation_labels"] = json!([])),
            "a relations project needs at least one relation type",
        ),
        (
            with(&|s| s["relation_labels"][0]["tail"] = json!(["GPE"])),
            "relation type \"works_for\" names entity type \"GPE\", which is not one of this project's labels",
        ),
        (
            with(&|s| s["task"] = json!("spans")),
            "relation types are for relations projects, not a spans project",
        ),
        (
            with(&|s| s["relation_labels"][1]["name"] = json!("works_for")),
            "relation type \"works_for\" appears twice",
        ),
    ];
    for (spec, says) in cases {
        let (status, body) = s.create_project(&s.admin_token, spec.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{spec}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{error:?} lacks {says:?}");
    }
    assert_eq!(
        project_names(&s).await,
        ["Relations"],
        "no refused project was stored"
    );
}

#[tokio::test]
async fn answers_with_relations_are_stored_and_every_bad_one_refused() {
    let s = TestServer::start().await;
    let p = relations_project(&s, "Answers").await;
    // "Ann works for Acme in Oslo": Ann 0..3 PER, Acme 14..18 ORG, Oslo 22..26 LOC.
    let body = "{\"id\":\"a\",\"text\":\"Ann works for Acme in Oslo\"}\n{\"id\":\"b\",\"text\":\"Bo works for Initech in Rome\"}\n";
    assert_eq!(
        s.import(&s.admin_token, p, body).await.status(),
        StatusCode::OK
    );
    let ann = s.annotator("ann", p).await;
    let submit = |item: &str, spans: Value, relations: Value| json!({"item_id": item, "spans": spans, "relations": relations, "time_spent_ms": 1200});
    let spans = json!([
        {"start": 22, "end": 26, "label": "LOC"},
        {"start": 0, "end": 3, "label": "PER"},
        {"start": 14, "end": 18, "label": "ORG"}]);
    let path = format!("/projects/{p}/annotations");

    // Every refusal on item "a": the error names the problem and nothing is stored.
    let cases = [
        (
            json!([{"from": 1, "to": 3, "label": "works_for"}]),
            "relation 0 (\"works_for\") points at span 3, but the answer has 3 spans",
        ),
        (
            json!([{"from": 2, "to": 2, "label": "knows"}]),
            "relation 0 (\"knows\") links span 2 to itself",
        ),
        (
            json!([{"from": 2, "to": 0, "label": "works_for"}]),
            "relation 0 (\"works_for\") cannot start at",
        ),
        (
            json!([{"from": 1, "to": 0, "label": "works_for"}]),
            "relation 0 (\"works_for\") cannot end at",
        ),
        (
            json!([{"from": 1, "to": 2, "label": "married_to"}]),
            "relation type \"married_to\" is not in this project's relation types",
        ),
        (
            json!([{"from": 1, "to": 2, "label": "works_for"}, {"from": 1, "to": 2, "label": "works_for"}]),
            "is given twice",
        ),
    ];
    for (relations, says) in cases {
        let (status, body) = s
            .api(
                Method::POST,
                &ann,
                &path,
                Some(submit("a", spans.clone(), relations.clone())),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{relations}: {body}"
        );
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{error:?} lacks {says:?}");
        assert_eq!(body["kind"], "invalid_input", "{body}");
    }
    let items = s.export_jsonl(&s.admin_token, p).await;
    assert_eq!(
        items[0]["annotations"],
        json!([]),
        "no refused answer was stored"
    );

    // A good answer: spans sent out of order, relations by index into them as sent; stored
    // canonically (spans sorted, relations re-indexed and sorted).
    let relations = json!([
        {"from": 2, "to": 0, "label": "located_in"},
        {"from": 1, "to": 2, "label": "works_for"}]);
    let (status, body) = s
        .api(
            Method::POST,
            &ann,
            &path,
            Some(submit("a", spans, relations)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "created");
    let items = s.export_jsonl(&s.admin_token, p).await;
    let stored = &items[0]["annotations"][0];
    assert_eq!(stored["annotator"], "ann");
    assert_eq!(
        stored["spans"],
        json!([
            {"start": 0, "end": 3, "label": "PER"},
            {"start": 14, "end": 18, "label": "ORG"},
            {"start": 22, "end": 26, "label": "LOC"}])
    );
    assert_eq!(
        stored["relations"],
        json!([
            {"from": 0, "to": 1, "label": "works_for"},
            {"from": 1, "to": 2, "label": "located_in"}])
    );
}

#[tokio::test]
async fn exports_carry_relations_and_doccano_imports_over_the_api() {
    let s = TestServer::start().await;
    let p = relations_project(&s, "Export").await;
    let gold = json!({"id": "g", "text": "Ann works for Acme in Oslo", "gold": {
        "spans": [{"start": 0, "end": 3, "label": "PER"}, {"start": 14, "end": 18, "label": "ORG"},
                  {"start": 22, "end": 26, "label": "LOC"}],
        "relations": [{"from": 0, "to": 1, "label": "works_for"}, {"from": 1, "to": 2, "label": "located_in"}]}});
    let (status, report) = s
        .import_with(&s.admin_token, p, "format=jsonl", &format!("{gold}\n"))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");

    let items = s.export_jsonl(&s.admin_token, p).await;
    assert_eq!(items[0]["gold"], gold["gold"]);

    let text = |format: &'static str| {
        let s = &s;
        async move {
            let response = s.export(&s.admin_token, p, Some(format)).await;
            assert_eq!(response.status(), StatusCode::OK, "{format}");
            response.text().await.expect("export body")
        }
    };
    let prodigy: Value = serde_json::from_str(text("prodigy").await.trim()).unwrap();
    assert_eq!(prodigy["relations"][0]["label"], "works_for");
    assert_eq!(prodigy["relations"][0]["head_span"]["start"], 0);
    assert_eq!(prodigy["relations"][0]["child_span"]["start"], 14);
    let studio: Value = serde_json::from_str(&text("label-studio").await).unwrap();
    assert_eq!(
        studio[0]["annotations"][0]["result"][3],
        json!({"from_id": "s0", "to_id": "s1", "type": "relation", "direction": "right", "labels": ["works_for"]})
    );
    let doccano = text("doccano").await;
    let line: Value = serde_json::from_str(doccano.trim()).unwrap();
    assert_eq!(
        line["relations"],
        json!([
            {"id": 1, "from_id": 1, "to_id": 2, "type": "works_for"},
            {"id": 2, "from_id": 2, "to_id": 3, "type": "located_in"}])
    );

    // The doccano export imports into a new project over the API; a bad one is refused with
    // its line and stores nothing.
    let copy = relations_project(&s, "Copy").await;
    let (status, report) = s
        .import_with(&s.admin_token, copy, "format=doccano", &doccano)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        s.export_jsonl(&s.admin_token, copy).await[0]["gold"],
        gold["gold"]
    );
    let broken = doccano.replace("\"to_id\":3", "\"to_id\":9");
    let other = relations_project(&s, "Broken").await;
    let (status, body) = s
        .import_with(&s.admin_token, other, "format=doccano", &broken)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("line 1: relation 1 (id 2): to_id 9 is not the id of an entity"),
        "{body}"
    );
    assert!(s.export_jsonl(&s.admin_token, other).await.is_empty());
}
