//! Public material: serialization, digests, signed handles, and client-side verification.

use kms_eip712::types::PublicMaterial;
use kms_eip712::{Address, DomainConfig, Eip712Error, Signature, SigningKey};
use kms_types::{DataType, RequestId, StorageKey};
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};

/// Serialization limit for public material (production server keys are hundreds of MiB).
pub const MAX_PUBLIC_MATERIAL_BYTES: u64 = 4 << 30;

/// A signed handle to one piece of public material.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedHandle {
    /// The request that produced the material.
    pub request_id: RequestId,
    /// What it is.
    pub data_type: DataType,
    /// SHA3-256 of the stored bytes.
    #[serde(with = "hex32")]
    pub digest: [u8; 32],
    /// EIP-712 signature over [`PublicMaterial`].
    #[serde(with = "hex65")]
    pub signature: [u8; 65],
    /// Address of the signer.
    #[serde(with = "hex20")]
    pub signer: Address,
}

macro_rules! hex_serde {
    ($name:ident, $n:expr) => {
        mod $name {
            pub fn serialize<S: serde::Serializer>(v: &[u8; $n], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(v))
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<[u8; $n], D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                let mut out = [0u8; $n];
                hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
                Ok(out)
            }
        }
    };
}
hex_serde!(hex20, 20);
hex_serde!(hex32, 32);
hex_serde!(hex65, 65);

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

impl SignedHandle {
    /// The typed struct that is signed.
    pub fn typed(&self) -> PublicMaterial {
        typed(&self.request_id, self.data_type, &self.digest)
    }

    /// Signs a handle for `bytes`.
    pub fn sign(
        signer: &SigningKey,
        domain: &DomainConfig,
        request_id: RequestId,
        data_type: DataType,
        bytes: &[u8],
    ) -> Result<Self, Eip712Error> {
        let digest = kms_types::sha3_256(bytes);
        let sig = signer.sign(domain, &typed(&request_id, data_type, &digest))?;
        Ok(Self {
            request_id,
            data_type,
            digest,
            signature: sig.0,
            signer: signer.address(),
        })
    }

    /// The storage key of the material.
    pub fn storage_key(&self) -> StorageKey {
        StorageKey::public(self.data_type, self.request_id)
    }

    /// The URI of the material below `base`: `<base>/PUB/<DataType>/<request_id>`.
    pub fn uri(&self, base: &str) -> String {
        self.storage_key().uri(base)
    }

    /// Checks the signature is by `expected_signer`.
    pub fn verify_signature(
        &self,
        domain: &DomainConfig,
        expected_signer: &Address,
    ) -> Result<(), Eip712Error> {
        kms_eip712::verify_signer(
            domain,
            &self.typed(),
            &Signature(self.signature),
            expected_signer,
        )
    }
}

fn typed(request_id: &RequestId, data_type: DataType, digest: &[u8; 32]) -> PublicMaterial {
    PublicMaterial::new(request_id, data_type.as_str(), *digest)
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
