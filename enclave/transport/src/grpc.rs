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

/// Largest message accepted (batches of shares).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

struct Receiver {
    inbox: Arc<Inbox>,
    n: usize,
}

#[tonic::async_trait]
impl Party for Receiver {
    async fn deliver(
        &self,
        req: Request<pb::PartyMessage>,
    ) -> Result<Response<pb::Delivered>, Status> {
        let m = req.into_inner();
        let from = m.from as usize;
        crate::check_party(from, self.n).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Developer mode trusts the claimed sender; production authenticates it from the
        // attested TLS channel the message arrived on.
        self.inbox.deliver(from, &m.session, m.payload);
        Ok(Response::new(pb::Delivered {}))
    }
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
    pub fn start(me: usize, listener: tokio::net::TcpListener, peers: Vec<String>) -> Self {
        let inbox = Arc::new(Inbox::default());
        let svc = PartyServer::new(Receiver {
            inbox: inbox.clone(),
            n: peers.len(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
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
                    .map(|c| {
                        PartyClient::new(c.connect_lazy())
                            .max_encoding_message_size(MAX_MESSAGE_BYTES)
                    })
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

    /// Binds an ephemeral loopback port; returns the listener and its endpoint.
    pub async fn bind_local() -> std::io::Result<(tokio::net::TcpListener, String)> {
        let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = l.local_addr()?;
        Ok((l, format!("http://{addr}")))
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
        client
            .deliver(pb::PartyMessage {
                from: u32::try_from(self.me).map_err(|e| err(&e))?,
                session: session.to_vec(),
                payload,
            })
            .await
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
