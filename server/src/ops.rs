//! Routes for operating the server: `/healthz` (the process answers), `/readyz` (the database
//! answers a read and the writer thread takes answers) and `POST /api/v1/backup` (an
//! administrator downloads a consistent snapshot of the database while the server runs).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use concord_app::ssr::errors::blocking;

use crate::rest::ApiPrincipal;
use crate::{ApiError, AppState};

/// Liveness: answers without touching the database, so a busy database never gets the process
/// restarted.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 `ready` when a real read transaction succeeds and the writer thread is
/// alive, else 503 with the reason (no paths: the engine's messages name none here).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let engine = state.engine().clone();
    match blocking(move || engine.readiness()).await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(kind = ?e.kind, "not ready: {}", e.message);
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready ({})", e.kind.as_str()),
            )
                .into_response()
        }
    }
}

/// Removes the snapshot file when the download ends, however it ends.
struct SnapshotFile(std::path::PathBuf);

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!("removing the backup snapshot {}: {e}", self.0.display());
        }
    }
}

/// `POST /api/v1/backup` (administrators): a snapshot of the whole database, taken inside one
/// read transaction while writes go on, as a redb file in the response body.
pub async fn backup(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
) -> Result<Response, ApiError> {
    let engine = state.engine().clone();
    let mut name = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut name);
    // Inside the data dir: the same file system as the database, and never served otherwise.
    let path = engine.data_dir().join(format!(
        "{}{}.redb",
        concord_engine::BACKUP_TEMP_PREFIX,
        hex::encode(name)
    ));
    let target = path.clone();
    blocking(move || engine.backup_to(&who, &target).map(|_| ())).await?;
    let snapshot = SnapshotFile(path);
    let file = tokio::fs::File::open(&snapshot.0)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let length = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(&e))?
        .len();
    // The state is `None` after a read error: the stream ends there (the client sees a body
    // shorter than its Content-Length).
    let chunks = futures_util::stream::unfold(Some((file, snapshot)), |state| async move {
        let (mut file, snapshot) = state?;
        let mut buffer = vec![0u8; 256 * 1024];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), Some((file, snapshot))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((
        [
            (
                http::header::CONTENT_TYPE,
                "application/octet-stream".to_string(),
            ),
            (http::header::CONTENT_LENGTH, length.to_string()),
            (
                http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"concord-backup.redb\"".to_string(),
            ),
            (http::header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
