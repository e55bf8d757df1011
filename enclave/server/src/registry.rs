//! The table of requests: idempotency, conflicts, and job state.
//!
//! The table is bounded: at most [`MAX_PENDING`] requests run or wait at once (more are refused
//! as busy), and at most [`MAX_FINISHED_DECRYPTIONS`] finished decryptions stay in memory; older
//! ones are evicted (the core has already stored their results, and reloads them on demand).
//! Key and CRS generations stay: they are few, and their material is what the service is for.

use kms_engine::{SignedDecryption, SignedHandle};
use kms_signcryption::Signcrypted;
use kms_types::RequestId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Most requests running or queued at once.
pub const MAX_PENDING: usize = 256;
/// Most finished decryptions kept in memory.
pub const MAX_FINISHED_DECRYPTIONS: usize = 1024;

/// The kind of a request; an ID is bound to one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Key generation.
    KeyGen,
    /// CRS generation.
    CrsGen,
    /// Public decryption.
    PublicDecrypt,
    /// User decryption.
    UserDecrypt,
}

/// A finished request's result.
#[derive(Clone, Debug)]
pub enum Output {
    /// Handles of the server key and public key.
    KeyGen(Vec<SignedHandle>),
    /// Handle of the CRS.
    CrsGen(SignedHandle),
    /// Signed plaintexts.
    PublicDecrypt(SignedDecryption),
    /// Signcrypted plaintexts.
    UserDecrypt(Signcrypted),
}

/// A failure, kept so that `Get*` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The request's content is invalid (malformed ciphertext, wrong key, …); retrying the same
    /// request fails the same way.
    Invalid(String),
    /// The named key is unknown.
    UnknownKey(String),
    /// An internal or transient failure (storage, sealing); the same request may be retried.
    Internal(String),
}

#[derive(Clone, Debug)]
pub(crate) enum State {
    Running(&'static str),
    Done(Arc<Output>),
    Failed(Failure),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub kind: RequestKind,
    pub fingerprint: [u8; 32],
    pub state: State,
}

/// What inserting a request found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// New (or a retry of an internal failure): start the job.
    Start,
    /// Already known with the same content: nothing to do.
    Duplicate,
    /// Known with different content or kind.
    Conflict,
    /// New, but [`MAX_PENDING`] requests are already running.
    Busy,
}

impl RequestKind {
    fn is_decryption(self) -> bool {
        matches!(self, RequestKind::PublicDecrypt | RequestKind::UserDecrypt)
    }
}

pub(crate) struct Registry {
    entries: HashMap<RequestId, Entry>,
    /// Finished decryptions in the order they finished, oldest first.
    finished: VecDeque<RequestId>,
    max_pending: usize,
    max_finished: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_limits(MAX_PENDING, MAX_FINISHED_DECRYPTIONS)
    }
}

impl Registry {
    pub fn with_limits(max_pending: usize, max_finished: usize) -> Self {
        Self {
            entries: HashMap::new(),
            finished: VecDeque::new(),
            max_pending,
            max_finished,
        }
    }

    fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.state, State::Running(_)))
            .count()
    }

    pub fn admit(&mut self, id: RequestId, kind: RequestKind, fingerprint: [u8; 32]) -> Admission {
        let busy = self.pending() >= self.max_pending;
        match self.entries.get(&id) {
            Some(e) if e.kind != kind || e.fingerprint != fingerprint => Admission::Conflict,
            Some(Entry {
                state: State::Failed(Failure::Internal(_)),
                ..
            }) if busy => Admission::Busy,
            Some(Entry {
                state: State::Failed(Failure::Internal(_)),
                ..
            }) => {
                self.set(id, State::Running("retrying"));
                Admission::Start
            }
            Some(_) => Admission::Duplicate,
            None if busy => Admission::Busy,
            None => {
                self.entries.insert(
                    id,
                    Entry {
                        kind,
                        fingerprint,
                        state: State::Running("queued"),
                    },
                );
                Admission::Start
            }
        }
    }

    /// Sets a request's state. A decryption that finished joins the finished queue, and the
    /// oldest finished decryptions beyond the bound leave memory.
    pub fn set(&mut self, id: RequestId, state: State) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let finished = !matches!(state, State::Running(_));
        e.state = state;
        if finished && e.kind.is_decryption() && !self.finished.contains(&id) {
            self.finished.push_back(id);
            while self.finished.len() > self.max_finished {
                if let Some(old) = self.finished.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    pub fn insert_done(
        &mut self,
        id: RequestId,
        kind: RequestKind,
        fingerprint: [u8; 32],
        out: Output,
    ) {
        self.entries.insert(
            id,
            Entry {
                kind,
                fingerprint,
                state: State::Running("restoring"),
            },
        );
        self.set(id, State::Done(Arc::new(out)));
    }

    /// Number of requests in memory.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, id: &RequestId) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn done_outputs(&self) -> Vec<Arc<Output>> {
        self.entries
            .values()
            .filter_map(|e| match &e.state {
                State::Done(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_rules() {
        let mut r = Registry::default();
        let id = RequestId::derive("t", b"");
        assert_eq!(r.admit(id, RequestKind::KeyGen, [1; 32]), Admission::Start);
        assert_eq!(
            r.admit(id, RequestKind::KeyGen, [1; 32]),
            Admission::Duplicate
        );
        assert_eq!(
            r.admit(id, RequestKind::KeyGen, [2; 32]),
            Admission::Conflict
        );
        assert_eq!(
            r.admit(id, RequestKind::CrsGen, [1; 32]),
            Admission::Conflict
        );
        r.set(id, State::Failed(Failure::Invalid("x".into())));
        assert_eq!(
            r.admit(id, RequestKind::KeyGen, [1; 32]),
            Admission::Duplicate
        );
        r.set(id, State::Failed(Failure::Internal("disk full".into())));
        assert_eq!(r.admit(id, RequestKind::KeyGen, [1; 32]), Admission::Start);
    }

    fn id(i: u32) -> RequestId {
        RequestId::derive("t", &i.to_be_bytes())
    }

    #[test]
    fn pending_requests_are_bounded() {
        let mut r = Registry::with_limits(3, 10);
        for i in 0..3 {
            assert_eq!(
                r.admit(id(i), RequestKind::PublicDecrypt, [0; 32]),
                Admission::Start
            );
        }
        assert_eq!(
            r.admit(id(3), RequestKind::PublicDecrypt, [0; 32]),
            Admission::Busy
        );
        // A known request is still answered while busy.
        assert_eq!(
            r.admit(id(0), RequestKind::PublicDecrypt, [0; 32]),
            Admission::Duplicate
        );
        r.set(id(0), State::Failed(Failure::Invalid("bad".into())));
        assert_eq!(
            r.admit(id(3), RequestKind::PublicDecrypt, [0; 32]),
            Admission::Start
        );
    }

    #[test]
    fn finished_decryptions_are_evicted_oldest_first_keys_stay() {
        let mut r = Registry::with_limits(100, 4);
        let key = id(1000);
        assert_eq!(r.admit(key, RequestKind::KeyGen, [0; 32]), Admission::Start);
        r.set(key, State::Failed(Failure::Invalid("x".into())));
        for i in 0..50 {
            assert_eq!(
                r.admit(id(i), RequestKind::UserDecrypt, [0; 32]),
                Admission::Start
            );
            r.set(id(i), State::Failed(Failure::Invalid("x".into())));
        }
        assert_eq!(r.len(), 5, "4 decryptions and the key generation");
        assert!(r.get(&key).is_some());
        assert!(r.get(&id(45)).is_none());
        assert!(r.get(&id(46)).is_some());
        assert!(r.get(&id(49)).is_some());
    }
}
