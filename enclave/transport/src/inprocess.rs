//! All parties in one process.

use crate::{Inbox, NetError, Transport};
use std::sync::Arc;
use std::time::Duration;

/// A network of `n` in-process parties; [`InProcessNetwork::party`] gives each its transport.
#[derive(Debug, Clone)]
pub struct InProcessNetwork {
    inboxes: Arc<Vec<Inbox>>,
}

impl InProcessNetwork {
    /// A network of `n` parties.
    pub fn new(n: usize) -> Self {
        Self {
            inboxes: Arc::new((0..n).map(|_| Inbox::default()).collect()),
        }
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
        inbox.deliver(self.me, session, payload);
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
