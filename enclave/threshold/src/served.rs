//! What a party has served: one request ID is served with one content, ever.
//!
//! Flooding masks are bound to the request (see [`crate::DecryptionSession`]), and serving the
//! same request twice with the same content opens the same values again, which reveals nothing
//! new. Serving a request ID with *other* content must never happen: [`ServedLog`] records,
//! before any share leaves the party, `(key ID, request ID) → content digest`, refuses the
//! request ID with another digest ([`ThresholdError::RequestReplayed`]) and returns the stored
//! result for the same digest once finished.
//!
//! Durability is the storage's: [`ServedStore`] is the seam the runtime implements over its
//! sealed storage (a record must be durable when `store` returns). [`MemoryServedStore`] is for
//! tests and developer mode.

use crate::ThresholdError;
use kms_types::{FheType, RequestId};
use sha3::{Digest, Sha3_256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Durable key-value storage for the served log.
pub trait ServedStore: Send + Sync {
    /// The record under `key`, if any.
    fn load(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// Stores `value` under `key`, durably, replacing any previous record.
    fn store(&self, key: &[u8], value: &[u8]) -> Result<(), String>;
}

impl<T: ServedStore + ?Sized> ServedStore for std::sync::Arc<T> {
    fn load(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        (**self).load(key)
    }
    fn store(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        (**self).store(key, value)
    }
}

/// In-memory [`ServedStore`] (tests, developer mode): not durable.
#[derive(Default, Debug)]
pub struct MemoryServedStore {
    records: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

impl ServedStore for MemoryServedStore {
    fn load(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let g = self.records.lock().map_err(|_| "poisoned".to_string())?;
        Ok(g.get(key).cloned())
    }
    fn store(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut g = self.records.lock().map_err(|_| "poisoned".to_string())?;
        g.insert(key.to_vec(), value.to_vec());
        Ok(())
    }
}

/// What [`ServedLog::begin`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// Not served yet, or started with the same content and not finished (a crash): serve it
    /// (the same content gives the same openings).
    Serve,
    /// Served with the same content: the stored result.
    Done(Vec<u8>),
}

/// The served log over a [`ServedStore`].
///
/// Record: key `"kms/served/v1" ‖ key ID ‖ request ID`; value `content digest (32) ‖ state
/// (0 = started, 1 = done) ‖ result`.
pub struct ServedLog {
    store: Box<dyn ServedStore>,
    /// Serializes `begin`'s load-then-store, so two concurrent requests with one ID and
    /// different content cannot both be told to serve.
    begin_lock: std::sync::Mutex<()>,
}

impl std::fmt::Debug for ServedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServedLog")
    }
}

/// The digest of a request's content, which a request ID may be served with only once:
/// `SHA3-256("kms/served-content/v1" ‖ u64 len(kind) ‖ kind ‖ key ID ‖ request ID ‖ u64 count ‖
/// (type ‖ ciphertext digest)… ‖ u64 len(extra) ‖ extra)`; `extra` is e.g. the client's
/// public-key digest for a user decryption.
pub fn request_content_digest(
    kind: &str,
    key_id: &RequestId,
    request_id: &RequestId,
    ciphertexts: &[(FheType, [u8; 32])],
    extra: &[u8],
) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"kms/served-content/v1");
    h.update((kind.len() as u64).to_be_bytes());
    h.update(kind.as_bytes());
    h.update(key_id.as_bytes());
    h.update(request_id.as_bytes());
    h.update((ciphertexts.len() as u64).to_be_bytes());
    for (t, d) in ciphertexts {
        h.update([t.wire()]);
        h.update(d);
    }
    h.update((extra.len() as u64).to_be_bytes());
    h.update(extra);
    h.finalize().into()
}

impl ServedLog {
    /// A log over `store`.
    pub fn new(store: impl ServedStore + 'static) -> Self {
        Self {
            store: Box::new(store),
            begin_lock: std::sync::Mutex::new(()),
        }
    }

    /// A log in memory (tests, developer mode).
    pub fn in_memory() -> Self {
        Self::new(MemoryServedStore::default())
    }

    fn key(key_id: &RequestId, request_id: &RequestId) -> Vec<u8> {
        let mut k = b"kms/served/v1".to_vec();
        k.extend_from_slice(key_id.as_bytes());
        k.extend_from_slice(request_id.as_bytes());
        k
    }

