//! Deterministic CBOR (ciborium) for transactions and state records.
//!
//! Records are structs with a fixed field order and no maps keyed by unordered types, so one value
//! has exactly one encoding, which is what both the app hash and the light client rely on.

use serde::{de::DeserializeOwned, Serialize};

/// Largest encoded record or transaction the chain accepts (the ABCI app also caps tx size).
pub const MAX_ENCODED_LEN: usize = 1 << 20;

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Longer than [`MAX_ENCODED_LEN`].
    #[error("encoding is {0} bytes, more than the {MAX_ENCODED_LEN}-byte limit")]
    TooLong(usize),
    /// Not CBOR of the expected shape.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// Decoded, but re-encoding gives other bytes: a non-canonical encoding.
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every type here serializes (no non-string map keys).
    if ciborium::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Decodes a value, rejecting trailing bytes and non-canonical encodings.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(CodecError::TooLong(bytes.len()));
    }
    let value: T =
        ciborium::from_reader(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if encode(&value) != bytes {
        return Err(CodecError::NonCanonical);
    }
    Ok(value)
}
