//! The light client the enclave runs to decide, by itself, whether a request is on the KMS chain.
//!
//! Everything here is pure: no I/O, no clock (the caller passes `now`), no trust in whoever
//! delivered the data. The host fetches light blocks, transactions and proofs; this crate checks
//! them:
//!
//! * [`LightClient`]: a trusted state advanced by verified headers (tendermint-rs's verifier:
//!   sequential and skipping verification, trust threshold, trusting period, clock drift), started
//!   from a genesis validator set or a trusted light block. A successful update yields a
//!   [`VerifiedHeader`], which only this crate can construct.
//! * [`tx_proof`]: transaction inclusion against a header's `data_hash` (CometBFT's simple Merkle
//!   tree over SHA-256 of each transaction).
//! * [`state_proof`]: ICS23 proofs of the app's Jellyfish Merkle state against `app_hash`.
//! * [`approval`]: "was request R finalized and approved by the ASC as of this verified header?"
//! * [`evidence`]: the evidence a host hands its enclave for one request, verified in one call.
//!
//! Each way of failing has its own [`Error`] variant.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod approval;
mod error;
pub mod evidence;
mod header;
pub mod state_proof;
pub mod tx_proof;

pub use approval::{verify_request_approved, ApprovedRequest};
pub use error::Error;
pub use evidence::{ConfigEvidence, RequestEvidence};
pub use header::{LightClient, VerifiedHeader};
pub use tendermint_light_client_verifier::options::Options;
pub use tendermint_light_client_verifier::types::LightBlock;
