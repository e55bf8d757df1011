//! The KMS client library.
//!
//! Talks to a core over gRPC and trusts nothing it receives: handles are checked against the
//! expected signer, downloaded material against its signed digest, decryption results against
//! the request they answer, and user-decryption envelopes are opened and their inner signature
//! checked. The expected signer, the EIP-712 domain and the public material's base URI are
//! pinned by the caller ([`Pinned`]; in production from the config contract and the deployment);
//! [`KmsClient::connect`] without a pin learns them from `Health` (developer mode only).
//! Downloads go to the URI derived from a handle and the pinned base, never to a URI the server
//! sends, and read at most the size the data type can have.

#![forbid(unsafe_code)]

mod client;
mod encrypt;

pub use client::{ClientError, KeyGenResult, KmsClient, Pinned, PollConfig, VerifiedPublicKey};
pub use encrypt::{encrypt_value, ClearValue};
