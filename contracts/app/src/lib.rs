//! The KMS blockchain application (ABCI 2.0, CometBFT 0.38).
//!
//! Contracts, each a module of deterministic functions over the transaction context:
//! * [`config`]: parties, threshold, fees, admins, EIP-712 domain.
//! * [`asc`]: requests (validation, ISC check, request ID, fee escrow, events) and the parties'
//!   fulfillments (EIP-712 checked, completion on t + 1 matching results or all shares).
//! * [`ceremony`]: the CRS ceremony's turns, decided on chain (proposal, votes, deadline).
//! * [`isc`]: the per-application inclusion-proof contract interface and the ACL implementation.
//! * [`tokens`]: balances, faucet, fees.
//!
//! State lives in [`store::MerkleStore`], a Jellyfish Merkle tree whose root is the app hash and
//! which answers `abci_query` with ICS23 proofs. [`abci::KmsApp`] is the ABCI application.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod abci;
pub mod asc;
pub mod ceremony;
pub mod config;
pub mod ctx;
pub mod error;
pub mod exec;
pub mod isc;
pub mod persist;
pub mod store;
pub mod tokens;

pub use abci::{KmsApp, PROOF_OP_TYPE, QUERY_STORE};
pub use error::TxError;
