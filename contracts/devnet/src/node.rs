//! The running devnet: a block producer ticking at a fixed interval and the RPC server, sharing
//! one persistent chain.

use crate::persist::{PersistError, PersistentChain};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tendermint::Time;
use tokio::sync::watch;

/// A handle to the running devnet (cheap to clone).
#[derive(Clone)]
pub struct Node {
    chain: Arc<Mutex<PersistentChain>>,
    heights: watch::Receiver<u64>,
    tx: Arc<watch::Sender<u64>>,
    rpc_address: Arc<Mutex<String>>,
}

impl Node {
    /// Wraps a chain.
    pub fn new(chain: PersistentChain) -> Self {
        let h = chain.chain().height();
        let (tx, rx) = watch::channel(h);
        Self {
            chain: Arc::new(Mutex::new(chain)),
            heights: rx,
            tx: Arc::new(tx),
            rpc_address: Arc::new(Mutex::new(String::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PersistentChain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the chain locked (keep it short: no awaits inside).
    pub fn with<R>(&self, f: impl FnOnce(&mut PersistentChain) -> R) -> R {
        f(&mut self.lock())
    }

    /// Produces one block now.
    pub fn produce_block(&self) -> Result<u64, PersistError> {
        let h = self.lock().produce_block(Time::now())?;
        self.tx.send_replace(h);
        Ok(h)
    }

    /// Waits until a new block is produced or `max` elapses.
    pub async fn wait_for_block(&self, max: Duration) {
        let mut rx = self.heights.clone();
        let _ = tokio::time::timeout(max, rx.changed()).await;
    }

    /// The RPC address, once serving.
    pub fn rpc_address(&self) -> String {
        self.rpc_address
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Produces a block every `interval` (empty blocks included, like CometBFT's default) until
    /// the task is dropped.
    pub fn spawn_producer(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = node.produce_block() {
                    tracing::error!("devnet cannot persist a block, stopping production: {e}");
                    return;
                }
            }
        })
    }

    /// Records where the RPC is served (reported by `status`).
    pub(crate) fn set_rpc_address(&self, address: String) {
        if let Ok(mut s) = self.rpc_address.lock() {
            *s = address;
        }
    }
}
