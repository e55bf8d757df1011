//! A party's inbox: messages by (sender, session), with waiting receivers, bounded per sender.
//!
//! Every buffer here is controlled by a peer, so each sender gets its own quota
//! ([`InboxLimits`]): at most `max_sessions_per_sender` pending messages and
//! `max_bytes_per_sender` bytes; when a new message would exceed it, that sender's *oldest*
//! pending messages are evicted. A flooding party therefore only ever displaces its own
//! messages, never an honest party's, and the inbox holds at most n quotas. Messages larger
//! than [`crate::MAX_MESSAGE_BYTES`] or with sessions longer than [`MAX_SESSION_BYTES`] are
//! dropped, and so are late copies of a message whose session was already taken.

use crate::NetError;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest session identifier accepted.
pub const MAX_SESSION_BYTES: usize = 256;

/// How many taken sessions per sender are remembered to drop late duplicates.
const REMEMBERED_TAKEN: usize = 4096;

/// Per-sender bounds of an [`Inbox`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxLimits {
    /// Most messages one sender may have waiting.
    pub max_sessions_per_sender: usize,
    /// Most bytes one sender may have waiting.
    pub max_bytes_per_sender: usize,
}

impl Default for InboxLimits {
    /// 1024 sessions and 2 × [`crate::MAX_MESSAGE_BYTES`] per sender: far more than the rounds
    /// of the requests a party runs at once, and a fixed bound whatever a peer sends.
    fn default() -> Self {
        Self {
            max_sessions_per_sender: 1024,
            max_bytes_per_sender: 2 * crate::MAX_MESSAGE_BYTES,
        }
    }
}

#[derive(Default)]
struct SenderQueue {
    messages: HashMap<Vec<u8>, Vec<u8>>,
    /// Arrival order of the pending sessions, oldest first.
    order: VecDeque<Vec<u8>>,
    bytes: usize,
    taken: HashSet<Vec<u8>>,
    taken_order: VecDeque<Vec<u8>>,
}

impl SenderQueue {
    fn evict_oldest(&mut self) {
        if let Some(s) = self.order.pop_front() {
            if let Some(m) = self.messages.remove(&s) {
                self.bytes -= m.len();
            }
        }
    }

    fn take(&mut self, session: &[u8]) -> Option<Vec<u8>> {
        let m = self.messages.remove(session)?;
        self.bytes -= m.len();
        self.order.retain(|s| s.as_slice() != session);
        if self.taken.insert(session.to_vec()) {
            self.taken_order.push_back(session.to_vec());
            if self.taken_order.len() > REMEMBERED_TAKEN {
                if let Some(old) = self.taken_order.pop_front() {
                    self.taken.remove(&old);
                }
            }
        }
        Some(m)
    }
}

/// What happened to a delivered message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored (possibly after evicting older messages of the same sender).
    Stored,
    /// A message from this sender for this session is already waiting; the first one stays.
    Duplicate,
    /// The session was already taken; the late copy is dropped.
    Late,
    /// Larger than [`crate::MAX_MESSAGE_BYTES`] or the sender's whole quota, or its session is
    /// longer than [`MAX_SESSION_BYTES`].
    TooLarge,
}

/// Messages waiting to be received, keyed by sender and session. Only the first message per key
/// is kept: a party cannot replace what it already said.
pub struct Inbox {
    senders: Mutex<HashMap<usize, SenderQueue>>,
    limits: InboxLimits,
    arrived: Notify,
}

impl Default for Inbox {
    fn default() -> Self {
        Self::new(InboxLimits::default())
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inbox({:?})", self.limits)
    }
}

