//! The party's sealed state and the AEAD sealer it is sealed with.
//!
//! The state holds what the party must never lose or leak: its TLS identity key, its signing
//! key, its PRSS keys (only of the sets it belongs to), its key shares with the digests of their
//! public material, and its light client's trust root. It is sealed with AES-256-GCM under a
//! 32-byte data key, with the context (party and object name) as associated data, so a blob
//! cannot be moved to another party or name. In production the data key comes from AWS KMS
//! (`GenerateDataKey` with the enclave's attestation as `Recipient`); in developer mode it is a
//! local key file (insecure, loud).

use kms_algebra::prss::{PrssKey, PrssKeys};
use kms_threshold::SnsKeyShare;
use kms_types::{KeyEpoch, ParamSetName, RequestId};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Why state could not be sealed, unsealed or decoded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Sealing or unsealing failed (a blob that is not authentic for this key and context:
    /// tampered, another party's, another name's).
    #[error(transparent)]
    Aead(#[from] kms_sealing::AeadError),
    /// The state does not decode.
    #[error("state: {0}")]
    Malformed(String),
}

pub use kms_sealing::AeadSealer;

/// One key set the party holds a share of.
pub struct KeyEntry {
    /// The key set (its keygen request ID).
    pub key_id: RequestId,
    /// Its parameters.
    pub params: ParamSetName,
    /// The party's share of its noise-squashing key.
    pub share: SnsKeyShare,
    /// The epoch of the sharing the share belongs to (one more per completed resharing).
    pub epoch: KeyEpoch,
    /// SHA3-256 of the serialized (compressed) server key, fetched from the host and checked.
    pub server_key_digest: [u8; 32],
    /// Its public material (data type, SHA3-256), reported on chain.
    pub material: Vec<(String, [u8; 32])>,
}

/// A party's state.
pub struct PartyState {
    /// Party index (1-based).
    pub party: u32,
    /// Number of parties.
    pub n: u32,
    /// Threshold.
    pub t: u32,
    /// The KMS chain.
    pub chain_id: String,
    /// The EIP-712 domain results are signed under.
    pub domain: kms_eip712::DomainConfig,
    /// The light client's trust root: the chain's genesis validators (CometBFT JSON).
    pub genesis_validators: Vec<u8>,
    /// The TLS identity key (PKCS#8 DER).
    pub identity_key: Zeroizing<Vec<u8>>,
    /// The signing key (secp256k1 scalar).
    pub signer_key: Zeroizing<Vec<u8>>,
    /// PRSS keys of the sets this party belongs to.
    pub prss: PrssKeys,
    /// Key shares.
    pub keys: Vec<KeyEntry>,
}

impl std::fmt::Debug for PartyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyState")
            .field("party", &self.party)
            .field("n", &self.n)
            .field("t", &self.t)
            .field("chain_id", &self.chain_id)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyWire {
    key_id: RequestId,
    params: ParamSetName,
    #[serde(with = "serde_bytes")]
    share: Vec<u8>,
    server_key_digest: [u8; 32],
    material: Vec<(String, [u8; 32])>,
    #[serde(default)]
    epoch: KeyEpoch,
}

#[derive(Serialize, Deserialize)]
struct StateWire {
    party: u32,
    n: u32,
    t: u32,
    chain_id: String,
    domain: kms_eip712::DomainConfig,
    #[serde(with = "serde_bytes")]
    genesis_validators: Vec<u8>,
    #[serde(with = "serde_bytes")]
    identity_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signer_key: Vec<u8>,
    prss: Vec<(Vec<usize>, [u8; 32])>,
    keys: Vec<KeyWire>,
}

impl Drop for StateWire {
    fn drop(&mut self) {
        self.identity_key.zeroize();
        self.signer_key.zeroize();
        for (_, k) in &mut self.prss {
            k.zeroize();
        }
        for k in &mut self.keys {
            k.share.zeroize();
        }
    }
}

impl PartyState {
    /// The state as bytes (CBOR), zeroized on drop.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, StateError> {
        let wire = StateWire {
            party: self.party,
            n: self.n,
            t: self.t,
            chain_id: self.chain_id.clone(),
            domain: self.domain.clone(),
            genesis_validators: self.genesis_validators.clone(),
            identity_key: self.identity_key.to_vec(),
            signer_key: self.signer_key.to_vec(),
            prss: self
                .prss
                .iter()
                .map(|(set, k)| (set.clone(), *k.sealing_bytes()))
                .collect(),
            keys: self
                .keys
                .iter()
                .map(|k| KeyWire {
                    key_id: k.key_id,
                    params: k.params,
                    share: k.share.to_sealing_bytes().to_vec(),
                    server_key_digest: k.server_key_digest,
                    material: k.material.clone(),
                    epoch: k.epoch,
                })
                .collect(),
        };
        // Room for everything up front, so the buffer is never reallocated (which would leave
        // unzeroized copies behind).
        let size = 1024
            + wire.genesis_validators.len()
            + wire.identity_key.len()
            + wire.prss.len() * 64
            + wire
                .keys
                .iter()
                .map(|k| k.share.len() * 2 + 1024)
                .sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        ciborium::into_writer(&wire, &mut *out)
            .map_err(|e| StateError::Malformed(e.to_string()))?;
        Ok(out)
    }

    /// Reads [`PartyState::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let wire: StateWire =
            ciborium::from_reader(bytes).map_err(|e| StateError::Malformed(e.to_string()))?;
        let keys = wire
            .keys
            .iter()
            .map(|k| {
                Ok(KeyEntry {
                    key_id: k.key_id,
                    params: k.params,
                    share: SnsKeyShare::from_sealing_bytes(&k.share)
                        .map_err(|e| StateError::Malformed(e.to_string()))?,
                    server_key_digest: k.server_key_digest,
                    material: k.material.clone(),
                    epoch: k.epoch,
                })
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(Self {
            party: wire.party,
            n: wire.n,
            t: wire.t,
            chain_id: wire.chain_id.clone(),
            domain: wire.domain.clone(),
            genesis_validators: wire.genesis_validators.clone(),
            identity_key: Zeroizing::new(wire.identity_key.clone()),
            signer_key: Zeroizing::new(wire.signer_key.clone()),
            prss: wire
                .prss
                .iter()
                .map(|(set, k)| (set.clone(), PrssKey::from_bytes(*k)))
                .collect(),
            keys,
        })
    }

    /// The sealing context of party `party`'s state object `name`.
    pub fn context(party: u32, name: &str) -> String {
        format!("kms/party-{party}/{name}")
    }
}
