//! Where a party's channel runs: a Unix socket in developer mode, AF_VSOCK in a Nitro enclave
//! (the host listens, the enclave connects to the parent's CID).

use crate::mux::BoxIo;
use std::path::PathBuf;

/// The parent instance's CID on Nitro.
pub const PARENT_CID: u32 = 3;
/// The host's CID (`VMADDR_CID_HOST`), as a VM under QEMU sees it.
pub const HOST_CID: u32 = 2;
/// How long the enclave tries the parent's CID before the host's.
pub const PARENT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A channel address: `unix:PATH` or `vsock:CID:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelAddr {
    /// A Unix socket path (developer mode).
    Unix(PathBuf),
    /// An AF_VSOCK address (production: the parent instance is CID 3).
    Vsock {
        /// Context ID.
        cid: u32,
        /// Port.
        port: u32,
    },
}

/// Why a channel address does not parse or the channel cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// Not `unix:PATH` or `vsock:CID:PORT`.
    #[error("channel address {0:?}: expected unix:PATH or vsock:CID:PORT")]
    Syntax(String),
    /// Connecting or listening failed.
    #[error("channel {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

impl std::fmt::Display for ChannelAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

impl std::str::FromStr for ChannelAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let bad = || AddrError::Syntax(s.to_string());
        if let Some(path) = s.strip_prefix("unix:") {
            return if path.is_empty() {
                Err(bad())
            } else {
                Ok(Self::Unix(path.into()))
            };
        }
        let rest = s.strip_prefix("vsock:").ok_or_else(bad)?;
        let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
        Ok(Self::Vsock {
            cid: cid.parse().map_err(|_| bad())?,
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// The host's side: accepts its enclave's connections.
pub enum ChannelListener {
    /// Unix socket.
    Unix(tokio::net::UnixListener),
    /// AF_VSOCK.
    Vsock(tokio_vsock::VsockListener),
}

impl ChannelAddr {
    fn io(&self) -> impl Fn(std::io::Error) -> AddrError + '_ {
        move |source| AddrError::Io {
            addr: self.to_string(),
            source,
        }
    }

    /// Connects (the enclave's side).
    pub async fn connect(&self) -> Result<BoxIo, AddrError> {
        match self {
            Self::Unix(p) => Ok(Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(self.io())?,
            )),
            Self::Vsock { cid, port } => Ok(Box::new(
                tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(*cid, *port))
                    .await
                    .map_err(self.io())?,
            )),
        }
    }

    /// Connects from inside an enclave. A vsock address at the parent's CID (3, as on Nitro)
    /// that cannot be reached within [`PARENT_CONNECT_TIMEOUT`] is tried again at the host CID
    /// (2), where a VM under QEMU's vhost-user-vsock finds its host: one image serves both, and
    /// the fallback changes nothing about trust, since the host is untrusted either way.
    pub async fn connect_from_enclave(&self) -> Result<BoxIo, AddrError> {
        match self {
            Self::Vsock {
                cid: PARENT_CID,
                port,
            } => match tokio::time::timeout(PARENT_CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok(io)) => Ok(io),
                first => {
                    let host = Self::Vsock {
                        cid: HOST_CID,
                        port: *port,
                    };
                    tracing::warn!(
                        "{self} unreachable ({}); trying {host}",
                        match first {
                            Ok(Err(e)) => e.to_string(),
                            _ => "timed out".into(),
                        }
                    );
                    host.connect().await
                }
            },
            _ => self.connect().await,
        }
    }

    /// Listens (the host's side); a stale Unix socket file is replaced.
    pub fn listen(&self) -> Result<ChannelListener, AddrError> {
        match self {
            Self::Unix(p) => {
                let _ = std::fs::remove_file(p);
                Ok(ChannelListener::Unix(
                    tokio::net::UnixListener::bind(p).map_err(self.io())?,
                ))
            }
            Self::Vsock { cid, port } => Ok(ChannelListener::Vsock(
                tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))
                    .map_err(self.io())?,
            )),
        }
    }
}

impl ChannelListener {
    /// The next enclave connection.
    pub async fn accept(&self) -> std::io::Result<BoxIo> {
        match self {
            Self::Unix(l) => Ok(Box::new(l.accept().await?.0)),
            Self::Vsock(l) => Ok(Box::new(l.accept().await?.0)),
        }
    }
}