impl Inbox {
    /// An empty inbox with these bounds.
    pub fn new(limits: InboxLimits) -> Self {
        Self {
            senders: Mutex::new(HashMap::new()),
            limits,
            arrived: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, SenderQueue>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a delivered message, within the sender's quota.
    pub fn deliver(&self, from: usize, session: &[u8], payload: Vec<u8>) -> Received {
        if payload.len() > crate::MAX_MESSAGE_BYTES
            || payload.len() > self.limits.max_bytes_per_sender
            || session.len() > MAX_SESSION_BYTES
        {
            tracing::warn!(
                from,
                bytes = payload.len(),
                "oversized party message dropped"
            );
            return Received::TooLarge;
        }
        let outcome = {
            let mut senders = self.lock();
            let q = senders.entry(from).or_default();
            if q.taken.contains(session) {
                Received::Late
            } else if q.messages.contains_key(session) {
                Received::Duplicate
            } else {
                while q.messages.len() >= self.limits.max_sessions_per_sender.max(1)
                    || q.bytes + payload.len() > self.limits.max_bytes_per_sender
                {
                    tracing::warn!(from, "party inbox quota reached; oldest message evicted");
                    q.evict_oldest();
                }
                q.bytes += payload.len();
                q.order.push_back(session.to_vec());
                q.messages.insert(session.to_vec(), payload);
                Received::Stored
            }
        };
        if outcome == Received::Stored {
            self.arrived.notify_waiters();
        }
        outcome
    }

    /// Bytes currently waiting from `from`.
    pub fn pending_bytes(&self, from: usize) -> usize {
        self.lock().get(&from).map_or(0, |q| q.bytes)
    }

    /// Takes `from`'s message in `session`, waiting at most `timeout`.
    pub async fn take(
        &self,
        from: usize,
        session: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.lock().get_mut(&from).and_then(|q| q.take(session)) {
                return Ok(m);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(NetError::Timeout {
                    from,
                    after: timeout,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_message_wins_and_silence_times_out() {
        let inbox = Inbox::default();
        assert_eq!(inbox.deliver(2, b"s", vec![1]), Received::Stored);
        // A second message cannot replace the first.
        assert_eq!(inbox.deliver(2, b"s", vec![9]), Received::Duplicate);
        assert_eq!(
            inbox.take(2, b"s", Duration::from_millis(10)).await,
            Ok(vec![1])
        );
        assert_eq!(
            inbox.take(2, b"other", Duration::from_millis(20)).await,
            Err(NetError::Timeout {
                from: 2,
                after: Duration::from_millis(20)
            })
        );
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_delivery() {
        let inbox = std::sync::Arc::new(Inbox::default());
        let i2 = inbox.clone();
        let waiter = tokio::spawn(async move { i2.take(3, b"s", Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        inbox.deliver(3, b"s", vec![7]);
        assert_eq!(waiter.await.unwrap(), Ok(vec![7]));
    }

    #[tokio::test]
    async fn a_replayed_message_after_its_session_was_taken_is_dropped() {
        let inbox = Inbox::default();
        inbox.deliver(2, b"round-1", vec![1]);
        assert_eq!(
            inbox.take(2, b"round-1", Duration::from_millis(10)).await,
            Ok(vec![1])
        );
        assert_eq!(inbox.deliver(2, b"round-1", vec![1]), Received::Late);
        assert_eq!(inbox.pending_bytes(2), 0);
    }

    #[tokio::test]
    async fn a_flooding_sender_evicts_only_its_own_messages() {
        let limits = InboxLimits {
            max_sessions_per_sender: 8,
            max_bytes_per_sender: 1000,
        };
        let inbox = Inbox::new(limits);
        assert_eq!(inbox.deliver(1, b"honest", vec![5; 10]), Received::Stored);
        for i in 0..10_000u32 {
            inbox.deliver(4, format!("junk-{i}").as_bytes(), vec![0; 300]);
        }
        // Party 4 holds at most its quota, however much it sent.
        assert!(inbox.pending_bytes(4) <= limits.max_bytes_per_sender);
        // Its newest message survives, its oldest were evicted.
        let short = Duration::from_millis(5);
        assert!(inbox.take(4, b"junk-9999", short).await.is_ok());
        assert!(inbox.take(4, b"junk-0", short).await.is_err());
        // The honest party's message is untouched.
        assert_eq!(inbox.take(1, b"honest", short).await, Ok(vec![5; 10]));
        // Too many sessions: the count bound holds too.
        for i in 0..100u32 {
            inbox.deliver(3, format!("s-{i}").as_bytes(), vec![1]);
        }
        assert!(inbox.take(3, b"s-91", short).await.is_err());
        assert!(inbox.take(3, b"s-92", short).await.is_ok());
    }

    #[test]
    fn oversized_messages_and_sessions_are_refused() {
        let inbox = Inbox::new(InboxLimits {
            max_sessions_per_sender: 8,
            max_bytes_per_sender: 100,
        });
        assert_eq!(inbox.deliver(1, b"s", vec![0; 101]), Received::TooLarge);
        assert_eq!(
            inbox.deliver(1, &[7; MAX_SESSION_BYTES + 1], vec![0]),
            Received::TooLarge
        );
        assert_eq!(inbox.pending_bytes(1), 0);
    }
}
