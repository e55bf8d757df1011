//! The host's link to the KMS chain. Everything here is untrusted plumbing: the enclave verifies
//! whatever this crate fetches (headers by its light client, state by ICS23 proofs), so a bug or
//! a compromise here can delay requests, never change a result.
//!
//! * [`ChainRpc`]: CometBFT RPC calls the host needs: light blocks (commit + validators),
//!   proven state queries, block events, account nonces, transaction broadcast.
//! * [`Follower`]: walks the chain block by block from a height it persists, woken by a
//!   websocket `NewBlock` subscription where the node offers one and by polling otherwise, and
//!   reports the ASC's events of each block.

#![forbid(unsafe_code)]

mod error;
mod follow;
mod rpc;

pub use error::ConnectorError;
pub use follow::{ChainEvent, Follower, Wakeup};
pub use rpc::ChainRpc;
