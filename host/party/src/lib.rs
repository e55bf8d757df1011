//! A party's untrusted host.
//!
//! * [`Blobs`]: the content-addressed store the host fetches ciphertexts and client keys from
//!   (the chain carries only their SHA3-256 digests); every read is checked against its digest.
//! * [`PartyHost`]: the loop. It follows the chain with its [`kms_connector::Follower`]; for each
//!   approved request it fetches the evidence (light block and ICS23 proof) and the inputs the
//!   request names, hands the [`kms_channel::Job`] to its enclave, and broadcasts the signed
//!   transaction the enclave returns. It decides nothing: whatever it gets wrong, the enclave
//!   refuses. A party may run several enclaves (slots): each request goes to one of them by
//!   its ID ([`slot_of`]), the slots serve side by side, and their transactions take the party
//!   account's nonces through [`Nonces`] leases.

#![forbid(unsafe_code)]

pub mod aws;
mod blobs;
pub mod limit;
pub mod nonce;
pub mod process;
mod serve;

pub use blobs::{BlobError, Blobs};
pub use nonce::{NonceLease, Nonces, Settled};
pub use serve::{slot_of, HostError, PartyHost, Served, Slot};
