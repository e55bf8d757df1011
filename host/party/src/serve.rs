//! The host loop: chain events in, jobs to the enclave, signed transactions out.

use crate::nonce::{NonceLease, Settled};
use crate::{BlobError, Blobs};
use kms_chain_types::codec;
use kms_chain_types::state::RequestRecord;
use kms_chain_types::tx::{bad_nonce_expected, KmsRequest, CODE_BAD_NONCE};
use kms_channel::{Enclave, Job, Outcome, Skip};
use kms_connector::{ChainEvent, ConnectorError, Follower};
use kms_types::{CiphertextRef, RequestId, TypedCiphertext};
use std::sync::Arc;

/// Why the host could not go on with a block (it retries the block).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ConnectorError),
    /// The enclave could not be reached; block `height` will be handled again.
    #[error("enclave unavailable; block {height} will be handed over again")]
    EnclaveUnavailable {
        /// The block.
        height: u64,
    },
}

/// What the host did with one approved request.
#[derive(Debug)]
pub enum Served<E> {
    /// The enclave signed an answer and the node accepted it (CheckTx).
    Broadcast {
        /// The request.
        id: RequestId,
        /// The transaction's hash.
        tx_hash: tendermint::Hash,
    },
    /// The enclave had nothing to send.
    Skipped {
        /// The request.
        id: RequestId,
        /// Why.
        skip: Skip,
    },
    /// The enclave refused or failed the job.
    EnclaveRefused {
        /// The request.
        id: RequestId,
        /// Its error.
        error: E,
    },
    /// The node refused the enclave's transaction, or could not be reached.
    NotBroadcast {
        /// The request.
        id: RequestId,
        /// The error.
        error: ConnectorError,
    },
    /// An input the request names is not in the blob store (or is corrupt there).
    InputMissing {
        /// The request.
        id: RequestId,
        /// The digest not found.
        digest: [u8; 32],
        /// The store's error, if any.
        error: Option<BlobError>,
    },
    /// The bytes the enclave asked to publish could not be stored (its transaction was not
    /// broadcast).
    PublishFailed {
        /// The request.
        id: RequestId,
        /// The store's error.
        error: BlobError,
    },
    /// The evidence could not be fetched.
    NoEvidence {
        /// The request.
        id: RequestId,
        /// The error.
        error: ConnectorError,
    },
}

/// Wall-clock milliseconds since the Unix epoch (for the log lines `kms bench-runtime` reads;
/// the host's clock is never trusted for anything else).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One of a party's enclaves as its host drives it: the enclave and the nonce lease its jobs
/// sign with (the same lease the enclave's [`kms_channel::NonceSource`] answers from).
pub struct Slot<E> {
    /// The enclave.
    pub enclave: Arc<E>,
    /// Its jobs' hold on the party account's nonce.
    pub nonces: Arc<NonceLease>,
}

/// Which of `slots` enclaves serves request `id`: the request ID (itself a hash of the request)
/// read as a number, modulo the slot count. Every party's host computes the same slot, and
/// slot `s` of each party meets slot `s` of the others (one mesh per slot), so a request's
/// threshold round runs between the enclaves that all hold it. Every party must run the same
/// number of enclaves; a host refuses peers that announce another count.
pub fn slot_of(id: &RequestId, slots: usize) -> usize {
    let [a, b, c, d, e, f, g, h, ..] = *id.as_bytes();
    (u64::from_be_bytes([a, b, c, d, e, f, g, h]) % slots.max(1) as u64) as usize
}

/// Blocks after which a ceremony step whose handover failed is handed over again.
pub const CEREMONY_RETRY_BLOCKS: u64 = 3;

/// One party's host.
pub struct PartyHost<E: Enclave> {
    follower: Follower,
    slots: Vec<Slot<E>>,
    blobs: Blobs,
    /// CRS ceremonies in progress and the height after which the request is handed over again:
    /// its current turn's deadline (read from the untrusted record; the enclave checks it
    /// against its verified header), or a few blocks on after a failed handover. Not persisted:
    /// after a host restart a ceremony is tracked again from its next event.
    deadlines: std::sync::Mutex<std::collections::BTreeMap<RequestId, u64>>,
}

impl<E: Enclave> PartyHost<E> {
    /// A host following the chain with `follower`, serving its enclaves `slots` (at least one;
    /// each request goes to the one [`slot_of`] names), fetching inputs from `blobs`.
    pub fn new(follower: Follower, slots: Vec<Slot<E>>, blobs: Blobs) -> Self {
        Self {
            follower,
            slots,
            blobs,
            deadlines: Default::default(),
        }
    }

