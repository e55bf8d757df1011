//! Parties over gRPC/TCP: each serves `Party.Deliver` into its inbox and calls its peers'.

use crate::{Inbox, NetError, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Generated protocol.
#[allow(missing_docs, clippy::doc_markdown)]
pub mod pb {
    tonic::include_proto!("kms.party.v1");
}

use pb::party_client::PartyClient;
use pb::party_server::{Party, PartyServer};

pub use crate::MAX_MESSAGE_BYTES;

/// Longest one message delivery (connection, TLS handshake and call) may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);

struct Receiver {
    inbox: Arc<Inbox>,
    n: usize,
    /// Whether the sender must be the party the channel authenticated.
    authenticated: bool,
}

#[tonic::async_trait]
impl Party for Receiver {
    async fn deliver(
        &self,
        req: Request<pb::PartyMessage>,
    ) -> Result<Response<pb::Delivered>, Status> {
        let peer = req.extensions().get::<crate::tls::PeerParty>().map(|p| p.0);
        let m = req.into_inner();
        let from = m.from as usize;
        crate::check_party(from, self.n).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if self.authenticated {
            // The sender is who the attested TLS channel proved, whatever the message claims.
            match peer {
                Some(p) if p == from => {}
                Some(p) => {
                    tracing::warn!(
                        claimed = from,
                        authenticated = p,
                        "party impersonation refused"
                    );
                    return Err(Status::permission_denied(format!(
                        "channel is authenticated as party {p}, message claims party {from}"
                    )));
                }
                None => return Err(Status::unauthenticated("no authenticated party")),
            }
        }
        // Without TLS (developer mode) the claimed sender is trusted.
        match self.inbox.deliver(from, &m.session, m.payload) {
            crate::Received::TooLarge => Err(Status::resource_exhausted(
                "message or session larger than a party accepts",
            )),
            _ => Ok(Response::new(pb::Delivered {})),
        }
    }
}

fn client(channel: Channel) -> PartyClient<Channel> {
    PartyClient::new(channel).max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// A party reachable over gRPC.
pub struct GrpcParty {
    me: usize,
    /// One lazily connected client per peer (reconnects by itself); `Err` for a bad endpoint.
    peers: Vec<Result<PartyClient<Channel>, String>>,
    inbox: Arc<Inbox>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for GrpcParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrpcParty({}/{})", self.me, self.peers.len())
    }
}

impl GrpcParty {
    /// Starts serving on `listener` as party `me`; `peers[p - 1]` is party `p`'s endpoint
    /// (`http://host:port`).
    ///
    /// Plain TCP: the claimed sender of each message is trusted. Only in `insecure-dev` builds;
    /// parties in production use [`GrpcParty::start_tls`].
    #[cfg(feature = "insecure-dev")]
    pub fn start(me: usize, listener: tokio::net::TcpListener, peers: Vec<String>) -> Self {
        let n = peers.len();
        let (svc, inbox) = Self::service(n, false);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = rx.await;
                    },
                ),
        );
        let peers = peers
            .into_iter()
            .map(|ep| {
                Channel::from_shared(ep)
                    .map(|c| client(c.connect_lazy()))
                    .map_err(|e| e.to_string())
            })
            .collect();
        Self {
            me,
            peers,
            inbox,
            shutdown: Some(tx),
        }
    }

    /// Starts serving over mutually authenticated TLS (attested TLS in production): every
    /// connection, in and out, is a TLS 1.3 session whose peer `tls` maps to a party index;
    /// messages are accepted only from the party their connection authenticated, and each
    /// outgoing connection only reaches the party it was meant for.
    pub fn start_tls(
        me: usize,
        listener: tokio::net::TcpListener,
        peers: Vec<String>,
        tls: crate::tls::PartyTls,
    ) -> Self {
        let incoming = crate::tls::incoming(listener, tls.server.clone(), tls.authenticate.clone());
        let peers = peers
            .into_iter()
            .enumerate()
            .map(|(i, ep)| {
                let config =
                    tls.clients.get(i).cloned().ok_or_else(|| {
                        format!("no TLS client configuration for party {}", i + 1)
                    })?;
                tonic::transport::Endpoint::from_shared(ep)
                    .map(|e| client(e.connect_with_connector_lazy(crate::tls::connector(config))))
                    .map_err(|e| e.to_string())
            })
            .collect();
        Self::serve_tls(me, incoming, peers, &tls)
    }

    /// [`GrpcParty::start_tls`] over byte streams someone else carries: `incoming` yields the
    /// connections other parties opened to this one, `dial` opens one to party p. This is how
    /// an enclave talks to the other parties through its host: the host relays bytes, the TLS
    /// sessions (and their attestation) are end to end.
    pub fn start_tls_relayed(
        me: usize,
        n: usize,
        incoming: tokio::sync::mpsc::Receiver<crate::tls::BoxIo>,
        dial: crate::tls::Dial,
        tls: crate::tls::PartyTls,
    ) -> Self {
        let incoming =
            crate::tls::incoming_streams(incoming, tls.server.clone(), tls.authenticate.clone());
        let peers = (1..=n)
            .map(|p| {
                let config = tls
                    .clients
                    .get(p - 1)
                    .cloned()
                    .ok_or_else(|| format!("no TLS client configuration for party {p}"))?;
                // The URI only names the peer; `dial` decides where the bytes go.
                tonic::transport::Endpoint::from_shared(format!("http://party-{p}.kms"))
                    .map(|e| {
                        client(e.connect_with_connector_lazy(crate::tls::connector_with(
                            config,
                            Some((dial.clone(), p)),
                        )))
                    })
                    .map_err(|e| e.to_string())
            })
            .collect();
        Self::serve_tls(me, incoming, peers, &tls)
    }

    fn serve_tls(
        me: usize,
        incoming: tokio_stream::wrappers::ReceiverStream<
            Result<crate::tls::AuthenticatedStream, std::io::Error>,
        >,
        peers: Vec<Result<PartyClient<Channel>, String>>,
        tls: &crate::tls::PartyTls,
    ) -> Self {
        let n = peers.len();
        let (svc, inbox) = Self::service(n, true);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            });
        match tls.refresh.clone() {
            // Re-attest while serving; the loop ends with the server.
            Some((every, refresh)) => {
                tokio::spawn(async move {
                    let refreshing = async {
                        loop {
                            tokio::time::sleep(every).await;
                            if let Err(e) = refresh() {
                                tracing::error!("re-attestation failed: {e}");
                            }
                        }
                    };
                    tokio::select! {
                        r = server => r,
                        () = refreshing => Ok(()),
                    }
                });
            }
            None => {
                tokio::spawn(server);
            }
        }
        Self {
            me,
            peers,
            inbox,
            shutdown: Some(tx),
        }
    }

    fn service(n: usize, authenticated: bool) -> (PartyServer<Receiver>, Arc<Inbox>) {
        let inbox = Arc::new(Inbox::default());
        let svc = PartyServer::new(Receiver {
            inbox: inbox.clone(),
            n,
            authenticated,
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        (svc, inbox)
    }

    /// Binds `n` ephemeral loopback ports; returns the listeners and their endpoints, in order.
    pub async fn bind_local(
        n: usize,
    ) -> std::io::Result<(Vec<tokio::net::TcpListener>, Vec<String>)> {
        let mut listeners = Vec::with_capacity(n);
        let mut endpoints = Vec::with_capacity(n);
        for _ in 0..n {
            let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            endpoints.push(format!("http://{}", l.local_addr()?));
            listeners.push(l);
        }
        Ok((listeners, endpoints))
    }
}

impl Drop for GrpcParty {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[async_trait::async_trait]
impl Transport for GrpcParty {
    fn me(&self) -> usize {
        self.me
    }
    fn n(&self) -> usize {
        self.peers.len()
    }
    async fn send(&self, to: usize, session: &[u8], payload: Vec<u8>) -> Result<(), NetError> {
        let err = |e: &dyn std::fmt::Display| NetError::Send {
            to,
            reason: e.to_string(),
        };
        let mut client = self
            .peers
            .get(to.wrapping_sub(1))
            .ok_or(NetError::UnknownParty(to))?
            .clone()
            .map_err(|e| err(&e))?;
        let deliver = client.deliver(pb::PartyMessage {
            from: u32::try_from(self.me).map_err(|e| err(&e))?,
            session: session.to_vec(),
            payload,
        });
        // A peer that accepts the connection and never answers is as faulty as a silent one.
        tokio::time::timeout(SEND_TIMEOUT, deliver)
            .await
            .map_err(|_| err(&"timed out"))?
            .map_err(|e| err(&e))?;
        Ok(())
    }
    async fn recv(
        &self,
        from: usize,
        session: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        crate::check_party(from, self.n())?;
        self.inbox.take(from, session, timeout).await
    }
}
