//! Signed results as they travel between the KMS, its clients and the chain: public-material
//! handles and public-decryption results, with the typed structs they are signed as.

use crate::types::{PublicDecryptionResult, PublicMaterial};
use crate::{verify_signer, Address, DomainConfig, Eip712Error, Signature, SigningKey};
use kms_types::{DataType, Plaintext, RequestId, StorageKey};

/// A signed public-decryption result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDecryption {
    /// The request.
    pub request_id: RequestId,
    /// The key.
    pub key_id: RequestId,
    /// SHA3-256 of each ciphertext.
    pub ciphertext_digests: Vec<[u8; 32]>,
    /// The plaintexts, in request order.
    pub plaintexts: Vec<Plaintext>,
    /// EIP-712 signature over [`PublicDecryptionResult`].
    pub signature: Signature,
    /// The signer.
    pub signer: Address,
}

fn words(plaintexts: &[Plaintext]) -> Vec<u8> {
    plaintexts.iter().flat_map(|p| p.word).collect()
}

/// The typed struct of a public-decryption result.
pub fn public_decryption_struct(
    request_id: &RequestId,
    key_id: &RequestId,
    digests: &[[u8; 32]],
    plaintexts: &[Plaintext],
) -> PublicDecryptionResult {
    PublicDecryptionResult::new(
        request_id,
        key_id,
        digests,
        plaintexts.iter().map(|p| p.fhe_type.wire()).collect(),
        words(plaintexts),
    )
}

impl SignedDecryption {
    /// Checks the signature is by `expected` under `domain`.
    pub fn verify(&self, domain: &DomainConfig, expected: &Address) -> Result<(), Eip712Error> {
        let s = public_decryption_struct(
            &self.request_id,
            &self.key_id,
            &self.ciphertext_digests,
            &self.plaintexts,
        );
        verify_signer(domain, &s, &self.signature, expected)
    }
}

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
        verify_signer(
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
