//! The host loop: chain events in, jobs to the enclave, signed transactions out.

use crate::{BlobError, Blobs};
use kms_chain_types::codec;
use kms_chain_types::state::RequestRecord;
use kms_chain_types::tx::KmsRequest;
use kms_chain_types::Address;
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

/// One party's host.
pub struct PartyHost<E: Enclave> {
    follower: Follower,
    enclave: Arc<E>,
    blobs: Blobs,
    address: Address,
    next_nonce: u64,
}

impl<E: Enclave> PartyHost<E> {
    /// A host following the chain with `follower`, serving its `enclave` (whose party account
    /// is `address`), fetching inputs from `blobs`.
    pub fn new(follower: Follower, enclave: Arc<E>, blobs: Blobs, address: Address) -> Self {
        Self {
            follower,
            enclave,
            blobs,
            address,
            next_nonce: 0,
        }
    }

    /// The chain follower.
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// Waits for the next block, serves the requests it approved, records the block as done.
    pub async fn step(&mut self) -> Result<(u64, Vec<Served<E::Error>>), HostError> {
        let (h, events) = self.follower.next_block().await?;
        let mut served = Vec::new();
        for e in events {
            if let ChainEvent::Request { id, kind } = e {
                tracing::info!(height = h, request = %id, kind, "approved request");
                let s = self.serve(id, h).await;
                let retry = match &s {
                    Served::EnclaveRefused { error, .. } => E::unavailable(error),
                    // The node did not answer: the block is handled again.
                    Served::NoEvidence { .. } => true,
                    _ => false,
                };
                if retry {
                    // Not refused: unreachable. Nothing of this block counts as handled.
                    self.follower.rewind(h);
                    return Err(match s {
                        Served::NoEvidence { error, .. } => HostError::Chain(error),
                        _ => HostError::EnclaveUnavailable { height: h },
                    });
                }
                served.push(s);
            }
        }
        self.follower.done().await?;
        Ok((h, served))
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

    async fn serve(&mut self, id: RequestId, h: u64) -> Served<E::Error> {
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
        let (refs, client_digest) = match codec::decode::<RequestRecord>(&evidence.value) {
            Ok(r) => match r.request {
                KmsRequest::PublicDecrypt(p) => (p.ciphertexts, None),
                KmsRequest::UserDecrypt(u) => (u.ciphertexts, Some(u.client_key_digest)),
                _ => (Vec::new(), None),
            },
            Err(_) => (Vec::new(), None),
        };
        let inputs = async {
            let cts = self.ciphertexts(&refs).await?;
            let key = match client_digest {
                Some(d) => Some(self.fetch(&d).await?),
                None => None,
            };
            Ok::<_, (Option<BlobError>, [u8; 32])>((cts, key))
        };
        let (ciphertexts, client_key) = match inputs.await {
            Ok(v) => v,
            Err((error, digest)) => {
                return Served::InputMissing { id, digest, error };
            }
        };
        let chain_nonce = rpc.next_nonce(&self.address).await.unwrap_or(0);
        let nonce = self.next_nonce.max(chain_nonce);
        let job = Job {
            evidence,
            ciphertexts,
            client_key,
            nonce,
        };
        tracing::info!(request = %id, at_unix_ms = unix_ms(), "job handed to the enclave");
        match self.enclave.serve(job).await {
            Ok(Outcome::Skip(skip)) => Served::Skipped { id, skip },
            Ok(Outcome::Broadcast(tx)) => match rpc.broadcast(tx).await {
                Ok(tx_hash) => {
                    self.next_nonce = nonce + 1;
                    tracing::info!(request = %id, at_unix_ms = unix_ms(), "fulfillment broadcast");
                    Served::Broadcast { id, tx_hash }
                }
                Err(error) => {
                    // The nonce may have been wrong (a transaction of ours dropped): start again
                    // from the chain's next time.
                    self.next_nonce = chain_nonce;
                    Served::NotBroadcast { id, error }
                }
            },
            Err(error) => Served::EnclaveRefused { id, error },
        }
    }
}
