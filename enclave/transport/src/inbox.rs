//! A party's inbox: messages by (sender, session), with waiting receivers.

use crate::NetError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// (sender, session) → message.
type Messages = HashMap<(usize, Vec<u8>), Vec<u8>>;

/// Messages waiting to be received, keyed by sender and session. Only the first message per key
/// is kept: a party cannot replace what it already said.
#[derive(Default)]
pub struct Inbox {
    messages: Mutex<Messages>,
    arrived: Notify,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inbox")
    }
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Messages> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a delivered message.
    pub fn deliver(&self, from: usize, session: &[u8], payload: Vec<u8>) {
        self.lock()
            .entry((from, session.to_vec()))
            .or_insert(payload);
        self.arrived.notify_waiters();
    }

    /// Takes `from`'s message in `session`, waiting at most `timeout`.
    pub async fn take(
        &self,
        from: usize,
        session: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let key = (from, session.to_vec());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.lock().remove(&key) {
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
        inbox.deliver(2, b"s", vec![1]);
        inbox.deliver(2, b"s", vec![9]); // a second message cannot replace the first
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
}
