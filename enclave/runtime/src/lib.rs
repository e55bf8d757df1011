//! A party's enclave runtime: what runs inside the trusted boundary for each request.
//!
//! [`PartyRuntime::serve`] takes a [`Job`] from the (untrusted) host and
//! 1. reads the time from the enclave's own [`Clock`], never from the host ([`AttestedClock`]:
//!    the enclave clock, refused when a fresh NSM attestation document's timestamp disagrees);
//! 2. verifies with its own light client that the request sits approved in ASC state
//!    (header chain from its trusted state, ICS23 proof against the app hash);
//! 3. acts only on the approved record: request and key IDs come from it, the ciphertexts and
//!    the client key the host handed over must hash to the approved digests;
//! 4. runs the operation (threshold public decryption over the party transport, or its share of
//!    a user decryption, or reports the key material it holds, or refreshes its key share with
//!    the other parties when the ASC asks for a resharing) and signs the fulfillment
//!    transaction with the party's registered key, which never leaves the runtime.
//!
//! Decryptions are served with the share of the key epoch the approved record names; a
//! resharing's new share is sealed as pending, reported, and taken up (the old share erased)
//! only once the chain completed the resharing with this party's verdict ([`share_store`]).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod clock;
mod party;
pub mod process;
pub mod registration;
pub mod sealed_blobs;
pub mod sealing;
pub mod served_store;
pub mod share_store;
pub mod state;

pub use clock::{AttestedClock, Clock, ClockError, SystemClock};
pub use party::{PartyRuntime, RuntimeError, RuntimeParts};
