//! The connection to dockerd: bollard for ping, version negotiation, list and inspect; a plain
//! HTTP/1.1 request over the same Unix socket for `/events`, because bollard's typed
//! `EventMessage` drops fields Docker sends (`status`, `id`, `from`) and we forward Docker's
//! bytes unchanged.
use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use bollard::Docker;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

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
    Status { status: StatusCode, uri: String, message: String },
    #[error("HTTP error on the Docker socket: {0} (dockerd stopping or restarting?)")]
    Http(#[from] hyper::Error),
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
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Docker events connection closed");
            }
        });
        let req = Request::get(&uri)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| DockerError::Status {
                status: StatusCode::BAD_REQUEST,
                uri: uri.clone(),
                message: e.to_string(),
            })?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        if !status.is_success() {
            let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(DockerError::Status { status, uri, message: String::from_utf8_lossy(&body).trim().to_owned() });
        }
        let content_type =
            resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        Ok(EventStream { body: resp.into_body(), content_type, _conn: AbortOnDrop(conn) })
    }
}

/// The body of a `/events` response.
pub struct EventStream {
    body: Incoming,
    content_type: String,
    _conn: AbortOnDrop,
}

impl EventStream {
    /// The next chunk of the body; `None` at the end of the stream.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, hyper::Error>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    Err(_trailers) => continue,
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }

    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