    /// The chain follower.
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// Waits for the next block, serves the requests it approved, records the block as done.
    /// Each enclave takes its requests in block order, one at a time; the enclaves run side by
    /// side. If an enclave cannot be reached, nothing of the block counts as handled and it is
    /// handed over again (what was answered meanwhile is skipped then).
    pub async fn step(&mut self) -> Result<(u64, Vec<Served<E::Error>>), HostError> {
        let (h, events) = self.follower.next_block().await?;
        let mut queues: Vec<Vec<RequestId>> = self.slots.iter().map(|_| Vec::new()).collect();
        // One handover per request and block, however many reasons the block gives (a
        // ceremony's last turn and its end come together; a deadline may fall on an event).
        let slots = self.slots.len();
        let mut enqueue = |id: RequestId, what: &str| {
            let slot = slot_of(&id, slots);
            if let Some(q) = queues.get_mut(slot).filter(|q| !q.contains(&id)) {
                tracing::info!(height = h, request = %id, what, slot, "request to serve");
                q.push(id);
            }
        };
        for e in events {
            let (id, what) = match e {
                ChainEvent::Request { id, kind } => (id, format!("approved {kind}")),
                // A completed resharing is handed over once more: the enclave then takes the
                // new share up and erases the old one (the chain says when all parties hold
                // the new sharing).
                ChainEvent::Complete { id, kind } if kind == "reshare" => {
                    (id, "completed reshare".to_string())
                }
                // A ceremony's proposal to vote on, its next turn, or its end.
                ChainEvent::Ceremony { id } => (id, "CRS ceremony step".to_string()),
                _ => continue,
            };
            enqueue(id, &what);
        }
        // Ceremony turns past their deadline (handed over every block until the turn moves on:
        // the enclave skips them), and ceremony steps whose last handover failed. An entry is
        // replaced whenever the request is served (the record says the next deadline) and
        // dropped once the ceremony is over, so a rewound block loses none.
        let due: Vec<RequestId> = self
            .deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, at)| **at < h)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            enqueue(id, "CRS ceremony turn past its deadline or retried");
        }
        let runs = self
            .slots
            .iter()
            .zip(queues)
            .map(|(slot, ids)| self.serve_queue(slot, ids, h));
        let mut served = Vec::new();
        let mut failed = None;
        for r in futures::future::join_all(runs).await {
            match r {
                Ok(s) => served.extend(s),
                Err(s) => {
                    failed.get_or_insert(s);
                }
            }
        }
        if let Some(s) = failed {
            // Not refused but unreachable, or signed with a stale nonce: nothing of this block
            // counts as handled.
            self.follower.rewind(h);
            return Err(match s {
                Served::NoEvidence { error, .. } | Served::NotBroadcast { error, .. } => {
                    HostError::Chain(error)
                }
                _ => HostError::EnclaveUnavailable { height: h },
            });
        }
        self.follower.done().await?;
        Ok((h, served))
    }

    /// One enclave's requests of a block, in order; stops at the first that must be retried.
    async fn serve_queue(
        &self,
        slot: &Slot<E>,
        ids: Vec<RequestId>,
        h: u64,
    ) -> Result<Vec<Served<E::Error>>, Served<E::Error>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let s = self.serve(slot, id, h).await;
            if !matches!(s, Served::Broadcast { .. } | Served::Skipped { .. }) {
                // A ceremony step that failed here (no evidence, bytes not fetched or not
                // stored, the enclave refused, the node refused) is tried again soon rather
                // than at the deadline, where it would be a skip instead of this party's vote.
                let mut d = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(at) = d.get_mut(&id) {
                    *at = (*at).min(h.saturating_add(CEREMONY_RETRY_BLOCKS));
                }
            }
            let retry = match &s {
                Served::EnclaveRefused { error, .. } => E::unavailable(error),
                // The node did not answer: the block is handled again.
                Served::NoEvidence { .. } => true,
                // Signed with a stale nonce: handled again, the enclave signs anew with the
                // nonce the refusal named (or skips what completed meanwhile).
                Served::NotBroadcast { error, .. } => bad_nonce_refusal(error).is_some(),
                _ => false,
            };
            if retry {
                return Err(s);
            }
            out.push(s);
        }
        Ok(out)
    }

    async fn fetch(&self, digest: &[u8; 32]) -> Result<Vec<u8>, (Option<BlobError>, [u8; 32])> {
        match self.blobs.get(digest).await {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err((None, *digest)),
            Err(e) => Err((Some(e), *digest)),
        }
    }

    async fn ciphertexts(
        &self,
        refs: &[CiphertextRef],
    ) -> Result<Vec<TypedCiphertext>, (Option<BlobError>, [u8; 32])> {
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            out.push(TypedCiphertext {
                fhe_type: r.fhe_type,
                bytes: self.fetch(&r.digest).await?,
            });
        }
        Ok(out)
    }

    async fn serve(&self, slot: &Slot<E>, id: RequestId, h: u64) -> Served<E::Error> {
        let rpc = self.follower.rpc().clone();
        // The record proven as of the latest committed state, not the approving block's: it
        // proves the approval just as well, and tells the enclave whether the request completed
        // meanwhile (a host catching up after a restart then skips what the others finished).
        let at = match rpc.latest_height().await {
            Ok(latest) => latest.saturating_sub(1).max(h),
            Err(_) => h,
        };
        let evidence = match rpc.request_evidence(id, at).await {
            Ok(e) => e,
            Err(error) => return Served::NoEvidence { id, error },
        };
        // What the request names, read (untrusted) from the record the enclave will verify.
        let mut named = Vec::new();
        let (refs, client_digest) = match codec::decode::<RequestRecord>(&evidence.value) {
            Ok(r) => {
                if let Some(c) = &r.ceremony {
                    // The transcript's last accepted contribution and the proposal under vote.
                    named.extend(c.accepted().last().map(|(_, d)| d));
                    named.extend(c.proposal);
                    let mut d = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
                    if r.status == kms_chain_types::state::RequestStatus::Pending
                        && !c.finished(r.parties.len())
                    {
                        d.insert(id, c.deadline());
                    } else {
                        d.remove(&id);
                    }
                }
                match r.request {
                    KmsRequest::PublicDecrypt(p) => (p.ciphertexts, None),
                    KmsRequest::UserDecrypt(u) => (u.ciphertexts, Some(u.client_key_digest)),
                    _ => (Vec::new(), None),
                }
            }
            Err(_) => (Vec::new(), None),
        };
        let inputs = async {
            let cts = self.ciphertexts(&refs).await?;
            let key = match client_digest {
                Some(d) => Some(self.fetch(&d).await?),
                None => None,
            };
            // What the store lacks is left out: the enclave then needs none of it (a turn past
            // its deadline is skipped without the bytes) or refuses with the digest it lacks.
            let mut blobs = Vec::with_capacity(named.len());
            for d in &named {
                match self.fetch(d).await {
                    Ok(b) => blobs.push(b),
                    Err((error, _)) => {
                        tracing::warn!(request = %id, digest = %hex::encode(d), ?error, "ceremony bytes not in the store");
                    }
                }
            }
            Ok::<_, (Option<BlobError>, [u8; 32])>((cts, key, blobs))
        };
        let (ciphertexts, client_key, blobs) = match inputs.await {
            Ok(v) => v,
            Err((error, digest)) => {
                return Served::InputMissing { id, digest, error };
            }
        };
        let job = Job {
            evidence,
            ciphertexts,
            client_key,
            blobs,
        };
        tracing::info!(request = %id, at_unix_ms = unix_ms(), "job handed to the enclave");
        // Whatever happens below, the job's nonce lease ends with it.
        slot.nonces.begin();
        let lease = SettleOnDrop(&slot.nonces);
        let tx = match slot.enclave.serve(job).await {
            Ok(Outcome::Skip(skip)) => return Served::Skipped { id, skip },
            Ok(Outcome::Broadcast(tx)) => tx,
            Ok(Outcome::Publish { blobs, tx }) => {
                for b in &blobs {
                    if let Err(error) = self.blobs.put(b).await {
                        // Not broadcast: the others could not fetch what it names.
                        tracing::warn!(request = %id, %error, "publishing failed");
                        return Served::PublishFailed { id, error };
                    }
                }
                tx
            }
            Err(error) => return Served::EnclaveRefused { id, error },
        };
        match rpc.broadcast(tx).await {
            Ok(tx_hash) => {
                lease.0.settle(Settled::Broadcast);
                tracing::info!(request = %id, at_unix_ms = unix_ms(), "fulfillment broadcast");
                Served::Broadcast { id, tx_hash }
            }
            Err(error) => {
                // A late answer refused (the request completed meanwhile) leaves the nonce
                // free; taking it as stale would resync to the chain's committed nonce while
                // this account's accepted transactions still wait in the mempool.
                lease.0.settle(match (bad_nonce_refusal(&error), &error) {
                    (Some(log), _) => Settled::Stale(bad_nonce_expected(log)),
                    (None, ConnectorError::Refused { .. }) => Settled::Unused,
                    (None, _) => Settled::Stale(None),
                });
                tracing::warn!(request = %id, %error, "fulfillment not broadcast");
                Served::NotBroadcast { id, error }
            }
        }
    }
}

/// The log of a refusal by CheckTx for the transaction's nonce, if `error` is one.
fn bad_nonce_refusal(error: &ConnectorError) -> Option<&str> {
    match error {
        ConnectorError::Refused { code, log } if *code == CODE_BAD_NONCE => Some(log),
        _ => None,
    }
}

/// Settles a job's nonce lease as unused unless it was settled otherwise first.
struct SettleOnDrop<'a>(&'a NonceLease);

impl Drop for SettleOnDrop<'_> {
    fn drop(&mut self) {
        self.0.settle(Settled::Unused);
    }
}
