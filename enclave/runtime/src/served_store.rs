//! The served-request log as sealed state: each record is sealed (AES-256-GCM, the party and
//! record name as associated data) and kept by the host, which can lose or withhold records
//! but cannot read, forge or move them to another name or party.
//!
//! Limitation: a host can roll a record back to an older sealed version (or delete it); Nitro
//! has no monotonic counter to detect that. Request IDs are derived from the request's content,
//! so serving an ID again means serving the same content again, which reveals nothing new; the
//! log is the second line of defence.

use crate::sealed_blobs::SealedBlobs;
use kms_threshold::ServedStore;
use sha3::{Digest, Sha3_256};

/// A [`ServedStore`] whose records the host keeps sealed.
pub struct SealedServedStore {
    blobs: SealedBlobs,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for SealedServedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedServedStore({:?})", self.blobs)
    }
}

impl SealedServedStore {
    /// Records kept as the party's sealed blobs. Must be created inside a (multi-threaded)
    /// tokio runtime.
    pub fn new(blobs: SealedBlobs) -> Self {
        Self {
            blobs,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The blob name of a record: `served-` and 24 bytes of SHA3-256 of its key, in hex.
    fn name(key: &[u8]) -> String {
        let d: [u8; 32] = Sha3_256::digest(key).into();
        let mut name = String::from("served-");
        for b in d.iter().take(24) {
            name.push_str(&format!("{b:02x}"));
        }
        name
    }

    /// Runs `f` on the sealed blobs: the log is synchronous, the channel is not. Called from a
    /// worker of a multi-threaded runtime, this blocks only that worker.
    fn blocking<T, F: std::future::Future<Output = T>>(
        &self,
        f: impl FnOnce(SealedBlobs) -> F,
    ) -> T {
        let (blobs, handle) = (self.blobs.clone(), self.runtime.clone());
        tokio::task::block_in_place(move || handle.block_on(f(blobs)))
    }
}

impl ServedStore for SealedServedStore {
    fn load(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let name = Self::name(key);
        self.blocking(|b| async move { b.get(&name).await })
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| e.to_string())
    }

    fn store(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let name = Self::name(key);
        self.blocking(|b| async move { b.put(&name, value).await })
            .map_err(|e| e.to_string())
    }
}
