//! The connection to dockerd: bollard for ping, version negotiation, list and inspect; a plain
//! HTTP/1.1 request over the same Unix socket for `/events` (`super::stream`), because bollard's
//! typed `EventMessage` drops fields Docker sends (`status`, `id`, `from`), we forward Docker's
//! bytes unchanged, and the stream is read a tick at a time while events come close together.
use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use bollard::Docker;
use bytes::Bytes;
use tokio::net::UnixStream;

use super::stream::{ResponseBody, StreamError};

/// Seconds bollard waits for a reply to ping/version/list/inspect.
const API_TIMEOUT_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "the Docker socket {0} does not exist: is dockerd running? Start it (systemctl start docker) \
         or point --docker-host / DOCKER_HOST at its socket"
    )]
    SocketMissing(PathBuf),
    #[error("dockerd is not accepting connections on {0} (connection refused): it is stopped or restarting")]
    Refused(PathBuf),
    #[error(
        "permission denied on the Docker socket {0}: run docker-listener as root (it also needs root \
         for eBPF) or as a member of the group owning the socket"
    )]
    PermissionDenied(PathBuf),
    #[error(
        "cannot connect to the Docker socket {path}: {source}. Is dockerd running (`systemctl start \
         docker`)? Or point --docker-host at its socket"
    )]
    Connect { path: PathBuf, source: io::Error },
    #[error("Docker API request failed: {0}. `docker-listener doctor` checks the socket and the API version")]
    Api(#[from] bollard::errors::Error),
    #[error(
        "Docker answered {status} to GET {uri}: {message}. Is --docker-host a Docker Engine socket? \
         `docker-listener doctor` checks it"
    )]
    Status { status: u16, uri: String, message: String },
    #[error("reading Docker's event stream failed: {0} (dockerd stopping or restarting?)")]
    Stream(#[from] StreamError),
}

impl DockerError {
    /// Problems retrying cannot fix without the operator.
    pub fn is_permission(&self) -> bool {
        matches!(self, DockerError::PermissionDenied(_))
    }
}

/// A connected, version-negotiated Docker API client.
#[derive(Clone)]
pub struct DockerClient {
    socket: PathBuf,
    api: Docker,
    api_version: String,
    server_version: String,
}

impl std::fmt::Debug for DockerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerClient")
            .field("socket", &self.socket)
            .field("api_version", &self.api_version)
            .field("server_version", &self.server_version)
            .finish()
    }
}

impl DockerClient {
    /// Connects, pings and negotiates the API version.
    pub async fn connect(socket: &Path) -> Result<DockerClient, DockerError> {
        // A bare connect first: its errno tells "not running" from "not allowed" precisely.
        drop(raw_connect(socket).await?);
        let path = socket.to_str().ok_or_else(|| DockerError::Connect {
            path: socket.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 socket path"),
        })?;
        let api = Docker::connect_with_unix(path, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)?
            .negotiate_version()
            .await?;
        let version = api.version().await?;
        Ok(DockerClient {
            socket: socket.to_owned(),
            api_version: api.client_version().to_string(),
            server_version: version.version.unwrap_or_else(|| "unknown".into()),
            api,
        })
    }

    pub fn api(&self) -> &Docker {
        &self.api
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Opens the `/events` stream. `since` (nanoseconds since the epoch) asks Docker to replay
    /// the events it still holds from that time on, inclusive.
    pub async fn events(&self, since: Option<i64>) -> Result<EventStream, DockerError> {
        let mut uri = format!("/v{}/events", self.api_version);
        if let Some(ns) = since {
            uri.push_str(&format!("?since={}.{:09}", ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000)));
        }
        let stream = raw_connect(&self.socket).await?;
        let (head, mut body) = ResponseBody::get(stream, &uri).await?;
        if !(200..300).contains(&head.status) {
            let message = tokio::time::timeout(Duration::from_secs(5), body.collect(64 << 10))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .filter(|m| !m.is_empty())
                .unwrap_or(head.reason);
            return Err(DockerError::Status { status: head.status, uri, message });
        }
        Ok(EventStream { body, content_type: head.content_type })
    }
}

/// The body of a `/events` response.
pub struct EventStream {
    body: ResponseBody,
    content_type: String,
}

impl EventStream {
    /// Waits for data, then appends all that is available to `out`; `Ok(false)` at the end of
    /// the stream. Cancel-safe.
    pub async fn next_data(&mut self, out: &mut Vec<Bytes>) -> Result<bool, StreamError> {
        self.body.next_data(out).await
    }

    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

async fn raw_connect(socket: &Path) -> Result<UnixStream, DockerError> {
    UnixStream::connect(socket).await.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DockerError::SocketMissing(socket.to_owned()),
        io::ErrorKind::ConnectionRefused => DockerError::Refused(socket.to_owned()),
        io::ErrorKind::PermissionDenied => DockerError::PermissionDenied(socket.to_owned()),
        _ => DockerError::Connect { path: socket.to_owned(), source: e },
    })
}

/// Docker's answer "no such container" (or exec).
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}
