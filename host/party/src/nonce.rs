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
use std::time::Duration;
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
            state: Mutex::new(LeaseState::default()),
        }
    }
}

/// What became of the transaction signed with a leased nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The node accepted it: the next transaction takes the next nonce.
    Broadcast,
    /// The node refused its nonce (naming the account's next one as CheckTx counts it, pending
    /// transactions included, if it said), or could not be reached (it may or may not have
    /// taken the transaction): the next lease starts from that nonce, else from the chain's.
    Stale(Option<u64>),
    /// No transaction was signed, or the node refused it for another reason (CheckTx refusals
    /// other than the nonce's take no nonce): the nonce is still free.
    Unused,
}

/// How long a job waits for the account's nonce (another job holds it while it broadcasts);
/// shorter than the enclave's wait for its host, so a job never takes the nonce after its
/// enclave gave up on it.
pub const LEASE_WAIT: Duration = Duration::from_secs(30);

/// Why a lease handed out no nonce.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// No job is in hand: a nonce is only for the job being served.
    #[error("no job in hand")]
    NoJob,
    /// The job ended while its nonce was being fetched.
    #[error("the job ended before its nonce was ready")]
    JobEnded,
    /// Another job held the nonce for longer than [`LEASE_WAIT`].
    #[error("the account's nonce stayed leased for {0:?}")]
    Busy(Duration),
    /// The chain could not be asked.
    #[error(transparent)]
    Chain(#[from] kms_connector::ConnectorError),
}

/// The job in hand (by number) and the account nonce held for it.
#[derive(Default)]
struct LeaseState {
    jobs: u64,
    job: Option<u64>,
    held: Option<OwnedMutexGuard<u64>>,
}

/// One job runner's hold on the account's nonce (see the module docs). A runner serves one job
/// at a time: [`NonceLease::begin`] before handing it over, [`NonceLease::settle`] after. A
/// nonce is handed out only while a job is in hand, and one taken for a job that ended in the
/// meantime is given back at once, so a lease is never held by nobody.
pub struct NonceLease {
    nonces: Nonces,
    state: Mutex<LeaseState>,
}

impl NonceLease {
    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job is handed over: until it is settled, the enclave may take the nonce for it.
    pub fn begin(&self) {
        let mut st = self.state();
        st.jobs = st.jobs.wrapping_add(1);
        st.job = Some(st.jobs);
        // A lease left from a job never settled (cannot happen through `PartyHost`) goes back.
        st.held = None;
    }

    /// Ends the current job: the account's nonce, if the job took it, advances if its
    /// transaction was broadcast, and the next job (of any runner) may take it.
    pub fn settle(&self, outcome: Settled) {
        let mut st = self.state();
        st.job = None;
        if let Some(mut next) = st.held.take() {
            match outcome {
                Settled::Broadcast => *next = next.saturating_add(1),
                Settled::Stale(Some(expected)) => *next = expected,
                Settled::Stale(None) => *next = 0,
                Settled::Unused => {}
            }
        }
    }

    /// Whether the current job holds the account's nonce.
    pub fn is_held(&self) -> bool {
        self.state().held.is_some()
    }

    async fn take(&self) -> Result<u64, LeaseError> {
        let job = {
            let st = self.state();
            let job = st.job.ok_or(LeaseError::NoJob)?;
            if let Some(next) = st.held.as_ref() {
                // Asked again within one job: the same nonce.
                return Ok(**next);
            }
            job
        };
        let mut next = tokio::time::timeout(LEASE_WAIT, self.nonces.next.clone().lock_owned())
            .await
            .map_err(|_| LeaseError::Busy(LEASE_WAIT))?;
        let chain = self.nonces.rpc.next_nonce(&self.nonces.address).await?;
        *next = (*next).max(chain);
        let n = *next;
        let mut st = self.state();
        if st.job != Some(job) {
            // The job ended meanwhile: `next` drops here, and the nonce with it.
            return Err(LeaseError::JobEnded);
        }
        st.held = Some(next);
        Ok(n)
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
        self.take().await.map_err(NonceError::new)
    }
}
