//! Monitoring: every counter in Prometheus text format.
//!
//! Always served on `<state_dir>/stats.sock` (a Unix socket only root can open), which
//! `docker-listener stats` reads; also on a loopback TCP port or another Unix socket when the
//! `metrics` config key is set. Both answer any HTTP GET with the same text, so
//! `curl --unix-socket /var/lib/docker-listener/stats.sock http://x/metrics` works too.
mod exposition;

use std::{
    io,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

pub use self::exposition::{CONTENT_TYPE, Exposition};
use crate::{sink::Spool, stats::Stats};

/// Where the metrics endpoint listens (the `metrics` config key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.starts_with('/') {
                Ok(Endpoint::Unix(PathBuf::from(p)))
            } else {
                Err("accepted: unix:/absolute/path".into())
            };
        }
        match s.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Ok(Endpoint::Tcp(a)),
            Ok(_) => Err("accepted: a loopback address (127.0.0.1:PORT or [::1]:PORT) or unix:/path; \
                          the metrics are not meant for the network, put a proxy in front if needed"
                .into()),
            Err(_) => Err("accepted: 127.0.0.1:PORT, [::1]:PORT or unix:/absolute/path".into()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The stats socket of a state directory.
pub fn stats_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("stats.sock")
}

/// Requests answered at once, at most: more connections are closed at once (a scraper that
/// opens hundreds cannot make the agent hold hundreds).
const CONCURRENT: usize = 8;

/// A connection's whole life (request head, rendering, answer), at most.
const CONNECTION_TIME: Duration = Duration::from_secs(10);

/// One connection, served by hyper: any `GET` (or `HEAD`) gets the metrics, rendered off the
/// pipeline's thread (the daemon runs on one: /proc reads and formatting); anything else 405.
async fn answer<S>(conn: S, exposition: Arc<Exposition>) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let exposition = exposition.clone();
        async move {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Response::builder()
                    .status(StatusCode::METHOD_NOT_ALLOWED)
                    .header(header::ALLOW, "GET, HEAD")
                    .body(Full::new(Bytes::from_static(b"GET the metrics\n")));
            }
            let body = match tokio::task::spawn_blocking(move || exposition.render()).await {
                Ok(body) => body,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: rendering stopped");
                    return Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body(Full::default());
                }
            };
            Response::builder().header(header::CONTENT_TYPE, CONTENT_TYPE).body(Full::new(Bytes::from(body)))
        }
    });
    http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(2))
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(conn), service)
        .await
}

/// Whether `p` is a Unix socket (not following a symbolic link).
fn is_socket(p: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Binds the endpoint; a Unix endpoint's stale socket file is replaced (nothing else at its
/// path is: the agent runs as root) and the new one made owner-only.
pub async fn bind(endpoint: &Endpoint) -> io::Result<Listener> {
    Ok(match endpoint {
        Endpoint::Tcp(a) => Listener::Tcp(TcpListener::bind(a).await?),
        Endpoint::Unix(p) => {
            if is_socket(p) {
                std::fs::remove_file(p)?;
            } else if std::fs::symlink_metadata(p).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is no socket: it is left alone; name a path where nothing is for \"metrics\"",
                        p.display()
                    ),
                ));
            }
            let l = UnixListener::bind(p)?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
            Listener::Unix(l, p.clone())
        }
    })
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Serves the metrics until `shutdown`; removes a Unix socket file afterwards.
pub async fn serve(listener: Listener, stats: Arc<Stats>, spool: Arc<Spool>, shutdown: CancellationToken) {
    let exposition = Arc::new(Exposition::new(stats, spool));
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
                    Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
                }
            } => a,
        };
        match accepted {
            Ok(conn) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!("metrics endpoint: {CONCURRENT} requests already in progress, connection closed");
                    continue;
                };
                let exposition = exposition.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let served = match conn {
                        Conn::Tcp(s) => tokio::time::timeout(CONNECTION_TIME, answer(s, exposition)).await,
                        Conn::Unix(s) => tokio::time::timeout(CONNECTION_TIME, answer(s, exposition)).await,
                    };
                    match served {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(error = %e, "metrics request failed"),
                        Err(_) => tracing::debug!("metrics request took longer than {CONNECTION_TIME:?}: closed"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    if let Listener::Unix(_, p) = listener
        && is_socket(&p)
    {
        let _ = std::fs::remove_file(p);
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// `docker-listener stats`: the metrics of the agent running with this state directory.
pub fn fetch(state_dir: &Path) -> Result<String, String> {
    use std::io::{Read, Write};
    let path = stats_socket(state_dir);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "no running docker-listener answers on {} ({e}): start it, or pass the --state-dir (or \
             --config) it runs with",
            path.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    match reply.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_owned()),
        None => Err(format!("unexpected answer from {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_unix_endpoint_replaces_a_stale_socket_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("dl-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("important.txt");
        std::fs::write(&file, "precious").unwrap();
        let e = bind(&Endpoint::Unix(file.clone())).await.err().expect("a file is no socket");
        assert!(e.to_string().contains("is no socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious", "left alone");
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(bind(&Endpoint::Unix(link.clone())).await.is_err(), "nor a link");
        let sock = dir.join("stale.sock");
        let _ = std::fs::remove_file(&sock);
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(bind(&Endpoint::Unix(sock.clone())).await.is_ok(), "a stale socket is replaced");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoints_are_loopback_or_unix() {
        assert_eq!("127.0.0.1:9700".parse::<Endpoint>().unwrap(), Endpoint::Tcp("127.0.0.1:9700".parse().unwrap()));
        assert!("[::1]:9700".parse::<Endpoint>().is_ok());
        assert_eq!("unix:/run/dl.sock".parse::<Endpoint>().unwrap(), Endpoint::Unix("/run/dl.sock".into()));
        assert!("0.0.0.0:9700".parse::<Endpoint>().unwrap_err().contains("loopback"));
        assert!("unix:rel".parse::<Endpoint>().is_err());
        assert!("9700".parse::<Endpoint>().is_err());
    }
}
