//! Party connections over mutually authenticated TLS 1.3.
//!
//! The transport does not decide whom to trust: the caller passes rustls configurations (in
//! production those of `kms-attested-tls`, whose verifiers check the peer's Nitro attestation
//! and identity) and a function mapping a verified peer certificate to a party index. Incoming
//! connections are handshaken off the accept loop (a slow peer does not block others), and the
//! authenticated party index travels with every request as [`PeerParty`].

use rustls::pki_types::{CertificateDer, ServerName};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;

/// Maps a verified peer certificate chain (leaf first) to a party index, or refuses it.
pub type Authenticate = Arc<dyn Fn(&[CertificateDer<'_>]) -> Option<usize> + Send + Sync>;

/// Re-attests the party's TLS identity (see `kms_attested_tls::Mesh::refresh`).
pub type Refresh = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// TLS material of one party.
#[derive(Clone)]
pub struct PartyTls {
    /// Server side: must require client certificates (mutual TLS).
    pub server: Arc<rustls::ServerConfig>,
    /// Client side, one per peer (index `p − 1` for party `p`), each accepting only that peer.
    pub clients: Vec<Arc<rustls::ClientConfig>>,
    /// Who a verified client certificate is.
    pub authenticate: Authenticate,
    /// Run every `.0` while the party serves, so that its attestation never ages out.
    pub refresh: Option<(std::time::Duration, Refresh)>,
}

impl std::fmt::Debug for PartyTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartyTls({} peers)", self.clients.len())
    }
}

impl PartyTls {
    /// The configuration of an attested mesh party: TLS from `mesh`, peers authenticated by
    /// their attestation documents and registered keys, this party's document refreshed with
    /// `nsm` every [`kms_attested_tls::Mesh::refresh_interval`].
    pub fn attested(mesh: Arc<kms_attested_tls::Mesh>, nsm: Arc<dyn kms_nsm::Nsm>) -> Self {
        let (m, r) = (mesh.clone(), mesh.clone());
        Self {
            server: mesh.server.clone(),
            clients: mesh.clients.clone(),
            authenticate: Arc::new(move |chain: &[CertificateDer<'_>]| {
                m.authenticate(chain.first()?)
            }),
            refresh: Some((
                mesh.refresh_interval(),
                Arc::new(move || r.refresh(nsm.as_ref()).map_err(|e| e.to_string())),
            )),
        }
    }
}

impl PartyTls {
    /// Party `me` of the mesh the config contract describes (`registered[p − 1]`: party p's
    /// identity-key digest), with its own identity `key`, attested by `nsm` and trusting peers
    /// under `policy` and `nsm`'s root.
    pub fn for_party(
        nsm: Arc<dyn kms_nsm::Nsm>,
        me: usize,
        registered: &[[u8; 32]],
        key: kms_attested_tls::IdentityKey,
        policy: kms_attestation::Policy,
    ) -> Result<Self, kms_attested_tls::ChannelError> {
        let root = nsm.trusted_root();
        let mesh = kms_attested_tls::Mesh::new(nsm.as_ref(), me, registered, key, root, policy)?;
        Ok(Self::attested(Arc::new(mesh), nsm))
    }

    /// [`PartyTls::for_party`] trusting each peer `p` under its own `policies[p − 1]` (the
    /// attestation policy the config contract holds for it).
    pub fn for_party_per_party(
        nsm: Arc<dyn kms_nsm::Nsm>,
        me: usize,
        registered: &[[u8; 32]],
        policies: &[kms_attestation::Policy],
        key: kms_attested_tls::IdentityKey,
    ) -> Result<Self, kms_attested_tls::ChannelError> {
        let root = nsm.trusted_root();
        let mesh =
            kms_attested_tls::Mesh::per_party(nsm.as_ref(), me, registered, policies, key, root)?;
        Ok(Self::attested(Arc::new(mesh), nsm))
    }
}

/// The party a connection authenticated, attached to each request it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerParty(pub usize);

