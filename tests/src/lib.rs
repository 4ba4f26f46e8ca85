//! Helpers for Concord's integration tests and benchmarks: a real `concord` router served on
//! 127.0.0.1 port 0 over a real redb file in a temp dir ([`TestServer`]), with one method per
//! step a client takes (create a project, import, ask for the next item, annotate as someone,
//! export, read the agreement), so that tests read as the workflow they check.

pub mod site_assets;

use concord::AppState;
use concord_engine::{Engine, Principal};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// The administrator every [`TestServer`] starts with.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password";
/// The password of every account [`TestServer::create_user`] makes.
pub const MEMBER_PASSWORD: &str = "annotator-pw";

/// A client that shows redirects instead of following them: tests check where they point.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// The server task and what it keeps alive.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Running {
    /// Serves `state` on 127.0.0.1 port 0; returns the base URL.
    async fn serve(state: AppState, dir: Option<tempfile::TempDir>) -> (String, Running) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            concord::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        let running = Running {
            stop: Some(stop),
            handle: Some(handle),
            _dir: dir,
        };
        (base, running)
    }

    /// Stops the server and waits until it has released the database.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

fn app_state(engine: &Engine) -> AppState {
    AppState::new(engine.clone(), false, 64 * 1024 * 1024)
}

/// A running server with an administrator ([`ADMIN`], [`ADMIN_PASSWORD`]) and their API
/// token; stops when dropped (or, waiting for the database to be released, by [`Self::stop`]).
pub struct TestServer {
    pub base: String,
    pub engine: Engine,
    pub admin: Principal,
    /// The admin's API token.
    pub admin_token: String,
    client: reqwest::Client,
    running: Running,
}

