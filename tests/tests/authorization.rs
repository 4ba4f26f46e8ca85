//! The authorization matrix: every route the server serves (the REST API, the probes, the
//! browser upload/download routes, the pages) and every server function, called by six kinds
//! of caller, each answer checked against the one documented status.
//!
//! The list of what must be covered is read from the sources the router itself is built from
//! (`server/src/lib.rs` and `server/src/rest.rs` `.route(...)` registrations, the `<Route>`s of
//! `app/src/lib.rs`, the `#[server]` functions of `app/src/api.rs`) and from the OpenAPI
//! document: a route or server function added without a row here fails
//! [`every_route_and_server_function_has_a_row`], and a row whose route is gone fails it too.
//!
//! Each caller gets a fresh server, so the rows that end sessions, disable accounts or revoke
//! tokens act only on their own caller's copy and the order of rows matters only within one
//! caller (rows that end the caller's own session come last).

use std::collections::BTreeSet;

use concord_app::api::*;
use concord_tests::{TestServer, MEMBER_PASSWORD};
use leptos::server_fn::ServerFn;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};

const LIB_RS: &str = include_str!("../../server/src/lib.rs");
const REST_RS: &str = include_str!("../../server/src/rest.rs");
const APP_LIB_RS: &str = include_str!("../../app/src/lib.rs");
const API_RS: &str = include_str!("../../app/src/api.rs");

/// Who calls, in the order of a row's expected statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// No credentials at all.
    Anonymous,
    /// Annotator of the project under test.
    Annotator,
    /// Reviewer of the project under test.
    Reviewer,
    /// Administrator of the project under test (not a system administrator).
    ProjectAdmin,
    /// Annotator of another project only.
    Outsider,
    /// The system administrator (member of no project).
    SystemAdmin,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Annotator,
    Caller::Reviewer,
    Caller::ProjectAdmin,
    Caller::Outsider,
    Caller::SystemAdmin,
];

impl Caller {
    /// The account name, `None` for the anonymous caller.
    fn account(self) -> Option<&'static str> {
        match self {
            Caller::Anonymous => None,
            Caller::Annotator => Some("ann"),
            Caller::Reviewer => Some("rev"),
            Caller::ProjectAdmin => Some("padm"),
            Caller::Outsider => Some("out"),
            Caller::SystemAdmin => Some(concord_tests::ADMIN),
        }
    }
}

/// A server set up for one caller: the project under test (`project`, items "1".."3"),
/// another project, the accounts of every [`Caller`], and `victim`, an annotator of the
/// project whom the account routes act on (never the caller, so the caller's own credentials
/// survive the rows that act on an account), with two API tokens to revoke.
struct Fixture {
    server: TestServer,
    caller: Caller,
    project: u64,
    token: Option<String>,
    cookie: Option<String>,
    /// Ids of the victim's tokens: one for the REST route, one for the server function.
    victim_tokens: [String; 2],
}

impl Fixture {
    async fn start(caller: Caller) -> Fixture {
        let server = TestServer::start().await;
        let project = server.create_mail_project("Mail").await;
        let other = server.create_mail_project("Other").await;
        let r = server
            .import(
                &server.admin_token,
                project,
                "{\"id\":\"1\",\"text\":\"one\"}\n{\"id\":\"2\",\"text\":\"two\"}\n{\"id\":\"3\",\"text\":\"three\"}\n",
            )
            .await;
        assert!(r.status().is_success(), "import: {}", r.status());
        for (name, project, role) in [
            ("ann", project, "annotator"),
            ("rev", project, "reviewer"),
            ("padm", project, "admin"),
            ("out", other, "annotator"),
            ("victim", project, "annotator"),
        ] {
            server.create_user(name).await;
            server.add_member(project, name, role).await;
        }
        // Two answers to item 3 (overlap 2), so the project has a pair of raters to compare.
        let (status, body) = server
            .api(
                Method::PATCH,
                &server.admin_token,
                &format!("/projects/{project}/settings"),
                Some(json!({"overlap": 2})),
            )
            .await;
        assert_eq!(status.as_u16(), 200, "{body}");
        let victim = server.token_for("victim");
        for (token, label) in [(server.token_for("rev"), "spam"), (victim.clone(), "ham")] {
            let (status, body) = server.annotate(&token, project, "3", &[label], 10).await;
            assert_eq!(status.as_u16(), 200, "{body}");
        }
        let victim_tokens = [
            concord_engine::api_token_id(&victim),
            concord_engine::api_token_id(&server.token_for("victim")),
        ];
        let (token, cookie) = match caller.account() {
            None => (None, None),
            Some(name) => {
                let password = if caller == Caller::SystemAdmin {
                    concord_tests::ADMIN_PASSWORD
                } else {
                    MEMBER_PASSWORD
                };
                (
                    Some(server.token_for(name)),
                    Some(server.session_cookie(name, password)),
                )
            }
        };
        Fixture {
            server,
            caller,
            project,
            token,
            cookie,
            victim_tokens,
        }
    }

