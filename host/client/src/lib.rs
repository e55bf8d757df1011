//! The KMS client library.
//!
//! Talks to a core over gRPC and trusts nothing it receives: handles are checked against the
//! expected signer, downloaded material against its signed digest, decryption results against
//! the request they answer, and user-decryption envelopes are opened and their inner signature
//! checked. The expected signer is pinned by the caller (in production: from the config
//! contract); [`KmsClient::connect`] without a pin learns it from `Health` (developer mode).

mod client;
mod encrypt;

pub use client::{ClientError, KeyGenResult, KmsClient, PollConfig, VerifiedPublicKey};
pub use encrypt::{encrypt_value, ClearValue};
