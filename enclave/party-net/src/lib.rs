//! Party-to-party messaging as the protocols see it: the [`Transport`] trait, sessions and
//! deadlines, bounded inboxes, and the in-process network. Pure (no sockets, no TLS): the
//! threshold protocols depend on this crate only; the gRPC-over-attested-TLS implementation
//! lives in `kms-transport`, with the runtime.
//!
//! The protocols assume a **synchronous network**: every message between honest parties arrives
//! within a known bound. A party that has not delivered by the deadline is treated as faulty
//! (its share is `None`), which robust opening tolerates for up to `t` parties. Messages are
//! keyed by session (request ID, protocol kind, index), so concurrent requests never mix.
//!
//! * [`InProcessNetwork`]: all parties in one process (tests, benchmarks).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod inbox;
mod inprocess;

pub use inbox::{Inbox, InboxLimits, Received, MAX_SESSION_BYTES};
pub use inprocess::{Delivery, InProcessNetwork, InProcessParty, MessageFilter};

use std::time::Duration;

/// Largest party message accepted, in every transport. The largest message the protocols send
/// today is a public-decryption batch of `kms_engine::MAX_BATCH` = 1024 FheUint256 ciphertexts:
/// 128 blocks × 64 bytes of shares each, 8 MiB; 32 MiB leaves room for framing and growth.
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;

/// Transport failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// No message from that party for that session before the deadline.
    #[error("party {from} sent nothing for this session within {after:?}")]
    Timeout {
        /// The silent party.
        from: usize,
        /// How long we waited.
        after: Duration,
    },
    /// The party index is out of range.
    #[error("no party {0}")]
    UnknownParty(usize),
    /// Sending failed.
    #[error("send to party {to}: {reason}")]
    Send {
        /// Destination.
        to: usize,
        /// Why.
        reason: String,
    },
}

/// Checks that `p` names one of the `n` parties (1-based).
pub fn check_party(p: usize, n: usize) -> Result<(), NetError> {
    if p == 0 || p > n {
        return Err(NetError::UnknownParty(p));
    }
    Ok(())
}

/// One party's view of the network.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// This party's index (1-based).
    fn me(&self) -> usize;
    /// Number of parties.
    fn n(&self) -> usize;
    /// Sends `payload` to party `to` in `session`.
    async fn send(&self, to: usize, session: &[u8], payload: Vec<u8>) -> Result<(), NetError>;
    /// Waits for party `from`'s message in `session`, at most `timeout`.
    async fn recv(
        &self,
        from: usize,
        session: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError>;
}

/// Sends `payload` to every other party, to all at once (a slow or unreachable peer delays
/// nobody else); failures are logged: an unreachable peer is faulty.
pub async fn broadcast(t: &dyn Transport, session: &[u8], payload: &[u8]) {
    let sends = (1..=t.n())
        .filter(|&p| p != t.me())
        .map(|to| async move { (to, t.send(to, session, payload.to_vec()).await) });
    for (to, r) in futures::future::join_all(sends).await {
        if let Err(e) = r {
            tracing::warn!(to, error = %e, "send failed; the peer will be treated as faulty");
        }
    }
}

/// Collects every other party's message for `session` until `deadline` (one deadline for all):
/// `out[p - 1]` is party `p`'s message, `None` if it stayed silent; this party's slot is `None`.
pub async fn gather(t: &dyn Transport, session: &[u8], deadline: Duration) -> Vec<Option<Vec<u8>>> {
    let start = tokio::time::Instant::now();
    let mut out = vec![None; t.n()];
    for from in (1..=t.n()).filter(|&p| p != t.me()) {
        let left = deadline.saturating_sub(start.elapsed());
        match t.recv(from, session, left).await {
            Ok(m) => {
                if let Some(slot) = out.get_mut(from - 1) {
                    *slot = Some(m);
                }
            }
            Err(e) => tracing::warn!(from, error = %e, "treating party as faulty for this session"),
        }
    }
    out
}