/// A byte stream a party connection runs over: a TCP socket, or a connection relayed by the
/// party's host (the TLS session is end to end either way).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// Opens a byte stream to party `p` (1-based).
pub type Dial = Arc<
    dyn Fn(usize) -> Pin<Box<dyn std::future::Future<Output = std::io::Result<BoxIo>> + Send>>
        + Send
        + Sync,
>;

/// A server-side TLS stream with its authenticated party.
pub struct AuthenticatedStream {
    inner: tokio_rustls::server::TlsStream<BoxIo>,
    party: usize,
}

impl tonic::transport::server::Connected for AuthenticatedStream {
    type ConnectInfo = PeerParty;
    fn connect_info(&self) -> PeerParty {
        PeerParty(self.party)
    }
}

impl AsyncRead for AuthenticatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AuthenticatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most TLS handshakes in progress at once; further connections are closed at once (a peer that
/// opens connections without finishing them cannot exhaust the party's memory or tasks).
pub const MAX_HANDSHAKES_IN_FLIGHT: usize = 32;

/// Accepts TCP connections and hands them to [`incoming_streams`].
pub(crate) fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    authenticate: Authenticate,
) -> ReceiverStream<Result<AuthenticatedStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<BoxIo>(64);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    if tx.send(Box::new(tcp)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!("party listener: {e}"),
            }
        }
    });
    incoming_streams(rx, config, authenticate)
}

/// Completes mutual TLS on each incoming byte stream and authenticates the peer; yields the
/// streams whose peer is a party. Refused peers are logged and dropped.
pub(crate) fn incoming_streams(
    mut conns: tokio::sync::mpsc::Receiver<BoxIo>,
    config: Arc<rustls::ServerConfig>,
    authenticate: Authenticate,
) -> ReceiverStream<Result<AuthenticatedStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES_IN_FLIGHT));
    tokio::spawn(async move {
        while let Some(io) = conns.recv().await {
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                tracing::warn!("too many TLS handshakes in flight; connection closed");
                drop(io);
                continue;
            };
            let (acceptor, conn_tx, authenticate) =
                (acceptor.clone(), tx.clone(), authenticate.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!("party TLS handshake refused: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!("party TLS handshake timed out");
                        return;
                    }
                };
                let party = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| authenticate(chain));
                match party {
                    Some(party) => {
                        let _ = conn_tx
                            .send(Ok(AuthenticatedStream { inner: tls, party }))
                            .await;
                    }
                    None => tracing::warn!("TLS peer is not a party; connection dropped"),
                }
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// A TLS stream as hyper sees it.
pub type ClientStream = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<BoxIo>>;
type Connecting = Pin<Box<dyn std::future::Future<Output = std::io::Result<ClientStream>> + Send>>;

/// A tonic connector that dials TCP and runs TLS with `config` (which decides whether the
/// server is the intended party).
pub(crate) fn connector(
    config: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = ClientStream,
    Error = std::io::Error,
    Future = Connecting,
> + Clone {
    connector_with(config, None)
}

/// A tonic connector that opens a byte stream to party `party` with `dial` (or, without one,
/// dials the URI's TCP address) and runs TLS with `config` over it.
pub(crate) fn connector_with(
    config: Arc<rustls::ClientConfig>,
    dial: Option<(Dial, usize)>,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = ClientStream,
    Error = std::io::Error,
    Future = Connecting,
> + Clone {
    let connector = tokio_rustls::TlsConnector::from(config);
    tower::service_fn(move |uri: tonic::transport::Uri| {
        let (connector, dial) = (connector.clone(), dial.clone());
        let fut: Connecting = Box::pin(async move {
            let host = uri.host().unwrap_or("127.0.0.1").to_string();
            let port = uri.port_u16().unwrap_or(443);
            let io: BoxIo = match dial {
                Some((dial, party)) => dial(party).await?,
                None => Box::new(TcpStream::connect((host.as_str(), port)).await?),
            };
            // The attested verifier ignores DNS names: identity comes from the attestation.
            let name = ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, io))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
                })??;
            Ok(hyper_util::rt::TokioIo::new(tls))
        });
        fut
    })
}
