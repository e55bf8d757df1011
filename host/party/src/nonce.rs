//! The party account's nonces, leased to one job at a time.
//!
//! The chain wants a sender's nonces strictly in order, and a party has one account however
//! many enclaves sign for it. So a nonce is not assigned when a job is handed over (a job that
//! ends without a transaction would leave a gap that stalls every later one) but when its
//! enclave is about to sign: the enclave asks ([`kms_channel::NonceSource`]), the job's
//! [`NonceLease`] takes the account's nonce and holds it until the host has broadcast the
//! transaction (or learnt there is none), then [`NonceLease::settle`] advances it or not and
//! lets the next job have it. Only signing and broadcasting are serialized; verification,
//! squashing and the threshold round of the enclaves' jobs overlap.

use kms_chain_types::Address;
use kms_channel::{NonceError, NonceSource};
use kms_connector::ChainRpc;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// The next nonce of the party account as far as this host knows: never below the chain's
/// committed one, and ahead of it by the transactions this host broadcast since.
#[derive(Clone)]
pub struct Nonces {
    rpc: ChainRpc,
    address: Address,
    next: Arc<tokio::sync::Mutex<u64>>,
}

impl Nonces {
    /// The nonces of account `address`, read from the chain at `rpc`.
    pub fn new(rpc: ChainRpc, address: Address) -> Self {
        Self {
            rpc,
            address,
            next: Arc::new(tokio::sync::Mutex::new(0)),
        }
    }

    /// A lease for one job runner (one enclave slot): it holds the nonce for one job at a time.
    pub fn lease(&self) -> NonceLease {
        NonceLease {
            nonces: self.clone(),
            held: Mutex::new(None),
        }
    }
}

/// What became of the transaction signed with a leased nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The node accepted it: the next transaction takes the next nonce.
    Broadcast,
    /// The node refused its nonce, or could not be reached (it may or may not have taken the
    /// transaction): the next lease starts again from the chain's.
    Stale,
    /// No transaction was signed, or the node refused it for another reason (CheckTx refusals
    /// other than the nonce's take no nonce): the nonce is still free.
    Unused,
}

/// One job runner's hold on the account's nonce (see the module docs). A runner serves one job
/// at a time and settles it before the next.
pub struct NonceLease {
    nonces: Nonces,
    held: Mutex<Option<OwnedMutexGuard<u64>>>,
}

impl NonceLease {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<OwnedMutexGuard<u64>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the current job's lease, if it took one: the account's nonce advances if its
    /// transaction was broadcast, and the next job (of any runner) may take it.
    pub fn settle(&self, outcome: Settled) {
        if let Some(mut next) = self.held().take() {
            match outcome {
                Settled::Broadcast => *next = next.saturating_add(1),
                Settled::Stale => *next = 0,
                Settled::Unused => {}
            }
        }
    }

    /// Whether the current job holds the account's nonce.
    pub fn is_held(&self) -> bool {
        self.held().is_some()
    }
}

impl Drop for NonceLease {
    fn drop(&mut self) {
        self.settle(Settled::Unused);
    }
}

#[async_trait::async_trait]
impl NonceSource for NonceLease {
    async fn next_nonce(&self) -> Result<u64, NonceError> {
        if let Some(next) = self.held().as_ref() {
            // Asked again within one job: the same nonce.
            return Ok(**next);
        }
        let mut next = self.nonces.next.clone().lock_owned().await;
        let chain = self
            .nonces
            .rpc
            .next_nonce(&self.nonces.address)
            .await
            .map_err(NonceError::new)?;
        *next = (*next).max(chain);
        let n = *next;
        *self.held() = Some(next);
        Ok(n)
    }
}
