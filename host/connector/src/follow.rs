//! Following the chain block by block.

use crate::{ChainRpc, ConnectorError};
use futures::StreamExt;
use kms_types::RequestId;
use std::path::PathBuf;
use std::time::Duration;
use tendermint::abci::Event;
use tendermint_rpc::event::Event as RpcEvent;
use tendermint_rpc::query::EventType;
use tendermint_rpc::{Subscription, SubscriptionClient, WebSocketClient};
use tokio::task::JoinHandle;

/// An ASC event of a block, as the ASC emitted it (untrusted until the enclave proves the state
/// it refers to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainEvent {
    /// A request was approved (`kms_request`).
    Request {
        /// The request.
        id: RequestId,
        /// Its kind (`keygen`, `public_decrypt`, …).
        kind: String,
    },
    /// A party's response was recorded (`kms_response`).
    Response {
        /// The request.
        id: RequestId,
        /// The party's index.
        party: u32,
    },
    /// A request completed (`kms_complete`).
    Complete {
        /// The request.
        id: RequestId,
        /// Its kind.
        kind: String,
    },
    /// A CRS ceremony moved (`kms_crs_proposal`, `kms_crs_turn`, `kms_crs_ended`): a proposal
    /// to vote on, a new turn, or the end.
    Ceremony {
        /// The CRS generation request.
        id: RequestId,
    },
}

impl ChainEvent {
    fn parse(e: &Event) -> Option<Self> {
        let attr = |k: &str| {
            e.attributes
                .iter()
                .find(|a| a.key_bytes() == k.as_bytes())
                .and_then(|a| a.value_str().ok())
                .map(str::to_string)
        };
        let id = attr("request_id").and_then(|s| RequestId::parse(&s).ok())?;
        match e.kind.as_str() {
            "kms_request" => Some(Self::Request {
                id,
                kind: attr("kind").unwrap_or_default(),
            }),
            "kms_response" => Some(Self::Response {
                id,
                party: attr("party")?.parse().ok()?,
            }),
            "kms_complete" => Some(Self::Complete {
                id,
                kind: attr("kind").unwrap_or_default(),
            }),
            "kms_crs_proposal" | "kms_crs_turn" | "kms_crs_ended" => Some(Self::Ceremony { id }),
            _ => None,
        }
    }
}

/// What wakes the follower up when it waits for a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// The node's websocket `NewBlock` subscription (and a poll at every timeout).
    Subscription,
    /// Polling `status` (the node offers no websocket, or it dropped).
    Polling,
}

struct Ws {
    _client: WebSocketClient,
    driver: JoinHandle<()>,
    blocks: Subscription,
}

impl Drop for Ws {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Walks the chain one block at a time from a height it persists (so a restarted host resumes
/// where it stopped).
pub struct Follower {
    rpc: ChainRpc,
    next: u64,
    cursor: Option<PathBuf>,
    poll: Duration,
    ws: Option<Ws>,
}

impl Follower {
    /// Follows `rpc` from block `from`, or from the height stored in `cursor` if that file
    /// exists. Subscribes to `NewBlock` over the node's websocket if it offers one; polls every
    /// `poll` otherwise.
    pub async fn start(
        rpc: ChainRpc,
        from: u64,
        cursor: Option<PathBuf>,
        poll: Duration,
    ) -> Result<Self, ConnectorError> {
        let next = match &cursor {
            Some(path) => match tokio::fs::read_to_string(path).await {
                Ok(s) => s.trim().parse().unwrap_or(from).max(1),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => from.max(1),
                Err(source) => {
                    return Err(ConnectorError::Cursor {
                        path: path.display().to_string(),
                        source,
                    })
                }
            },
            None => from.max(1),
        };
        let ws = Self::subscribe(&rpc).await;
        tracing::info!(
            node = rpc.url(),
            from = next,
            websocket = ws.is_some(),
            "following the KMS chain"
        );
        Ok(Self {
            rpc,
            next,
            cursor,
            poll,
            ws,
        })
    }

    async fn subscribe(rpc: &ChainRpc) -> Option<Ws> {
        let url = rpc.websocket_url();
        let (client, driver) = match WebSocketClient::new(url.as_str()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(%url, "no websocket ({e}); polling");
                return None;
            }
        };
        let driver = tokio::spawn(async move {
            let _ = driver.run().await;
        });
        match client.subscribe(EventType::NewBlock.into()).await {
            Ok(blocks) => Some(Ws {
                _client: client,
                driver,
                blocks,
            }),
            Err(e) => {
                tracing::info!(%url, "websocket subscription refused ({e}); polling");
                driver.abort();
                None
            }
        }
    }

    /// How the follower is woken up now.
    pub fn wakeup(&self) -> Wakeup {
        if self.ws.is_some() {
            Wakeup::Subscription
        } else {
            Wakeup::Polling
        }
    }

    /// The next block to report.
    pub fn next_height(&self) -> u64 {
        self.next
    }

    /// The RPC client.
    pub fn rpc(&self) -> &ChainRpc {
        &self.rpc
    }

    /// Waits until block `next_height() + 1` exists (so the state after `next_height()` is
    /// committed by a header), then returns block `next_height()`'s ASC events and moves on.
    /// The height is persisted by [`Follower::done`], after the caller handled the events.
    pub async fn next_block(&mut self) -> Result<(u64, Vec<ChainEvent>), ConnectorError> {
        let h = self.next;
        loop {
            match self.rpc.latest_height().await {
                Ok(latest) if latest > h => break,
                Ok(_) => {}
                Err(e) => tracing::warn!("status: {e}"),
            }
            self.wait().await;
        }
        let events = self
            .rpc
            .block_events(h)
            .await?
            .iter()
            .filter_map(ChainEvent::parse)
            .collect();
        self.next = h + 1;
        Ok((h, events))
    }

    async fn wait(&mut self) {
        let Some(ws) = self.ws.as_mut() else {
            tokio::time::sleep(self.poll).await;
            return;
        };
        // A poll at every timeout even with a subscription: a missed notification costs one
        // interval, never a block.
        match tokio::time::timeout(self.poll * 4, ws.blocks.next()).await {
            Ok(Some(Ok(RpcEvent { .. }))) | Err(_) => {}
            Ok(Some(Err(e))) => {
                tracing::warn!("websocket: {e}; polling from now on");
                self.ws = None;
            }
            Ok(None) => {
                tracing::warn!("websocket closed; polling from now on");
                self.ws = None;
            }
        }
    }

    /// Goes back to block `h` (its requests could not be handed over; they will be again).
    pub fn rewind(&mut self, h: u64) {
        self.next = self.next.min(h.max(1));
    }

    /// Records that every block below `next_height()` was handled (a restart resumes there).
    pub async fn done(&self) -> Result<(), ConnectorError> {
        let Some(path) = &self.cursor else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let io = |source| ConnectorError::Cursor {
            path: path.display().to_string(),
            source,
        };
        tokio::fs::write(&tmp, self.next.to_string())
            .await
            .map_err(io)?;
        tokio::fs::rename(&tmp, path).await.map_err(io)
    }
}