    /// Fills a route template with this fixture's values.
    fn path(&self, template: &str) -> String {
        template
            .replace("{id}", &self.project.to_string())
            .replace("{item}", "1")
            .replace("{version}", "1")
            .replace("{job}", "999999")
            .replace("{name}", "victim")
            .replace("{table}", "coefficients.csv")
            .replace("{token}", &self.victim_tokens[0])
    }

    /// Fills a server function's form value: `{id}` the project, `{token}` the victim's
    /// second token, `{self}` and `{password}` the caller's own credentials.
    fn form_value(&self, template: &str) -> String {
        let (name, password) = match self.caller {
            Caller::Anonymous => ("nobody", "no-password"),
            Caller::SystemAdmin => (concord_tests::ADMIN, concord_tests::ADMIN_PASSWORD),
            other => (other.account().unwrap_or_default(), MEMBER_PASSWORD),
        };
        template
            .replace("{id}", &self.project.to_string())
            .replace("{token}", &self.victim_tokens[1])
            .replace("{self}", name)
            .replace("{password}", password)
    }

    /// A REST call: the caller's bearer token.
    fn rest(&self, method: &Method, path: &str) -> RequestBuilder {
        let request = self.server.request(method.clone(), path);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A browser call: the caller's session cookie (no Origin: a same-origin browser request
    /// or a non-browser client, which the cross-origin guard lets through alike).
    fn browser(&self, method: &Method, path: &str) -> RequestBuilder {
        let request = self.server.request(method.clone(), path);
        match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        }
    }
}

