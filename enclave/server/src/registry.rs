//! The table of requests: idempotency, conflicts, and job state.

use kms_engine::{SignedDecryption, SignedHandle};
use kms_signcryption::Signcrypted;
use kms_types::RequestId;
use std::collections::HashMap;
use std::sync::Arc;

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
}

#[derive(Default)]
pub(crate) struct Registry {
    entries: HashMap<RequestId, Entry>,
}

impl Registry {
    pub fn admit(&mut self, id: RequestId, kind: RequestKind, fingerprint: [u8; 32]) -> Admission {
        match self.entries.get(&id) {
            Some(e) if e.kind != kind || e.fingerprint != fingerprint => Admission::Conflict,
            Some(Entry {
                state: State::Failed(Failure::Internal(_)),
                ..
            }) => {
                self.set(id, State::Running("retrying"));
                Admission::Start
            }
            Some(_) => Admission::Duplicate,
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

    pub fn set(&mut self, id: RequestId, state: State) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.state = state;
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
                state: State::Done(Arc::new(out)),
            },
        );
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
}
