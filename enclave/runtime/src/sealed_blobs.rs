//! The party's sealed blobs as the enclave reads and writes them through its host: each one
//! sealed (AES-256-GCM) under the party's data key with the party and the blob's name as
//! associated data, so the host keeps them without being able to read, forge, or move one to
//! another name or party. It can still withhold a blob or hand back an older version.

use crate::state::{AeadSealer, PartyState};
use kms_channel::mux::EnclaveChannel;
use kms_channel::wire::{HostRequest, HostResponse};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Why a sealed blob could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SealedBlobError {
    /// The channel failed, the host failed the request or answered another question.
    #[error("host: {0}")]
    Host(String),
    /// The blob does not open under the data key for its name (tampered, another party's or
    /// another name's), or could not be sealed.
    #[error(transparent)]
    Aead(#[from] kms_sealing::AeadError),
}

/// Party `party`'s sealed blobs, kept by the host at the end of a channel.
#[derive(Clone)]
pub struct SealedBlobs {
    channel: EnclaveChannel,
    sealer: Arc<AeadSealer>,
    party: u32,
}

impl std::fmt::Debug for SealedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedBlobs(party {})", self.party)
    }
}

impl SealedBlobs {
    /// Party `party`'s blobs, sealed with `sealer`, kept by the host at the end of `channel`.
    pub fn new(channel: EnclaveChannel, sealer: Arc<AeadSealer>, party: u32) -> Self {
        Self {
            channel,
            sealer,
            party,
        }
    }

    /// Blob `name`, opened; `None` if the host has none.
    pub async fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, SealedBlobError> {
        let request = HostRequest::GetSealed { name: name.into() };
        match self.channel.request(request).await {
            Ok(HostResponse::Blob(None)) => Ok(None),
            Ok(HostResponse::Blob(Some(sealed))) => Ok(Some(
                self.sealer
                    .unseal(&PartyState::context(self.party, name), &sealed)?,
            )),
            Ok(HostResponse::Failed(e)) => Err(SealedBlobError::Host(e)),
            Ok(_) => Err(SealedBlobError::Host(
                "an answer to another question".into(),
            )),
            Err(e) => Err(SealedBlobError::Host(e.to_string())),
        }
    }

    /// Seals `plain` as blob `name` and has the host store it (durably, replacing it whole).
    pub async fn put(&self, name: &str, plain: &[u8]) -> Result<(), SealedBlobError> {
        let bytes = self
            .sealer
            .seal(&PartyState::context(self.party, name), plain)?;
        let request = HostRequest::PutSealed {
            name: name.into(),
            bytes,
        };
        match self.channel.request(request).await {
            Ok(HostResponse::Stored) => Ok(()),
            Ok(HostResponse::Failed(e)) => Err(SealedBlobError::Host(e)),
            Ok(_) => Err(SealedBlobError::Host(
                "an answer to another question".into(),
            )),
            Err(e) => Err(SealedBlobError::Host(e.to_string())),
        }
    }
}