/// How a row's request is made.
enum Call {
    /// `METHOD path` (a template, see [`Fixture::path`]) with a bearer token; an optional JSON
    /// body (or, as a string, a raw one).
    Rest(Method, &'static str, Option<Value>),
    /// `METHOD path` with the session cookie.
    Browser(Method, &'static str),
    /// The browser's multipart import form.
    BrowserImport(&'static str),
    /// A page, with the session cookie.
    Page(&'static str),
    /// A server function (by its Rust name) at its path, as a form or a JSON body.
    ServerFnForm(&'static str, &'static str, Vec<(&'static str, String)>),
    ServerFnJson(&'static str, &'static str, Value),
}

struct Row {
    call: Call,
    /// The status for each of [`CALLERS`], in order.
    expect: [u16; 6],
}

impl Row {
    /// What [`every_route_and_server_function_has_a_row`] matches against the sources.
    fn key(&self) -> String {
        match &self.call {
            Call::Rest(m, p, _) | Call::Browser(m, p) => {
                let path = p.split('?').next().unwrap_or(p);
                format!("{m} {}", path.replace("{token}", "{id}"))
            }
            Call::BrowserImport(p) => format!("POST {p}"),
            Call::Page(p) => format!("PAGE {p}"),
            Call::ServerFnForm(name, _, _) | Call::ServerFnJson(name, _, _) => format!("FN {name}"),
        }
    }

    /// The answer's status and the start of its body.
    async fn send(&self, f: &Fixture) -> (u16, String) {
        let request = match &self.call {
            Call::Rest(method, path, body) => {
                let request = f.rest(method, &f.path(path));
                match body {
                    Some(Value::String(raw)) => request.body(raw.clone()),
                    Some(body) => request.json(body),
                    None => request,
                }
            }
            Call::Browser(method, path) => f.browser(method, &f.path(path)),
            Call::BrowserImport(path) => {
                let form = reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::text("{\"text\":\"from the form\"}\n")
                        .file_name("items.jsonl"),
                );
                f.browser(&Method::POST, &f.path(path)).multipart(form)
            }
            Call::Page(path) => f
                .browser(&Method::GET, &f.path(path))
                .header("accept", "text/html"),
            Call::ServerFnForm(_, path, form) => {
                let form: Vec<(&str, String)> =
                    form.iter().map(|(k, v)| (*k, f.form_value(v))).collect();
                f.browser(&Method::POST, path)
                    .header("accept", "application/json")
                    .form(&form)
            }
            Call::ServerFnJson(_, path, body) => {
                let mut body = body.clone();
                if let Some(project) = body.get_mut("project") {
                    *project = json!(f.project);
                }
                f.browser(&Method::POST, path)
                    .header("accept", "application/json")
                    .json(&body)
            }
        };
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        (status, body.chars().take(200).collect())
    }
}

fn rest(method: Method, path: &'static str, body: Option<Value>, expect: [u16; 6]) -> Row {
    Row {
        call: Call::Rest(method, path, body),
        expect,
    }
}

fn page(path: &'static str, expect: [u16; 6]) -> Row {
    Row {
        call: Call::Page(path),
        expect,
    }
}

fn form<F: ServerFn>(name: &'static str, fields: &[(&'static str, &str)], expect: [u16; 6]) -> Row {
    Row {
        call: Call::ServerFnForm(
            name,
            F::PATH,
            fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ),
        expect,
    }
}

fn json_fn<F: ServerFn>(name: &'static str, body: Value, expect: [u16; 6]) -> Row {
    Row {
        call: Call::ServerFnJson(name, F::PATH, body),
        expect,
    }
}

// Columns: anonymous, annotator, reviewer, project admin, outsider, system admin.
const PUBLIC: [u16; 6] = [200; 6];
/// Any signed-in account.
const SIGNED_IN: [u16; 6] = [401, 200, 200, 200, 200, 200];
/// Members of the project (any role) and system administrators.
const MEMBERS: [u16; 6] = [401, 200, 200, 200, 403, 200];
/// Reviewers and administrators of the project, and system administrators.
const REVIEWERS: [u16; 6] = [401, 403, 200, 200, 403, 200];
/// Administrators of the project, and system administrators.
const PROJECT_ADMINS: [u16; 6] = [401, 403, 403, 200, 403, 200];
/// System administrators only.
const SYSTEM_ADMINS: [u16; 6] = [401, 403, 403, 403, 403, 200];

/// Every row, in the order each caller sends them.
fn rows() -> Vec<Row> {
    use Method as M;
    let item =
        |labels: &[&str]| Some(json!({"item_id": "1", "labels": labels, "time_spent_ms": 10}));
    vec![
        // ---- probes and the REST API ----
        rest(M::GET, "/healthz", None, PUBLIC),
        rest(M::GET, "/readyz", None, PUBLIC),
        rest(M::GET, "/api/v1/openapi.json", None, PUBLIC),
        rest(M::GET, "/api/v1/me", None, SIGNED_IN),
        rest(M::GET, "/api/v1/projects", None, SIGNED_IN),
        rest(
            M::POST,
            "/api/v1/projects",
            Some(json!({"name": "New", "task": "classification", "labels": [{"name": "a"}]})),
            [401, 403, 403, 403, 403, 201],
        ),
        rest(M::GET, "/api/v1/projects/{id}", None, MEMBERS),
        rest(
            M::POST,
            "/api/v1/projects/{id}/items",
            Some(Value::String("{\"text\":\"imported\"}\n".into())),
            PROJECT_ADMINS,
        ),
        rest(M::GET, "/api/v1/projects/{id}/next", None, MEMBERS),
        rest(
            M::POST,
            "/api/v1/projects/{id}/annotations",
            item(&["spam"]),
            MEMBERS,
        ),
        rest(
            M::POST,
            "/api/v1/projects/{id}/skip",
            Some(json!({"item_id": "2"})),
            MEMBERS,
        ),
        rest(M::GET, "/api/v1/projects/{id}/members", None, REVIEWERS),
        rest(
            M::POST,
            "/api/v1/projects/{id}/members",
            Some(json!({"user": "victim", "role": "annotator"})),
            PROJECT_ADMINS,
        ),
        rest(M::GET, "/api/v1/projects/{id}/export", None, REVIEWERS),
        rest(M::GET, "/api/v1/projects/{id}/agreement", None, REVIEWERS),
        rest(
            M::GET,
            "/api/v1/projects/{id}/agreement/confusion?a=rev&b=victim",
            None,
            REVIEWERS,
        ),
        rest(
            M::PATCH,
            "/api/v1/projects/{id}/settings",
            Some(json!({"overlap": 2})),
            PROJECT_ADMINS,
        ),
        rest(M::GET, "/api/v1/projects/{id}/review/next", None, REVIEWERS),
        rest(
            M::GET,
            "/api/v1/projects/{id}/review/summary",
            None,
            REVIEWERS,
        ),
        // No version is active: past the role check, bulk acceptance is refused (409), and
        // no batch of that time exists to undo (404).
        rest(
            M::GET,
            "/api/v1/projects/{id}/bulk-accept?version=1&min_confidence=50",
            None,
            [401, 403, 409, 409, 403, 409],
        ),
        rest(
            M::POST,
            "/api/v1/projects/{id}/bulk-accept",
            Some(json!({"version": 1, "min_confidence": 50})),
            [401, 403, 409, 409, 403, 409],
        ),
        rest(
            M::GET,
            "/api/v1/projects/{id}/bulk-accept/batches",
            None,
            REVIEWERS,
        ),
        rest(
            M::POST,
            "/api/v1/projects/{id}/bulk-accept/undo",
            Some(json!({"reviewer": 1, "at_ms": 1})),
            [401, 403, 404, 404, 403, 404],
        ),
        rest(
            M::PUT,
            "/api/v1/projects/{id}/items/{item}/gold",
            Some(json!({"labels": ["spam"]})),
            REVIEWERS,
        ),
        rest(
            M::PUT,
            "/api/v1/projects/{id}/items/{item}/gold_question",
            Some(json!({"gold_question": false})),
            REVIEWERS,
        ),
        rest(M::GET, "/api/v1/models", None, SIGNED_IN),
        rest(M::POST, "/api/v1/backup", None, SYSTEM_ADMINS),
        rest(M::GET, "/api/v1/projects/{id}/models", None, REVIEWERS),
        rest(
            M::GET,
            "/api/v1/projects/{id}/learning-curve?target=0.9",
            None,
            REVIEWERS,
        ),
        // These servers have no models: past the role check, the cached embeddings' encoder is
        // unavailable.
        rest(
            M::GET,
            "/api/v1/projects/{id}/label-errors?limit=5",
            None,
            [401, 403, 503, 503, 403, 503],
        ),
        rest(
            M::GET,
            "/api/v1/projects/{id}/annotator-quality",
            None,
            [401, 403, 503, 503, 403, 503],
        ),
        // No version 1 exists: the role is checked first, then the version is not found.
        rest(
            M::POST,
            "/api/v1/projects/{id}/models/{version}/activate",
            None,
            [401, 403, 403, 404, 403, 404],
        ),
        // These servers have no models: past the role check, model features are unavailable.
        rest(
            M::POST,
            "/api/v1/projects/{id}/train",
            None,
            [401, 403, 403, 503, 403, 503],
        ),
        rest(
            M::POST,
            "/api/v1/projects/{id}/predict",
            None,
            [401, 403, 403, 503, 403, 503],
        ),
        rest(M::GET, "/api/v1/projects/{id}/jobs", None, REVIEWERS),
        // No job can exist without models; a missing job is not found for everyone.
        rest(
            M::GET,
            "/api/v1/jobs/{job}",
            None,
            [401, 404, 404, 404, 404, 404],
        ),
        rest(
            M::POST,
            "/api/v1/jobs/{job}/cancel",
            None,
            [401, 404, 404, 404, 404, 404],
        ),
        rest(M::GET, "/api/v1/users", None, SYSTEM_ADMINS),
        rest(
            M::POST,
            "/api/v1/users",
            Some(json!({"name": "made-by-rest", "password": "a-long-password"})),
            [401, 403, 403, 403, 403, 201],
        ),
        rest(M::GET, "/api/v1/tokens", None, SIGNED_IN),
        rest(
            M::POST,
            "/api/v1/tokens",
            Some(json!({"name": "mine"})),
            [401, 201, 201, 201, 201, 201],
        ),
        // Someone else's token is not found (ids cannot be probed); an admin revokes any.
        rest(
            M::DELETE,
            "/api/v1/tokens/{token}",
            None,
            [401, 404, 404, 404, 404, 204],
        ),
        rest(
            M::POST,
            "/api/v1/users/{name}/disable",
            None,
            [401, 403, 403, 403, 403, 204],
        ),
        rest(
            M::POST,
            "/api/v1/users/{name}/enable",
            None,
            [401, 403, 403, 403, 403, 204],
        ),
        rest(
            M::PUT,
            "/api/v1/users/{name}/password",
            Some(json!({"new_password": "another-long-password"})),
            [401, 403, 403, 403, 403, 204],
        ),
        rest(
            M::POST,
            "/api/v1/users/{name}/sign-out-everywhere",
            Some(json!({})),
            SYSTEM_ADMINS,
        ),
        // ---- browser routes (session cookie; without one they send the visitor to sign in) ----
        Row {
            call: Call::BrowserImport("/projects/{id}/import"),
            expect: [303, 403, 403, 303, 403, 303],
        },
        Row {
            call: Call::Browser(M::GET, "/projects/{id}/export"),
            expect: [303, 403, 200, 200, 403, 200],
        },
        Row {
            call: Call::Browser(M::GET, "/projects/{id}/agreement/{table}"),
            expect: [303, 403, 200, 200, 403, 200],
        },
        // ---- pages ----
        page("/login", PUBLIC),
        page("/setup", PUBLIC),
        page("/", [302, 200, 200, 200, 200, 200]),
        page("/projects/{id}", [302, 200, 200, 200, 403, 200]),
        page("/projects/{id}/agreement", [302, 403, 200, 200, 403, 200]),
        page("/projects/{id}/review", [302, 403, 200, 200, 403, 200]),
        page(
            "/projects/{id}/label-errors",
            [302, 403, 200, 200, 403, 200],
        ),
        page("/projects/{id}/annotate", [302, 200, 200, 200, 403, 200]),
        // Everyone's own account page; the accounts list is only in a system administrator's.
        page("/users", [302, 200, 200, 200, 200, 200]),
        // ---- server functions ----
        form::<CurrentUser>("current_user", &[], PUBLIC),
        form::<NeedsSetup>("needs_setup", &[], PUBLIC),
        form::<ListProjects>("list_projects", &[], SIGNED_IN),
        form::<GetProject>("get_project", &[("id", "{id}")], MEMBERS),
        form::<CreateProject>(
            "create_project",
            &[
                ("name", "By form"),
                ("task", "classification"),
                ("labels", "a\nb"),
                ("guidelines", ""),
            ],
            SYSTEM_ADMINS,
        ),
        form::<ListMembers>("list_members", &[("project", "{id}")], REVIEWERS),
        form::<SetMember>(
            "set_member",
            &[
                ("project", "{id}"),
                ("user", "victim"),
                ("role", "annotator"),
            ],
            PROJECT_ADMINS,
        ),
        form::<ListAccounts>("list_accounts", &[], SYSTEM_ADMINS),
        form::<CreateAccount>(
            "create_account",
            &[("name", "made-by-form"), ("password", "a-long-password")],
            SYSTEM_ADMINS,
        ),
        form::<CreateToken>("create_token", &[("name", "by-form")], SIGNED_IN),
        form::<ListTokens>("list_tokens", &[], SIGNED_IN),
        form::<RevokeToken>(
            "revoke_token",
            &[("id", "{token}")],
            [401, 404, 404, 404, 404, 200],
        ),
        form::<SetAccountDisabled>(
            "set_account_disabled",
            &[("name", "victim"), ("disabled", "true")],
            SYSTEM_ADMINS,
        ),
        form::<ChangePassword>(
            "change_password",
            &[("user", "victim"), ("new_password", "yet-another-password")],
            SYSTEM_ADMINS,
        ),
        json_fn::<NextItem>("next_item", json!({"project": 0, "exclude": []}), MEMBERS),
        form::<GetItem>("get_item", &[("project", "{id}"), ("item", "3")], MEMBERS),
        json_fn::<SubmitAnnotation>(
            "submit_annotation",
            json!({"project": 0, "item": "3", "labels": ["ham"], "time_spent_ms": 5}),
            MEMBERS,
        ),
        // A span answer to a classification project is refused once the caller may annotate.
        json_fn::<SubmitSpans>(
            "submit_spans",
            json!({"project": 0, "item": "3", "spans": [], "time_spent_ms": 5}),
            [401, 422, 422, 422, 403, 422],
        ),
        form::<SkipItem>("skip_item", &[("project", "{id}"), ("item", "3")], MEMBERS),
        form::<ResetSkips>("reset_skips", &[("project", "{id}")], MEMBERS),
        form::<ProjectAgreement>("project_agreement", &[("id", "{id}")], REVIEWERS),
        form::<RaterConfusion>(
            "rater_confusion",
            &[("id", "{id}"), ("first", "rev"), ("second", "victim")],
            REVIEWERS,
        ),
        form::<InstalledModels>("installed_models", &[], SIGNED_IN),
        form::<UpdateSettings>(
            "update_settings",
            &[
                ("project", "{id}"),
                ("overlap", "2"),
                ("gold_every", "0"),
                ("queue_order", "import"),
                ("model", concord_engine::DEFAULT_MODEL),
            ],
            PROJECT_ADMINS,
        ),
        form::<GetSpanSettings>("get_span_settings", &[("project", "{id}")], MEMBERS),
        form::<UpdateSpanSettings>(
            "update_span_settings",
            &[
                ("project", "{id}"),
                ("accept_threshold", "70"),
                ("patterns[0][label]", "spam"),
                ("patterns[0][terms]", "cheap pills"),
            ],
            PROJECT_ADMINS,
        ),
        form::<ReviewNext>("review_next", &[("project", "{id}")], REVIEWERS),
        form::<ReviewItem>(
            "review_item",
            &[("project", "{id}"), ("item", "1")],
            REVIEWERS,
        ),
        json_fn::<ResolveItem>(
            "resolve_item",
            json!({"project": 0, "item": "2", "labels": ["ham"], "gold_question": false}),
            REVIEWERS,
        ),
        // Gold spans for a classification item are refused once the caller may review.
        json_fn::<ResolveSpans>(
            "resolve_spans",
            json!({"project": 0, "item": "2", "spans": [], "gold_question": false}),
            [401, 403, 422, 422, 403, 422],
        ),
        // Gold relations for a classification item are refused once the caller may review.
        json_fn::<ResolveRelations>(
            "resolve_relations",
            json!({"project": 0, "item": "2", "spans": [],
                   "relations": [{"from": 0, "to": 1, "label": "works_for"}],
                   "gold_question": false}),
            [401, 403, 422, 422, 403, 422],
        ),
        form::<ReviewSummary>("review_summary", &[("project", "{id}")], REVIEWERS),
        form::<BulkAcceptState>("bulk_accept_state", &[("project", "{id}")], REVIEWERS),
        // No version is active: bulk acceptance is refused (409) past the role check, and no
        // batch of that time exists to undo (404).
        form::<BulkAcceptPreview>(
            "bulk_accept_preview",
            &[
                ("project", "{id}"),
                ("version", "1"),
                ("min_confidence", "50"),
            ],
            [401, 403, 409, 409, 403, 409],
        ),
        form::<BulkAccept>(
            "bulk_accept",
            &[
                ("project", "{id}"),
                ("version", "1"),
                ("min_confidence", "50"),
            ],
            [401, 403, 409, 409, 403, 409],
        ),
        form::<UndoBulkAccept>(
            "undo_bulk_accept",
            &[("project", "{id}"), ("reviewer", "1"), ("at_ms", "1")],
            [401, 403, 404, 404, 403, 404],
        ),
        // These servers have no models: past the role check, the embeddings' encoder is
        // unavailable.
        form::<LabelErrors>(
            "label_errors",
            &[("project", "{id}"), ("limit", "5")],
            [401, 403, 503, 503, 403, 503],
        ),
        form::<FixLabel>(
            "fix_label",
            &[("project", "{id}"), ("item", "2"), ("label", "ham")],
            REVIEWERS,
        ),
        form::<ModelOverview>("model_overview", &[("project", "{id}")], REVIEWERS),
        form::<ProjectLearningCurve>(
            "project_learning_curve",
            &[("project", "{id}"), ("target", "0.9")],
            REVIEWERS,
        ),
        form::<StartModelJob>(
            "start_model_job",
            &[("project", "{id}"), ("kind", "predict")],
            [401, 403, 403, 503, 403, 503],
        ),
        form::<ActivateVersion>(
            "activate_version",
            &[("project", "{id}"), ("version", "1")],
            [401, 403, 403, 404, 403, 404],
        ),
        form::<CancelModelJob>(
            "cancel_model_job",
            &[("job", "999999")],
            [401, 404, 404, 404, 404, 404],
        ),
        // An administrator exists: the setup link is refused to everyone.
        form::<SetupAdmin>(
            "setup_admin",
            &[
                ("token", "not-the-setup-token"),
                ("name", "intruder"),
                ("password", "a-long-password"),
            ],
            [403; 6],
        ),
        // Last: these end the caller's own session.
        form::<SignOutEverywhere>("sign_out_everywhere", &[], SIGNED_IN),
        form::<Logout>("logout", &[], PUBLIC),
        // Signs in again (the caller's own name and password; anonymous has none).
        form::<Login>(
            "login",
            &[("name", "{self}"), ("password", "{password}")],
            SIGNED_IN,
        ),
    ]
}

/// The string literal starting at `text[at..]` (which begins with `"`), without its quotes.
fn literal_at(text: &str, at: usize) -> Option<&str> {
    let rest = text.get(at + 1..)?;
    rest.find('"').map(|end| &rest[..end])
}

/// The arguments of the call whose `(` is at `open`: up to the matching `)`.
fn call_arguments(text: &str, open: usize) -> &str {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    &text[open + 1..]
}

/// `METHOD path` for every `.route("path", get(..).post(..))` in `source`, under `prefix`.
fn registered_routes(source: &str, prefix: &str) -> BTreeSet<String> {
    const METHODS: [(&str, &str); 5] = [
        ("get(", "GET"),
        ("post(", "POST"),
        ("put(", "PUT"),
        ("patch(", "PATCH"),
        ("delete(", "DELETE"),
    ];
    let mut out = BTreeSet::new();
    for (at, _) in source.match_indices(".route(") {
        let open = at + ".route".len();
        let args = call_arguments(source, open);
        let quote = args.find('"').expect("a route starts with its path");
        let path = literal_at(args, quote).expect("a route's path is a literal");
        let handlers = &args[quote + path.len() + 2..];
        let mut methods = 0;
        for (call, method) in METHODS {
            for (i, _) in handlers.match_indices(call) {
                // A method router (`get(`, `axum::routing::patch(`), not a longer name.
                let before = handlers[..i].chars().next_back();
                if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                    out.insert(format!("{method} {prefix}{path}"));
                    methods += 1;
                }
            }
        }
        assert!(
            methods > 0,
            "no method found for the route {path}: {handlers}"
        );
    }
    out
}

/// `PAGE path` for every `<Route path=path!("...")` of the app, in the router's `{id}` form.
fn page_routes() -> BTreeSet<String> {
    APP_LIB_RS
        .match_indices("path!(\"")
        .filter_map(|(at, _)| literal_at(APP_LIB_RS, at + "path!(".len()))
        .map(|p| {
            let braced: Vec<String> = p
                .split('/')
                .map(|s| match s.strip_prefix(':') {
                    Some(param) => format!("{{{param}}}"),
                    None => s.to_string(),
                })
                .collect();
            format!("PAGE {}", braced.join("/"))
        })
        .collect()
}

/// `FN name` for every `#[server...]` function of `app/src/api.rs`.
fn server_functions() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in API_RS.match_indices("#[server") {
        let after = &API_RS[at..];
        let start = after
            .find("pub async fn ")
            .expect("a server function follows")
            + "pub async fn ".len();
        let name: String = after[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        out.insert(format!("FN {name}"));
    }
    out
}

/// Everything the server answers that needs a row.
fn served() -> BTreeSet<String> {
    let mut all = registered_routes(LIB_RS, "");
    all.extend(registered_routes(REST_RS, "/api/v1"));
    all.extend(page_routes());
    all.extend(server_functions());
    all
}

#[test]
fn every_route_and_server_function_has_a_row() {
    let served = served();
    // Sanity of the parsing itself: known entries of each source are found.
    for known in [
        "GET /healthz",
        "POST /projects/{id}/import",
        "GET /api/v1/projects",
        "POST /api/v1/projects",
        "PATCH /api/v1/projects/{id}/settings",
        "DELETE /api/v1/tokens/{id}",
        "PAGE /projects/{id}/annotate",
        "FN create_account",
        "FN next_item",
    ] {
        assert!(served.contains(known), "the source parsing missed {known}");
    }
    let mut keys = BTreeSet::new();
    for row in rows() {
        assert!(keys.insert(row.key()), "two rows for {}", row.key());
    }
    let missing: Vec<_> = served.difference(&keys).collect();
    let stale: Vec<_> = keys.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served without an authorization row: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for routes no longer served: {stale:?}"
    );
}

#[tokio::test]
async fn the_openapi_document_and_the_router_name_the_same_operations() {
    let s = TestServer::start().await;
    let doc: Value = s
        .request(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            documented.insert(format!("{} /api/v1{path}", method.to_uppercase()));
        }
    }
    let routed = registered_routes(REST_RS, "/api/v1");
    let undocumented: Vec<_> = routed
        .iter()
        // The document does not describe itself.
        .filter(|r| *r != "GET /api/v1/openapi.json")
        .filter(|r| !documented.contains(*r))
        .collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    s.stop().await;
}

