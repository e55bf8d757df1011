//! All parties in one process, with a fault-injection hook for tests.

use crate::{Inbox, NetError, Transport};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What the [`InProcessNetwork::set_filter`] hook does with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Deliver the message as sent.
    Deliver,
    /// Drop it silently (the sender sees success, as with a host that drops it).
    Drop,
    /// Deliver it after a delay (a host that holds it back).
    Delay(Duration),
    /// Deliver these bytes instead (a host or network that tampers with it).
    Replace(Vec<u8>),
}

/// The hook: `(from, to, session, payload) → what happens`.
pub type MessageFilter = dyn Fn(usize, usize, &[u8], &[u8]) -> Delivery + Send + Sync;

/// A network of `n` in-process parties; [`InProcessNetwork::party`] gives each its transport.
#[derive(Clone)]
pub struct InProcessNetwork {
    inboxes: Arc<Vec<Inbox>>,
    filter: Arc<RwLock<Option<Arc<MessageFilter>>>>,
}

impl std::fmt::Debug for InProcessNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InProcessNetwork({} parties)", self.inboxes.len())
    }
}

impl InProcessNetwork {
    /// A network of `n` parties.
    pub fn new(n: usize) -> Self {
        Self {
            inboxes: Arc::new((0..n).map(|_| Inbox::default()).collect()),
            filter: Arc::new(RwLock::new(None)),
        }
    }

    /// **Test-only fault injection** (the in-process network exists for tests and benchmarks):
    /// every message sent from now on goes through `filter`, which plays the untrusted hosts
    /// and network — it may drop, delay or replace any message between any two parties.
    /// Messages a party sends to itself do not exist (parties keep their own share).
    pub fn set_filter(
        &self,
        filter: impl Fn(usize, usize, &[u8], &[u8]) -> Delivery + Send + Sync + 'static,
    ) {
        let mut g = self.filter.write().unwrap_or_else(|p| p.into_inner());
        *g = Some(Arc::new(filter));
    }

    /// Removes the filter: messages are delivered as sent again.
    pub fn clear_filter(&self) {
        let mut g = self.filter.write().unwrap_or_else(|p| p.into_inner());
        *g = None;
    }

    fn current_filter(&self) -> Option<Arc<MessageFilter>> {
        self.filter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Party `me`'s transport (1-based).
    pub fn party(&self, me: usize) -> InProcessParty {
        InProcessParty {
            me,
            net: self.clone(),
        }
    }
}

/// One party's endpoint on an [`InProcessNetwork`].
#[derive(Debug, Clone)]
pub struct InProcessParty {
    me: usize,
    net: InProcessNetwork,
}

#[async_trait::async_trait]
impl Transport for InProcessParty {
    fn me(&self) -> usize {
        self.me
    }
    fn n(&self) -> usize {
        self.net.inboxes.len()
    }
    async fn send(&self, to: usize, session: &[u8], payload: Vec<u8>) -> Result<(), NetError> {
        let inbox = self
            .net
            .inboxes
            .get(to.wrapping_sub(1))
            .ok_or(NetError::UnknownParty(to))?;
        let delivery = match self.net.current_filter() {
            Some(f) => f(self.me, to, session, &payload),
            None => Delivery::Deliver,
        };
        match delivery {
            Delivery::Deliver => {
                inbox.deliver(self.me, session, payload);
            }
            Delivery::Drop => {}
            Delivery::Replace(other) => {
                inbox.deliver(self.me, session, other);
            }
            Delivery::Delay(d) => {
                let (net, from, to, session) = (self.net.clone(), self.me, to, session.to_vec());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    if let Some(inbox) = net.inboxes.get(to.wrapping_sub(1)) {
                        inbox.deliver(from, &session, payload);
                    }
                });
            }
        }
        Ok(())
    }
    async fn recv(
        &self,
        from: usize,
        session: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        crate::check_party(from, self.n())?;
        let inbox = self
            .net
            .inboxes
            .get(self.me - 1)
            .ok_or(NetError::UnknownParty(self.me))?;
        inbox.take(from, session, timeout).await
    }
}
