//! Where a party's key share lives across restarts and across the party's enclaves: the sealed
//! state (the share in use and its epoch) and the sealed pending resharing (a new share
//! waiting for the chain to complete its resharing).
//!
//! A resharing's new share is sealed as `reshare-pending-<resharing ID>` *before* the party reports
//! `ReshareDone`, so an enclave restarted between the report and the chain's completion can
//! still take it up. Taking it up rewrites the sealed state with the new share and epoch
//! (the host replaces the blob whole), then replaces the share in memory; the old share is
//! then gone from the state and zeroized in memory. Another enclave of the same party, which
//! still holds the old share, reloads the state (or takes up the pending share itself) when a
//! request names the new epoch.
//!
//! The host keeps the blobs and can withhold them or hand back older versions (no monotonic
//! counter in Nitro): that delays or stops a party (it refuses requests of an epoch it cannot
//! reach), never makes it combine shares of two epochs, which the record's epoch rules out.

use crate::sealed_blobs::{SealedBlobError, SealedBlobs};
use crate::state::{PartyState, StateError};
use kms_threshold::SnsKeyShare;
use kms_types::{KeyEpoch, RequestId, Reshared};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use zeroize::{Zeroize, Zeroizing};

/// Why the sealed share or pending resharing could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ShareStoreError {
    /// The host failed or gave an answer to another question.
    #[error("host: {0}")]
    Host(String),
    /// A sealed blob could not be read or written.
    #[error(transparent)]
    Blob(#[from] SealedBlobError),
    /// The blob does not open or decode.
    #[error(transparent)]
    State(#[from] StateError),
    /// The sealed state holds no share of this key.
    #[error("the sealed state holds no share of key {0}")]
    NoKey(RequestId),
}

/// A resharing's new share, checked and reported, waiting for the chain to complete it.
pub struct PendingReshare {
    /// The resharing request.
    pub reshare_id: RequestId,
    /// The epoch it reshares (the share it replaces belongs to it).
    pub from: KeyEpoch,
    /// The verdict digest this party reported (its agreed dealer set).
    pub verdict_digest: [u8; 32],
    /// The new share (its key ID names the key).
    pub share: SnsKeyShare,
}

impl std::fmt::Debug for PendingReshare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReshare")
            .field("reshare_id", &self.reshare_id)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl PendingReshare {
    /// The epoch the share belongs to once the chain completed the resharing with this
    /// party's verdict.
    pub fn epoch(&self) -> Option<KeyEpoch> {
        self.from.next(Reshared {
            request: self.reshare_id,
            verdict_digest: self.verdict_digest,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct PendingWire {
    reshare_id: RequestId,
    from: KeyEpoch,
    verdict_digest: [u8; 32],
    #[serde(with = "serde_bytes")]
    share: Vec<u8>,
}

impl Drop for PendingWire {
    fn drop(&mut self) {
        self.share.zeroize();
    }
}

impl PendingReshare {
    /// CBOR, zeroized on drop.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, StateError> {
        let wire = PendingWire {
            reshare_id: self.reshare_id,
            from: self.from,
            verdict_digest: self.verdict_digest,
            share: self.share.to_sealing_bytes().to_vec(),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(wire.share.len() * 2 + 512));
        ciborium::into_writer(&wire, &mut *out)
            .map_err(|e| StateError::Malformed(e.to_string()))?;
        Ok(out)
    }

    /// Reads [`PendingReshare::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let wire: PendingWire =
            ciborium::from_reader(bytes).map_err(|e| StateError::Malformed(e.to_string()))?;
        Ok(Self {
            reshare_id: wire.reshare_id,
            from: wire.from,
            verdict_digest: wire.verdict_digest,
            share: SnsKeyShare::from_sealing_bytes(&wire.share)
                .map_err(|e| StateError::Malformed(e.to_string()))?,
        })
    }
}

/// The sealed share and pending resharing, as the runtime reads and writes them.
#[async_trait::async_trait]
pub trait ShareStore: Send + Sync {
    /// The share of `key_id` in the sealed state now, with its epoch.
    async fn share(&self, key_id: &RequestId) -> Result<(KeyEpoch, SnsKeyShare), ShareStoreError>;
    /// Replaces the sealed share of `key_id` with `share` of `epoch`, durably.
    async fn commit(
        &self,
        key_id: &RequestId,
        epoch: KeyEpoch,
        share: &SnsKeyShare,
    ) -> Result<(), ShareStoreError>;
    /// The pending share of resharing `reshare_id`, if any.
    async fn pending(
        &self,
        reshare_id: &RequestId,
    ) -> Result<Option<PendingReshare>, ShareStoreError>;
    /// Seals `pending` under its resharing's ID, durably (each resharing has its own blob, so
    /// one that was superseded never overwrites another's).
    async fn put_pending(&self, pending: &PendingReshare) -> Result<(), ShareStoreError>;
}

/// Name of the sealed pending share of resharing `id`: `reshare-pending-` and the ID in hex.
pub fn pending_name(id: &RequestId) -> String {
    format!("reshare-pending-{id}")
}

/// The [`ShareStore`] whose blobs the host keeps sealed ([`SealedBlobs`]).
#[derive(Debug)]
pub struct SealedShareStore {
    blobs: SealedBlobs,
}

impl SealedShareStore {
    /// Over the party's sealed blobs.
    pub fn new(blobs: SealedBlobs) -> Self {
        Self { blobs }
    }

    async fn state(&self) -> Result<PartyState, ShareStoreError> {
        let plain = self
            .blobs
            .get("state")
            .await?
            .ok_or_else(|| ShareStoreError::Host("the sealed state is gone".into()))?;
        Ok(PartyState::decode(&plain)?)
    }
}

#[async_trait::async_trait]
impl ShareStore for SealedShareStore {
    async fn share(&self, key_id: &RequestId) -> Result<(KeyEpoch, SnsKeyShare), ShareStoreError> {
        let mut state = self.state().await?;
        let i = state
            .keys
            .iter()
            .position(|k| k.key_id == *key_id)
            .ok_or(ShareStoreError::NoKey(*key_id))?;
        let entry = state.keys.swap_remove(i);
        Ok((entry.epoch, entry.share))
    }

    async fn commit(
        &self,
        key_id: &RequestId,
        epoch: KeyEpoch,
        share: &SnsKeyShare,
    ) -> Result<(), ShareStoreError> {
        // Read, replace the one entry, write back whole: nothing else in the state changes at
        // run time, so two enclaves of the party committing the same resharing write the same;
        // a state already at this epoch or a later one is left alone (a slow commit of an
        // older epoch by another enclave must not roll it back).
        let mut state = self.state().await?;
        let entry = state
            .keys
            .iter_mut()
            .find(|k| k.key_id == *key_id)
            .ok_or(ShareStoreError::NoKey(*key_id))?;
        if entry.epoch.number >= epoch.number {
            return Ok(());
        }
        entry.share = SnsKeyShare::from_sealing_bytes(&share.to_sealing_bytes())
            .map_err(|e| StateError::Malformed(e.to_string()))?;
        entry.epoch = epoch;
        Ok(self.blobs.put("state", &state.encode()?).await?)
    }

    async fn pending(
        &self,
        reshare_id: &RequestId,
    ) -> Result<Option<PendingReshare>, ShareStoreError> {
        match self.blobs.get(&pending_name(reshare_id)).await? {
            None => Ok(None),
            Some(plain) => {
                let p = PendingReshare::decode(&plain)?;
                if p.reshare_id != *reshare_id {
                    return Err(
                        StateError::Malformed("pending share of another resharing".into()).into(),
                    );
                }
                Ok(Some(p))
            }
        }
    }

    async fn put_pending(&self, pending: &PendingReshare) -> Result<(), ShareStoreError> {
        Ok(self
            .blobs
            .put(&pending_name(&pending.reshare_id), &pending.encode()?)
            .await?)
    }
}

/// A [`ShareStore`] in memory (tests): the share and pending resharings as encoded bytes.
#[derive(Default)]
pub struct MemoryShareStore {
    share: Mutex<Option<(KeyEpoch, Zeroizing<Vec<u8>>)>>,
    pending: Mutex<std::collections::HashMap<RequestId, Zeroizing<Vec<u8>>>>,
}

impl MemoryShareStore {
    /// Holds `share` of `epoch`.
    pub fn new(epoch: KeyEpoch, share: &SnsKeyShare) -> Self {
        Self {
            share: Mutex::new(Some((epoch, share.to_sealing_bytes()))),
            pending: Mutex::new(Default::default()),
        }
    }
}

#[async_trait::async_trait]
impl ShareStore for MemoryShareStore {
    async fn share(&self, key_id: &RequestId) -> Result<(KeyEpoch, SnsKeyShare), ShareStoreError> {
        let g = self.share.lock().unwrap_or_else(|p| p.into_inner());
        let (epoch, bytes) = g.as_ref().ok_or(ShareStoreError::NoKey(*key_id))?;
        let share = SnsKeyShare::from_sealing_bytes(bytes)
            .map_err(|e| StateError::Malformed(e.to_string()))?;
        if share.key_id != *key_id {
            return Err(ShareStoreError::NoKey(*key_id));
        }
        Ok((*epoch, share))
    }

    async fn commit(
        &self,
        _key_id: &RequestId,
        epoch: KeyEpoch,
        share: &SnsKeyShare,
    ) -> Result<(), ShareStoreError> {
        let mut g = self.share.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_some_and(|(e, _)| e.number >= epoch.number) {
            return Ok(());
        }
        *g = Some((epoch, share.to_sealing_bytes()));
        Ok(())
    }

    async fn pending(
        &self,
        reshare_id: &RequestId,
    ) -> Result<Option<PendingReshare>, ShareStoreError> {
        let g = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match g.get(reshare_id) {
            None => Ok(None),
            Some(b) => Ok(Some(PendingReshare::decode(b)?)),
        }
    }

    async fn put_pending(&self, pending: &PendingReshare) -> Result<(), ShareStoreError> {
        let bytes = pending.encode()?;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pending.reshare_id, bytes);
        Ok(())
    }
}
