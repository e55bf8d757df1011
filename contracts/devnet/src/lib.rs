//! Developer-mode KMS chain.
//!
//! * [`chain::Chain`]: runs the ABCI app (`kms-chain-app`) and produces genuine CometBFT 0.38
//!   blocks (every header field computed as CometBFT does, commits signed by `n` ed25519
//!   validator keys).
//! * [`hashing`]: the CometBFT-derived header fields.
//!
//! Production runs the same app under a real CometBFT node; the hosts use the same RPC calls.

pub mod chain;
pub mod dev;
pub mod hashing;

pub use chain::{Chain, ChainError, Genesis, StoredBlock, ValidatorKey};