impl TestServer {
    /// A fresh data dir in a temp dir, removed when the app is dropped.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        TestServer::serve(&path, Some(dir), |_| {}).await
    }

    /// Like [`Self::start`], with the server's state adjusted before it serves (secure
    /// cookies, say).
    pub async fn start_with(configure: impl FnOnce(&mut AppState)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        TestServer::serve(&path, Some(dir), configure).await
    }

    /// Serves the data dir at `path` (created if needed; kept afterwards, so a second app can
    /// reopen it); makes the admin if missing.
    pub async fn start_in(path: &std::path::Path) -> TestServer {
        TestServer::serve(path, None, |_| {}).await
    }

    async fn serve(
        path: &std::path::Path,
        dir: Option<tempfile::TempDir>,
        configure: impl FnOnce(&mut AppState),
    ) -> TestServer {
        let engine = Engine::open(path).expect("open engine");
        let admin = match engine.principal_by_name(ADMIN) {
            Ok(p) => p,
            Err(_) => engine
                .bootstrap_admin(ADMIN, ADMIN_PASSWORD)
                .expect("bootstrap admin"),
        };
        let admin_token = engine
            .create_api_token_locally(admin.id, "tests")
            .expect("token");
        let mut state = app_state(&engine);
        configure(&mut state);
        let (base, running) = Running::serve(state, dir).await;
        TestServer {
            base,
            engine,
            admin,
            admin_token,
            client: client(),
            running,
        }
    }

    /// Stops the server and waits until it has released the database.
    pub async fn stop(self) {
        self.running.stop().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request to `path` (from the site root), not yet sent; no credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A JSON call to the REST API (`path` below `/api/v1`) with a bearer token: the status
    /// and the body (`Null` when empty or not JSON).
    pub async fn api(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .request(method, &format!("/api/v1{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        status_and_json(request.send().await.expect("request")).await
    }

    /// A GET as the browser sends it, with a session cookie.
    pub async fn browser_get(&self, cookie: &str, path: &str) -> Response {
        self.request(Method::GET, path)
            .header("cookie", cookie)
            .send()
            .await
            .expect("request")
    }

    /// A session cookie for `name`, as signing in sets it.
    pub fn session_cookie(&self, name: &str, password: &str) -> String {
        let (_, secret) = self.engine.login(name, password).expect("sign in");
        format!("concord_session={secret}")
    }

    /// A fresh API token for the account `name`.
    pub fn token_for(&self, name: &str) -> String {
        let who = self.engine.principal_by_name(name).expect("account");
        self.engine
            .create_api_token_locally(who.id, "tests")
            .expect("token")
    }

    /// The admin creates the account `name` (password [`MEMBER_PASSWORD`]) over the API.
    pub async fn create_user(&self, name: &str) {
        let (status, body) = self
            .api(
                Method::POST,
                &self.admin_token,
                "/users",
                Some(json!({"name": name, "password": MEMBER_PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating {name}: {body}");
    }

    /// The admin gives `name` the `role` ("annotator", "reviewer", "admin") in `project`.
    pub async fn add_member(&self, project: u64, name: &str, role: &str) {
        let (status, body) = self
            .api(
                Method::POST,
                &self.admin_token,
                &format!("/projects/{project}/members"),
                Some(json!({"user": name, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "adding {name} as {role}: {body}");
    }

    /// A new account `name` that annotates `project`; returns its API token.
    pub async fn annotator(&self, name: &str, project: u64) -> String {
        self.create_user(name).await;
        self.add_member(project, name, "annotator").await;
        self.token_for(name)
    }

    /// Creates a project from its JSON description (`name`, `task`, `labels`, …).
    pub async fn create_project(&self, token: &str, spec: Value) -> (StatusCode, Value) {
        self.api(Method::POST, token, "/projects", Some(spec)).await
    }

    /// The admin creates a spam/ham project named `name` (with guidelines and a hotkey);
    /// returns its id.
    pub async fn create_mail_project(&self, name: &str) -> u64 {
        let (status, body) = self
            .create_project(
                &self.admin_token,
                json!({
                    "name": name,
                    "task": "classification",
                    "labels": [{"name": "spam", "description": "unwanted", "hotkey": "s"}, {"name": "ham"}],
                    "guidelines": "Mark *unsolicited* mail as spam."
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["labels"][0]["hotkey"], "s");
        body["id"].as_u64().expect("project id")
    }

    /// Imports `body` (JSONL unless the body says otherwise) into `project`.
    pub async fn import(&self, token: &str, project: u64, body: &str) -> Response {
        self.request(Method::POST, &format!("/api/v1/projects/{project}/items"))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// Imports `body` into `project` with the import's query parameters (`format=conll`,
    /// `labels_as=model&labels_name=…`): the status and the report (or error).
    pub async fn import_with(
        &self,
        token: &str,
        project: u64,
        query: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .request(
                Method::POST,
                &format!("/api/v1/projects/{project}/items?{query}"),
            )
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        status_and_json(response).await
    }

    /// The admin creates a span project named `name` with entity types `labels`; returns its
    /// id.
    pub async fn create_span_project(&self, name: &str, labels: &[&str]) -> u64 {
        let labels: Vec<Value> = labels.iter().map(|l| json!({ "name": l })).collect();
        let (status, body) = self
            .create_project(
                &self.admin_token,
                json!({ "name": name, "task": "spans", "labels": labels }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().expect("project id")
    }

    /// The admin imports `count` items whose texts are `"{prefix} 1"`, `"{prefix} 2"`, …
    /// into `project`, and checks that the import succeeded.
    pub async fn import_numbered_texts(&self, project: u64, prefix: &str, count: usize) {
        let body: String = (1..=count)
            .map(|i| format!("{{\"text\":\"{prefix} {i}\"}}\n"))
            .collect();
        assert_eq!(
            self.import(&self.admin_token, project, &body)
                .await
                .status(),
            StatusCode::OK
        );
    }

    /// The next item the queue hands `token`'s account (`204` and `Null` when none is left).
    pub async fn next_item(&self, token: &str, project: u64) -> (StatusCode, Value) {
        self.api(
            Method::GET,
            token,
            &format!("/projects/{project}/next"),
            None,
        )
        .await
    }

    /// `token`'s account answers `item` with `labels`, having spent `time_spent_ms` on it.
    pub async fn annotate(
        &self,
        token: &str,
        project: u64,
        item: &str,
        labels: &[&str],
        time_spent_ms: u64,
    ) -> (StatusCode, Value) {
        self.api(
            Method::POST,
            token,
            &format!("/projects/{project}/annotations"),
            Some(json!({"item_id": item, "labels": labels, "time_spent_ms": time_spent_ms})),
        )
        .await
    }

    /// The admin creates a span project `name` whose entity types are `types`, with
    /// `overlap` answers per item (not blind, no gold questions) and flat spans unless
    /// `overlapping_spans`; returns its id.
    pub async fn create_span_project_with(
        &self,
        name: &str,
        types: &[&str],
        overlap: u32,
        overlapping_spans: bool,
    ) -> u64 {
        let labels: Vec<Value> = types.iter().map(|t| json!({ "name": t })).collect();
        let (status, body) = self
            .create_project(
                &self.admin_token,
                json!({
                    "name": name,
                    "task": "spans",
                    "labels": labels,
                    "overlap": overlap,
                    "blind": false,
                    "overlapping_spans": overlapping_spans,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_u64().expect("project id");
        let (status, body) = self
            .api(
                Method::PATCH,
                &self.admin_token,
                &format!("/projects/{id}/settings"),
                Some(json!({ "gold_every": 0 })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    /// `token`'s account answers `item` of a span project with `spans`, each
    /// `(start, end, label)` in code points.
    pub async fn annotate_spans(
        &self,
        token: &str,
        project: u64,
        item: &str,
        spans: &[(u32, u32, &str)],
    ) -> (StatusCode, Value) {
        let spans: Vec<Value> = spans
            .iter()
            .map(|(start, end, label)| json!({ "start": start, "end": end, "label": label }))
            .collect();
        self.api(
            Method::POST,
            token,
            &format!("/projects/{project}/annotations"),
            Some(json!({ "item_id": item, "spans": spans, "time_spent_ms": 900 })),
        )
        .await
    }

    /// The export of `project` (`format`: "jsonl", "csv", or the default when `None`).
    pub async fn export(&self, token: &str, project: u64, format: Option<&str>) -> Response {
        let query = format.map(|f| format!("?format={f}")).unwrap_or_default();
        self.request(
            Method::GET,
            &format!("/api/v1/projects/{project}/export{query}"),
        )
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
    }

    /// The JSONL export of `project`, one value per item.
    pub async fn export_jsonl(&self, token: &str, project: u64) -> Vec<Value> {
        let text = self
            .export(token, project, Some("jsonl"))
            .await
            .text()
            .await
            .expect("export body");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("an export line is JSON"))
            .collect()
    }

    /// The agreement figures of `project`.
    pub async fn agreement(&self, token: &str, project: u64) -> (StatusCode, Value) {
        self.api(
            Method::GET,
            token,
            &format!("/projects/{project}/agreement"),
            None,
        )
        .await
    }
}

/// A server over a fresh data dir with no account yet, its one-time setup link armed as
/// `concord serve` arms it on first start.
pub struct AwaitingSetup {
    pub base: String,
    pub engine: Engine,
    /// The secret of the setup link (`/setup?token=…`).
    pub setup_token: String,
    client: reqwest::Client,
    running: Running,
}

impl AwaitingSetup {
    pub async fn start() -> AwaitingSetup {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path()).expect("open engine");
        let state = app_state(&engine);
        let setup_token = state
            .arm_setup()
            .expect("arm setup")
            .expect("a fresh data dir needs setup");
        let (base, running) = Running::serve(state, Some(dir)).await;
        AwaitingSetup {
            base,
            engine,
            setup_token,
            client: client(),
            running,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request to `path` (from the site root), not yet sent; no credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// The HTML of the page the setup link (with its secret) opens.
    pub async fn setup_page(&self) -> String {
        self.request(Method::GET, &format!("/setup?token={}", self.setup_token))
            .send()
            .await
            .expect("setup page")
            .text()
            .await
            .expect("setup page body")
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// A response's status and JSON body (`Null` when empty or not JSON).
pub async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("response body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
