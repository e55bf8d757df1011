//! Engine errors.

use kms_types::{FheType, RequestId};

/// Why the engine refused or failed a request. Every variant is a caller-visible, typed reason;
/// none carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The key ID names no key set this engine holds.
    #[error("unknown key {0}")]
    UnknownKey(RequestId),
    /// A ciphertext does not deserialize as its declared type (truncated, garbage, wrong type,
    /// wrong parameters, over the size limit).
    #[error("ciphertext {index} is not a valid {fhe_type}: {reason}")]
    MalformedCiphertext {
        /// Position in the request.
        index: usize,
        /// Declared type.
        fhe_type: FheType,
        /// tfhe's reason.
        reason: String,
    },
    /// A ciphertext is tagged with another key's ID.
    #[error("ciphertext {index} was encrypted under another key (tag {tag}), not {key_id}")]
    KeyMismatch {
        /// Position in the request.
        index: usize,
        /// The requested key.
        key_id: RequestId,
        /// Hex of the tag the ciphertext carries.
        tag: String,
    },
    /// The request is empty or too large.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client's ML-KEM key or envelope failed.
    #[error("signcryption: {0}")]
    Signcryption(#[from] kms_signcryption::SigncryptionError),
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(#[from] kms_eip712::Eip712Error),
    /// tfhe-rs reported an error (or panicked) on valid-looking input.
    #[error("tfhe-rs: {0}")]
    Tfhe(String),
    /// Stored private material does not decode.
    #[error("corrupt private material: {0}")]
    CorruptPrivate(String),
}
