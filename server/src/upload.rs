//! Uploads are streamed into a temporary file in the data directory (bounded by the configured
//! limit) and imported from there, so a large import never sits in memory.

use std::io::Write;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use concord_app::ssr::errors::internal_error;

use crate::error::ApiError;

/// The spool file of an upload could not be written or read back.
#[derive(Debug, thiserror::Error)]
#[error("the upload could not be spooled in {dir}")]
struct SpoolError {
    dir: std::path::PathBuf,
    #[source]
    source: std::io::Error,
}

/// Writes a byte stream to a new temp file under `dir`; fails with 413 past `limit` bytes.
pub async fn spool<E: std::fmt::Display>(
    mut stream: impl Stream<Item = Result<Bytes, E>> + Unpin,
    dir: &std::path::Path,
    limit: u64,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let internal = |source: std::io::Error| {
        ApiError::internal(&SpoolError {
            dir: dir.to_path_buf(),
            source,
        })
    };
    let mut file = tempfile::Builder::new()
        .prefix(concord_engine::UPLOAD_TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(internal)?;
    let mut written: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(ApiError::too_large(format!(
                "upload is larger than the limit of {} MB",
                limit / (1024 * 1024)
            )));
        }
        // Small synchronous writes to a local file; chunks are at most a few hundred KB.
        file.write_all(&chunk).map_err(internal)?;
    }
    file.flush().map_err(internal)?;
    Ok(file)
}

/// The most bytes a multipart text field (a form option, not the file) may carry: options are
/// short, and a field is read into memory whole.
pub const MAX_FORM_FIELD_BYTES: usize = 4 * 1024;

/// Reads a multipart text field into a string, refusing (413) one longer than `limit` bytes
/// as soon as it passes the limit, before reading the rest.
pub async fn bounded_text<E: std::fmt::Display>(
    mut stream: impl Stream<Item = Result<Bytes, E>> + Unpin,
    name: &str,
    limit: usize,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::too_large(format!(
                "the form field {name:?} is longer than {limit} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::invalid(format!("the form field {name:?} is not UTF-8 text")))
}

/// A reader of a spooled upload, from its start, for the import.
pub fn reopen(
    file: &tempfile::NamedTempFile,
) -> Result<std::io::BufReader<std::fs::File>, ApiError> {
    file.reopen()
        .map(std::io::BufReader::new)
        .map_err(|source| {
            ApiError::internal(&SpoolError {
                dir: file
                    .path()
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default(),
                source,
            })
        })
}

/// Export bytes flow from the blocking export into the response body through this writer.
pub struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> ChannelWriter {
        ChannelWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Refuses, before a download starts, an export the caller may not make or a format the
/// project's task kind lacks (once the body streams, an error can only break the download).
pub async fn check_export_format(
    engine: &concord_engine::Engine,
    who: &concord_engine::Principal,
    project: concord_domain::ProjectId,
    format: concord_engine::ExportFormat,
) -> Result<(), ApiError> {
    let (engine, who) = (engine.clone(), who.clone());
    concord_app::ssr::errors::blocking(move || engine.check_export(&who, project, format)).await?;
    Ok(())
}

/// Streams a project export as a response body; the export runs on the blocking pool.
pub fn export_response(
    engine: concord_engine::Engine,
    who: concord_engine::Principal,
    project: concord_domain::ProjectId,
    format: concord_engine::ExportFormat,
) -> axum::response::Response {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(8);
    let error_sender = sender.clone();
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter::new(sender);
        // The response has started: the client learns of a failure only as a broken download,
        // carrying the same message (an internal error's reference) as any other error.
        let failure = match engine.export(&who, project, format, &mut writer) {
            Err(e) => {
                // Internal errors are logged (with their chain) by the conversion.
                if e.kind() != concord_domain::ErrorKind::Internal {
                    tracing::error!(kind = %e.kind(), error = %e, "export failed midway");
                }
                Some(concord_app::wire::AppError::from(e))
            }
            Ok(_) => writer.flush().err().map(|e| internal_error(&e)),
        };
        if let Some(e) = failure {
            let _ = error_sender.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let filename = format!("concord-project-{}.{}", project.0, format.extension());
    (
        [
            (
                http::header::CONTENT_TYPE,
                format.content_type().to_string(),
            ),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

use axum::response::IntoResponse;
