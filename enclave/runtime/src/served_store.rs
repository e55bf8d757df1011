//! The served-request log as sealed state: each record is sealed (AES-256-GCM, the party and
//! record name as associated data) and kept by the host, which can lose or withhold records
//! but cannot read, forge or move them to another name or party.
//!
//! Limitation: a host can roll a record back to an older sealed version (or delete it); Nitro
//! has no monotonic counter to detect that. Request IDs are derived from the request's content,
//! so serving an ID again means serving the same content again, which reveals nothing new; the
//! log is the second line of defence.

use crate::state::AeadSealer;
use kms_channel::mux::EnclaveChannel;
use kms_channel::wire::{HostRequest, HostResponse};
use kms_threshold::ServedStore;
use sha3::{Digest, Sha3_256};
use std::sync::Arc;

/// A [`ServedStore`] whose records the host keeps sealed.
pub struct SealedServedStore {
    channel: EnclaveChannel,
    sealer: Arc<AeadSealer>,
    party: u32,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for SealedServedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedServedStore(party {})", self.party)
    }
}

impl SealedServedStore {
    /// Records of party `party`, sealed with `sealer`, kept by the host at the end of `channel`.
    /// Must be created inside a (multi-threaded) tokio runtime.
    pub fn new(channel: EnclaveChannel, sealer: Arc<AeadSealer>, party: u32) -> Self {
        Self {
            channel,
            sealer,
            party,
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

    fn ask(&self, request: HostRequest) -> Result<HostResponse, String> {
        let (channel, handle) = (self.channel.clone(), self.runtime.clone());
        // The log is synchronous; the channel is not. Called from a worker of a multi-threaded
        // runtime, this blocks only that worker.
        tokio::task::block_in_place(move || handle.block_on(channel.request(request)))
            .map_err(|e| e.to_string())
    }
}

impl ServedStore for SealedServedStore {
    fn load(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let name = Self::name(key);
        match self.ask(HostRequest::GetSealed { name: name.clone() })? {
            HostResponse::Blob(None) => Ok(None),
            HostResponse::Blob(Some(sealed)) => self
                .sealer
                .unseal(
                    &crate::state::PartyState::context(self.party, &name),
                    &sealed,
                )
                .map(|v| Some(v.to_vec()))
                .map_err(|e| e.to_string()),
            HostResponse::Stored
            | HostResponse::Chunk { .. }
            | HostResponse::AwsCredentials(_)
            | HostResponse::Nonce(_) => Err("host answered a read with something else".into()),
            HostResponse::Failed(e) => Err(e),
        }
    }

    fn store(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let name = Self::name(key);
        let bytes = self
            .sealer
            .seal(&crate::state::PartyState::context(self.party, &name), value)
            .map_err(|e| e.to_string())?;
        match self.ask(HostRequest::PutSealed { name, bytes })? {
            HostResponse::Stored => Ok(()),
            HostResponse::Failed(e) => Err(e),
            HostResponse::Blob(_)
            | HostResponse::Chunk { .. }
            | HostResponse::AwsCredentials(_)
            | HostResponse::Nonce(_) => Err("host answered a write with something else".into()),
        }
    }
}
