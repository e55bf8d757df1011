//! Developer-mode KMS chain.
//!
//! * [`chain::Chain`]: runs the ABCI app (`kms-chain-app`) and produces genuine CometBFT 0.38
//!   blocks (every header field computed as CometBFT does, commits signed by `n` ed25519
//!   validator keys).
//! * [`hashing`]: the CometBFT-derived header fields.
//! * [`persist`]: genesis + block log; restart replays to the same state and block IDs.
//! * [`node`] and [`rpc`]: a block producer and the CometBFT JSON-RPC subset the hosts use.
//! * [`dev`]: developer keys (admin, parties, validators) and wallets.
//!
//! Production runs the same app under a real CometBFT node; the hosts use the same RPC calls.

#![forbid(unsafe_code)]

pub mod chain;
pub mod dev;
pub mod hashing;
pub mod node;
pub mod persist;
pub mod rpc;

pub use chain::{Chain, ChainError, Genesis, StoredBlock, ValidatorKey};
pub use node::Node;
pub use persist::{PersistError, PersistentChain};
