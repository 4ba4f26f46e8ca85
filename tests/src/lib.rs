//! Helpers for Concord's integration tests and benchmarks: a real `concord` router served on
//! 127.0.0.1 port 0 over a real redb file in a temp dir.

use concord::AppState;
use concord_engine::{Engine, Principal};

/// A running server; stops when dropped.
pub struct TestServer {
    pub base: String,
    pub engine: Engine,
    pub admin: Principal,
    /// The admin's API token.
    pub admin_token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A fresh data dir with an admin account `admin` (password `admin-password`).
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let mut server = TestServer::start_in(&path).await;
        server._dir = Some(dir);
        server
    }

    /// Serves the data dir at `path` (created if needed); makes the admin if missing.
    pub async fn start_in(path: &std::path::Path) -> TestServer {
        let engine = Engine::open(path).expect("open engine");
        let admin = match engine.principal_by_name("admin") {
            Ok(p) => p,
            Err(_) => engine
                .bootstrap_admin("admin", "admin-password")
                .expect("bootstrap admin"),
        };
        let admin_token = engine
            .create_api_token_locally(admin.id, "tests")
            .expect("token");
        let state = AppState::new(engine.clone(), false, 64 * 1024 * 1024);
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
        TestServer {
            base,
            engine,
            admin,
            admin_token,
            stop: Some(stop),
            handle: Some(handle),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and waits until it has released the database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