/// Sends every row as `caller` on its own server; returns the mismatches.
async fn run_as(caller: Caller) -> Vec<String> {
    let column = CALLERS.iter().position(|c| *c == caller).expect("a caller");
    let f = Fixture::start(caller).await;
    let mut mismatches = Vec::new();
    for row in rows() {
        let (got, body) = row.send(&f).await;
        if got != row.expect[column] {
            mismatches.push(format!(
                "{caller:?} {}: expected {}, got {got}: {body}",
                row.key(),
                row.expect[column]
            ));
        }
    }
    f.server.stop().await;
    mismatches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_exactly_the_documented_answer() {
    let runs: Vec<_> = CALLERS.iter().map(|c| tokio::spawn(run_as(*c))).collect();
    let mut mismatches = Vec::new();
    for run in runs {
        mismatches.extend(run.await.expect("a caller's run"));
    }
    let cells = rows().len() * CALLERS.len();
    assert!(
        mismatches.is_empty(),
        "{} of {cells} answers differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Page renders and server function calls running at the same time each act for their own
/// caller: the project list of one account never shows another's project, and every answer
/// carries its own status (a server function's error status set on another response would
/// also carry whatever else that function sets there, such as a session cookie).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_keep_their_callers_apart() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let mut cookies = Vec::new();
    for (user, project) in [("alice", "Alpha-project"), ("bob", "Beta-project")] {
        let id = s.create_mail_project(project).await;
        s.create_user(user).await;
        s.add_member(id, user, "annotator").await;
        cookies.push((
            s.session_cookie(user, MEMBER_PASSWORD),
            project,
            s.token_for(user),
        ));
    }
    const ROUNDS: usize = 150;
    let mut calls = Vec::new();
    for round in 0..ROUNDS {
        for (me, (cookie, mine, token)) in cookies.iter().enumerate() {
            let (theirs, s, cookie, mine, token) = (
                cookies[1 - me].1,
                s.clone(),
                cookie.clone(),
                *mine,
                token.clone(),
            );
            calls.push(tokio::spawn(async move {
                let (what, status, body) = match round % 5 {
                    // A REST call that fails in the engine (its error passes the same
                    // `blocking` helper as the pages' server functions).
                    4 => {
                        let r = s
                            .request(Method::GET, "/api/v1/projects/999")
                            .bearer_auth(&token)
                            .send()
                            .await
                            .expect("request");
                        let status = r.status().as_u16();
                        ("GET /api/v1/projects/999", status, String::new())
                    }
                    // A server function that fails after its engine call (where its status
                    // is set), next to the page renders.
                    3 => {
                        let r = s
                            .request(Method::POST, ReviewSummary::PATH)
                            .header("cookie", &cookie)
                            .header("accept", "application/json")
                            .form(&[("project", "999")])
                            .send()
                            .await
                            .expect("request");
                        let status = r.status().as_u16();
                        ("review_summary", status, String::new())
                    }
                    n => {
                        let path = ["/", "/login", "/projects/999/agreement"][n];
                        let r = s.browser_get(&cookie, path).await;
                        let status = r.status().as_u16();
                        (path, status, r.text().await.expect("body"))
                    }
                };
                let expected = match what {
                    "/" | "/login" => 200,
                    _ => 403,
                };
                let mixed = what == "/" && (!body.contains(mine) || body.contains(theirs));
                (status != expected || mixed).then(|| {
                    format!(
                        "{what}: {status} (expected {expected}), another caller's page: {mixed}"
                    )
                })
            }));
        }
    }
    let mut wrong = Vec::new();
    for call in calls {
        if let Some(w) = call.await.expect("call") {
            wrong.push(w);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers were wrong:\n{}",
        wrong.len(),
        ROUNDS * 2,
        wrong.join("\n")
    );
}
