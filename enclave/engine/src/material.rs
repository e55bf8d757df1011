//! Public material: serialization, digests, signed handles, and client-side verification.

use kms_eip712::{Address, DomainConfig, Eip712Error, SignedHandle};
use kms_types::{DataType, RequestId};
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};

/// Serialization limit for public material (production server keys are hundreds of MiB).
pub const MAX_PUBLIC_MATERIAL_BYTES: u64 = 4 << 30;

/// Why downloaded public material is rejected.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The bytes do not hash to the signed digest: tampered or wrong file.
    #[error("{data_type} {request_id}: digest mismatch (expected {expected}, got {actual}); the file was tampered with or is not the signed one")]
    DigestMismatch {
        /// Which material.
        data_type: DataType,
        /// Which request.
        request_id: RequestId,
        /// Signed digest (hex).
        expected: String,
        /// Digest of the bytes (hex).
        actual: String,
    },
    /// The handle's signature is not by the expected KMS signer.
    #[error("handle signature: {0}")]
    Signature(#[from] Eip712Error),
    /// The bytes verified but do not deserialize as the expected tfhe type.
    #[error("{0}")]
    Deserialize(String),
}

/// Checks downloaded bytes against a handle: signature by `expected_signer`, then digest.
pub fn verify_public_material(
    handle: &SignedHandle,
    bytes: &[u8],
    domain: &DomainConfig,
    expected_signer: &Address,
) -> Result<(), MaterialError> {
    handle.verify_signature(domain, expected_signer)?;
    let actual = kms_types::sha3_256(bytes);
    if actual != handle.digest {
        return Err(MaterialError::DigestMismatch {
            data_type: handle.data_type,
            request_id: handle.request_id,
            expected: hex::encode(handle.digest),
            actual: hex::encode(actual),
        });
    }
    Ok(())
}

/// tfhe safe serialization of public material.
pub fn serialize_public<T>(value: &T) -> Result<Vec<u8>, crate::EngineError>
where
    T: serde::Serialize + tfhe::Versionize + Named,
{
    let mut out = Vec::new();
    safe_serialize(value, &mut out, MAX_PUBLIC_MATERIAL_BYTES)
        .map_err(|e| crate::EngineError::Tfhe(e.to_string()))?;
    Ok(out)
}

/// tfhe safe deserialization of verified public material.
pub fn deserialize_public<T>(bytes: &[u8]) -> Result<T, MaterialError>
where
    T: serde::de::DeserializeOwned + tfhe::Unversionize + Named,
{
    safe_deserialize(bytes, MAX_PUBLIC_MATERIAL_BYTES).map_err(MaterialError::Deserialize)
}
