//! FHE key-set generation.

use crate::{config_for, EngineError};
use kms_types::{ParamSetName, RequestId};
use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe::{ClientKey, CompactPublicKey, CompressedServerKey};
use zeroize::Zeroizing;

/// Stages of key generation, reported as they start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyGenStage {
    /// Sampling the secret keys (LWE, GLWE, noise-squashing GLWE).
    ClientKey,
    /// Bootstrapping, key-switching, noise-squashing and compression keys (the slow part).
    ServerKey,
    /// The compact public key clients encrypt with.
    PublicKey,
    /// Serializing and signing the public material.
    Publishing,
}

impl KeyGenStage {
    /// A short description.
    pub const fn describe(self) -> &'static str {
        match self {
            KeyGenStage::ClientKey => "sampling secret keys",
            KeyGenStage::ServerKey => "generating server key (bootstrapping + noise squashing)",
            KeyGenStage::PublicKey => "generating compact public key",
            KeyGenStage::Publishing => "serializing and signing public material",
        }
    }
}

/// A full key set. The client key never leaves the KMS except sealed.
pub struct KeySet {
    /// Secret keys (LWE, GLWE, noise-squashing).
    pub client_key: ClientKey,
    /// Evaluation keys, including the noise-squashing key, in tfhe's seeded (compressed) form:
    /// the form that is published; clients call `decompress()`.
    pub server_key: CompressedServerKey,
    /// Compact public key for client encryption.
    pub public_key: CompactPublicKey,
}

/// Generates a key set. Every key and every ciphertext encrypted under it carries the key ID as
/// its tfhe [`tfhe::Tag`], so ciphertexts under another key are refused before decryption.
pub fn generate_key_set(
    params: ParamSetName,
    key_id: &RequestId,
    progress: &mut dyn FnMut(KeyGenStage),
) -> KeySet {
    progress(KeyGenStage::ClientKey);
    let mut client_key = ClientKey::generate(config_for(params));
    client_key.tag_mut().set_data(key_id.as_bytes());
    progress(KeyGenStage::ServerKey);
    let server_key = client_key.generate_compressed_server_key();
    progress(KeyGenStage::PublicKey);
    let public_key = CompactPublicKey::new(&client_key);
    KeySet {
        client_key,
        server_key,
        public_key,
    }
}

/// Serialized private key material of one key set, zeroized on drop. Sealed before storage.
pub struct PrivateKeyBlob(pub Zeroizing<Vec<u8>>);

/// Upper bound on a serialized client key (production keys are a few hundred KiB).
const CLIENT_KEY_LIMIT: u64 = 1 << 28;

/// Private blob layout: `params name (len-prefixed) ‖ safe-serialized ClientKey`.
/// Encodes a client key as the private blob the engine seals (`params name ‖ ClientKey`).
pub fn encode_private_key(
    params: ParamSetName,
    ck: &ClientKey,
) -> Result<PrivateKeyBlob, EngineError> {
    let mut out = Zeroizing::new(Vec::new());
    let name = params.as_str().as_bytes();
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    safe_serialize(ck, &mut *out, CLIENT_KEY_LIMIT)
        .map_err(|e| EngineError::Tfhe(e.to_string()))?;
    Ok(PrivateKeyBlob(out))
}

/// Decodes [`encode_private_key`].
pub fn decode_private_key(blob: &[u8]) -> Result<(ParamSetName, ClientKey), EngineError> {
    let corrupt = |m: &str| EngineError::CorruptPrivate(m.to_string());
    let (&n, rest) = blob.split_first().ok_or_else(|| corrupt("empty"))?;
    let (name, key) = rest
        .split_at_checked(usize::from(n))
        .ok_or_else(|| corrupt("truncated"))?;
    let name = std::str::from_utf8(name).map_err(|_| corrupt("parameter name"))?;
    let params = ParamSetName::parse(name).ok_or_else(|| corrupt("unknown parameter set"))?;
    crate::params::require_available(params)?;
    let ck: ClientKey = safe_deserialize(key, CLIENT_KEY_LIMIT)
        .map_err(|e| EngineError::CorruptPrivate(e.to_string()))?;
    Ok((params, ck))
}