    /// Called before serving: refuses a request ID already seen with other content, returns the
    /// stored result if the same content was served, and otherwise records the content
    /// (durably) and says to serve.
    pub fn begin(
        &self,
        key_id: &RequestId,
        request_id: &RequestId,
        content: &[u8; 32],
    ) -> Result<Served, ThresholdError> {
        let key = Self::key(key_id, request_id);
        let _one_at_a_time = self.begin_lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.store.load(&key).map_err(ThresholdError::Storage)? {
            Some(rec) => {
                let (digest, rest) = rec
                    .split_first_chunk::<32>()
                    .ok_or_else(|| ThresholdError::Storage("truncated record".into()))?;
                if digest != content {
                    return Err(ThresholdError::RequestReplayed {
                        key_id: *key_id,
                        request_id: *request_id,
                    });
                }
                match rest.split_first() {
                    Some((1, result)) => Ok(Served::Done(result.to_vec())),
                    Some((0, _)) => Ok(Served::Serve),
                    _ => Err(ThresholdError::Storage("bad record state".into())),
                }
            }
            None => {
                let mut rec = content.to_vec();
                rec.push(0);
                self.store
                    .store(&key, &rec)
                    .map_err(ThresholdError::Storage)?;
                Ok(Served::Serve)
            }
        }
    }

    /// Records the result of a request served with `content`.
    pub fn finish(
        &self,
        key_id: &RequestId,
        request_id: &RequestId,
        content: &[u8; 32],
        result: &[u8],
    ) -> Result<(), ThresholdError> {
        let mut rec = content.to_vec();
        rec.push(1);
        rec.extend_from_slice(result);
        self.store
            .store(&Self::key(key_id, request_id), &rec)
            .map_err(ThresholdError::Storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Failing;
    impl ServedStore for Failing {
        fn load(&self, _: &[u8]) -> Result<Option<Vec<u8>>, String> {
            Ok(None)
        }
        fn store(&self, _: &[u8], _: &[u8]) -> Result<(), String> {
            Err("disk full".into())
        }
    }

    /// A store whose reads are slow, so that two `begin`s overlap.
    struct Slow(MemoryServedStore);
    impl ServedStore for Slow {
        fn load(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            let r = self.0.load(key);
            std::thread::sleep(std::time::Duration::from_millis(50));
            r
        }
        fn store(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
            self.0.store(key, value)
        }
    }

    /// Two requests with one ID and different content at the same moment: exactly one is
    /// served (review: `begin` loaded, then stored, so both could be told to serve).
    #[test]
    fn concurrent_requests_with_one_id_serve_one_content() {
        let log = Arc::new(ServedLog::new(Slow(MemoryServedStore::default())));
        let (key, req) = (RequestId::derive("k", b""), RequestId::derive("r", b""));
        let threads: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|b| {
                let log = log.clone();
                std::thread::spawn(move || log.begin(&key, &req, &[b; 32]))
            })
            .collect();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let served = outcomes.iter().filter(|o| **o == Ok(Served::Serve)).count();
        assert_eq!(served, 1, "{outcomes:?}");
    }

    /// The log lives in the store: a restarted party (a new log over the same store) still
    /// refuses other content, re-serves an unfinished request with the same content, and
    /// returns a finished one's result. A store that cannot record refuses to serve.
    #[test]
    fn the_log_survives_a_restart_and_refuses_other_content() {
        let store = Arc::new(MemoryServedStore::default());
        let (key, req) = (RequestId::derive("k", b""), RequestId::derive("r", b""));
        let ct = |b: u8| vec![(FheType::Uint8, [b; 32])];
        let a = request_content_digest("public", &key, &req, &ct(1), &[]);
        let b = request_content_digest("public", &key, &req, &ct(2), &[]);
        assert_ne!(a, b);
        assert_ne!(a, request_content_digest("user", &key, &req, &ct(1), &[]));
        assert_ne!(
            a,
            request_content_digest("public", &key, &req, &ct(1), &[7])
        );
        let log = ServedLog::new(store.clone());
        assert_eq!(log.begin(&key, &req, &a), Ok(Served::Serve));
        // Restart before finishing.
        let log = ServedLog::new(store.clone());
        assert_eq!(
            log.begin(&key, &req, &b),
            Err(ThresholdError::RequestReplayed {
                key_id: key,
                request_id: req
            })
        );
        assert_eq!(log.begin(&key, &req, &a), Ok(Served::Serve));
        log.finish(&key, &req, &a, b"result").unwrap();
        let log = ServedLog::new(store);
        assert_eq!(
            log.begin(&key, &req, &a),
            Ok(Served::Done(b"result".to_vec()))
        );
        assert!(log.begin(&key, &req, &b).is_err());
        // Another key, same request ID: its own record.
        let other_key = RequestId::derive("k2", b"");
        assert_eq!(log.begin(&other_key, &req, &b), Ok(Served::Serve));
        assert!(matches!(
            ServedLog::new(Failing).begin(&key, &req, &a),
            Err(ThresholdError::Storage(_))
        ));
    }
}
