//! The data model of the KMS blockchain, shared by the ABCI application (`kms-chain-app`), the
//! enclave's light client (`kms-light-client`) and clients.
//!
//! * [`tx`]: signed transactions (secp256k1, the same keys and addresses as EIP-712 signers).
//! * [`state`]: the records the contracts store and the keys they are stored under; a light
//!   client proves these records against `app_hash` with ICS23.
//! * [`codec`]: the deterministic CBOR encoding of both.
//!
//! Pure: no I/O, no clock.

#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod state;
pub mod tx;

pub use codec::CodecError;
pub use kms_eip712::Address;
