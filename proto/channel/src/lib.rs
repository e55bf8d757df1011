//! The host⇄enclave interface of one party.
//!
//! The host follows the chain and, for each approved request, hands its enclave a [`Job`]: the
//! untrusted evidence that the request sits approved in ASC state and the inputs the request
//! names by digest (ciphertexts, the client's encryption key). The enclave verifies everything
//! itself and answers with an [`Outcome`]: a transaction it signed with the party's key, which
//! the host only broadcasts, or the reason it does nothing.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod addr;
pub mod mux;
pub mod wire;

use kms_light_client::RequestEvidence;
use kms_types::TypedCiphertext;
use serde::{Deserialize, Serialize};

/// One request for the enclave to serve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// Evidence that the request is approved (the enclave's light client verifies it).
    pub evidence: RequestEvidence,
    /// The ciphertexts the request names, in its order (checked against the approved digests).
    pub ciphertexts: Vec<TypedCiphertext>,
    /// The client's encryption key of a user decryption (checked against the approved digest).
    pub client_key: Option<Vec<u8>>,
    /// Public bytes the approved record names by SHA3-256 digest (a CRS ceremony's last
    /// accepted contribution and the proposal under vote); the enclave uses only those whose
    /// digest the record names.
    #[serde(default)]
    pub blobs: Vec<Vec<u8>>,
}

/// Why an enclave did nothing for a verified request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Skip {
    /// This party already answered it (its answer is on chain).
    AlreadyAnswered,
    /// The request is complete and a late answer adds nothing.
    Complete,
    /// This party is not in the request's frozen party set.
    NotInPartySet,
    /// The request expired on chain (its fee went back; no answer is accepted).
    Expired,
    /// Nothing for this party to do yet (a CRS ceremony waiting on another party's turn).
    Waiting,
}

/// The enclave's answer to a [`Job`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A transaction signed by the party's key, for the host to broadcast.
    Broadcast(Vec<u8>),
    /// Public bytes for the host to store under their SHA3-256 (where the other parties' hosts
    /// and the clients fetch them), then a transaction naming them to broadcast.
    Publish {
        /// The bytes (a ceremony contribution, or the assembled CRS).
        blobs: Vec<Vec<u8>>,
        /// The transaction.
        tx: Vec<u8>,
    },
    /// Nothing to send.
    Skip(Skip),
}

/// Why no nonce could be had for the party account's next transaction.
#[derive(Debug, thiserror::Error)]
#[error("no nonce for the party account: {source}")]
pub struct NonceError {
    /// What failed (the chain, the channel, or the host's refusal).
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl NonceError {
    /// A nonce error caused by `source`.
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Box::new(source),
        }
    }
}

/// Where an enclave gets the nonce of the transaction it is about to sign: its host, which
/// leases it. The party has one chain account and the chain wants its nonces in order, so with
/// several enclaves (or jobs) signing for one account, a nonce is handed out only when a
/// transaction is about to be signed, and not again until the host has broadcast (or dropped)
/// that transaction. The nonce is not trusted for anything: a wrong one only makes the
/// transaction fail, which a host could cause anyway by not broadcasting it.
#[async_trait::async_trait]
pub trait NonceSource: Send + Sync {
    /// The nonce for the next transaction (held for the asking job until its host settles it).
    async fn next_nonce(&self) -> Result<u64, NonceError>;
}

/// A party's enclave, as its host reaches it (in-process, Unix socket or vsock).
#[async_trait::async_trait]
pub trait Enclave: Send + Sync {
    /// The error the enclave reports (typed by the implementation; the host only logs it).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Serves one request.
    async fn serve(&self, job: Job) -> Result<Outcome, Self::Error>;

    /// Whether `error` means the enclave could not be reached (the job was not refused, it
    /// must be handed over again once the enclave is back).
    fn unavailable(_error: &Self::Error) -> bool {
        false
    }
}
