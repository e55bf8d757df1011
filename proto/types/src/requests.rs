//! The requests the KMS serves, with their canonical encodings.
//!
//! These are the same whether a request arrives over gRPC (developer mode) or from the ASC on the
//! KMS chain: the chain stores ciphertext digests, so the encodings commit to digests, not bytes.

use crate::{CanonicalEncoder, CanonicalRequest, FheType, RequestId};

/// The FHE parameter set of a key or CRS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ParamSetName {
    /// Production parameters: tfhe-rs `PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` with the
    /// matching noise-squashing and dedicated compact-public-key parameters.
    Default,
    /// Small, **insecure** parameters for fast tests of protocol logic. Never for real data.
    TestInsecure,
}

impl ParamSetName {
    /// `default` or `test-insecure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ParamSetName::Default => "default",
            ParamSetName::TestInsecure => "test-insecure",
        }
    }
    /// Parses [`ParamSetName::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(ParamSetName::Default),
            "test-insecure" => Some(ParamSetName::TestInsecure),
            _ => None,
        }
    }
}

/// One ciphertext to decrypt: its declared type and its tfhe safe-serialized bytes.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypedCiphertext {
    /// The declared type; the bytes must deserialize as exactly this type.
    pub fhe_type: FheType,
    /// tfhe-rs safe serialization of the ciphertext.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for TypedCiphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({} bytes)", self.fhe_type, self.bytes.len())
    }
}

impl TypedCiphertext {
    /// SHA3-256 of the bytes: the handle the chain and the signed results refer to.
    pub fn digest(&self) -> [u8; 32] {
        crate::sha3_256(&self.bytes)
    }
}

/// A ciphertext as the chain knows it: its declared type and SHA3-256 digest (the bytes live in
/// the application's storage, not on the chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CiphertextRef {
    /// The declared type.
    pub fhe_type: FheType,
    /// SHA3-256 of the ciphertext bytes.
    pub digest: [u8; 32],
}

impl TypedCiphertext {
    /// The reference the chain stores for this ciphertext.
    pub fn to_ref(&self) -> CiphertextRef {
        CiphertextRef {
            fhe_type: self.fhe_type,
            digest: self.digest(),
        }
    }
}

fn encode_refs(enc: &mut CanonicalEncoder, refs: impl ExactSizeIterator<Item = CiphertextRef>) {
    enc.u32(refs.len() as u32);
    for r in refs {
        enc.u8(r.fhe_type.wire()).fixed(&r.digest);
    }
}

fn encode_cts(enc: &mut CanonicalEncoder, cts: &[TypedCiphertext]) {
    encode_refs(enc, cts.iter().map(TypedCiphertext::to_ref));
}

/// The on-chain form of a [`PublicDecryptionRequest`]: same canonical encoding, hence the same
/// request ID, with ciphertext digests instead of bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicDecryptionRef {
    /// The key set.
    pub key_id: RequestId,
    /// The ciphertexts, in order.
    pub ciphertexts: Vec<CiphertextRef>,
}

impl CanonicalRequest for PublicDecryptionRef {
    const TAG: &'static str = PublicDecryptionRequest::TAG;
    fn encode(&self, enc: &mut CanonicalEncoder) {
        enc.fixed(self.key_id.as_bytes());
        encode_refs(enc, self.ciphertexts.iter().copied());
    }
}

/// The on-chain form of a [`UserDecryptionRequest`]: the client's key appears as its SHA3-256
/// digest; same request ID.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserDecryptionRef {
    /// The key set.
    pub key_id: RequestId,
    /// The ciphertexts, in order.
    pub ciphertexts: Vec<CiphertextRef>,
    /// SHA3-256 of the client's ML-KEM-512 encapsulation key.
    pub client_key_digest: [u8; 32],
}

impl CanonicalRequest for UserDecryptionRef {
    const TAG: &'static str = UserDecryptionRequest::TAG;
    fn encode(&self, enc: &mut CanonicalEncoder) {
        enc.fixed(self.key_id.as_bytes());
        encode_refs(enc, self.ciphertexts.iter().copied());
        enc.fixed(&self.client_key_digest);
    }
}

impl PublicDecryptionRequest {
    /// The on-chain form.
    pub fn to_ref(&self) -> PublicDecryptionRef {
        PublicDecryptionRef {
            key_id: self.key_id,
            ciphertexts: self
                .ciphertexts
                .iter()
                .map(TypedCiphertext::to_ref)
                .collect(),
        }
    }
}

impl UserDecryptionRequest {
    /// The on-chain form.
    pub fn to_ref(&self) -> UserDecryptionRef {
        UserDecryptionRef {
            key_id: self.key_id,
            ciphertexts: self
                .ciphertexts
                .iter()
                .map(TypedCiphertext::to_ref)
                .collect(),
            client_key_digest: crate::sha3_256(&self.client_encryption_key),
        }
    }
}

/// Generate a new FHE key set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGenRequest {
    /// Parameter set.
    pub params: ParamSetName,
    /// Free label distinguishing otherwise identical requests (e.g. an epoch name).
    pub label: String,
}

impl CanonicalRequest for KeyGenRequest {
    const TAG: &'static str = "kms/keygen/v1";
    fn encode(&self, enc: &mut CanonicalEncoder) {
        enc.str(self.params.as_str()).str(&self.label);
    }
}

/// Generate a CRS for tfhe's zero-knowledge proofs of encryption.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrsGenRequest {
    /// Parameter set the CRS is for.
    pub params: ParamSetName,
    /// Largest number of plaintext bits one proof covers.
    pub max_num_bits: u32,
    /// Free label.
    pub label: String,
}

impl CanonicalRequest for CrsGenRequest {
    const TAG: &'static str = "kms/crsgen/v1";
    fn encode(&self, enc: &mut CanonicalEncoder) {
        enc.str(self.params.as_str())
            .u32(self.max_num_bits)
            .str(&self.label);
    }
}

/// Decrypt ciphertexts and publish the plaintexts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicDecryptionRequest {
    /// The key set (its keygen request ID).
    pub key_id: RequestId,
    /// The ciphertexts, in order.
    pub ciphertexts: Vec<TypedCiphertext>,
}

impl CanonicalRequest for PublicDecryptionRequest {
    const TAG: &'static str = "kms/public-decrypt/v1";
    fn encode(&self, enc: &mut CanonicalEncoder) {
        enc.fixed(self.key_id.as_bytes());
        encode_cts(enc, &self.ciphertexts);
    }
}

/// Decrypt ciphertexts and return the plaintexts encrypted to the client's ML-KEM key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDecryptionRequest {
    /// The key set.
    pub key_id: RequestId,
    /// The ciphertexts, in order.
    pub ciphertexts: Vec<TypedCiphertext>,
    /// The client's ML-KEM-512 encapsulation key (800 bytes).
    pub client_encryption_key: Vec<u8>,
}

impl CanonicalRequest for UserDecryptionRequest {
    const TAG: &'static str = "kms/user-decrypt/v1";
    fn encode(&self, enc: &mut CanonicalEncoder) {
        enc.fixed(self.key_id.as_bytes());
        encode_cts(enc, &self.ciphertexts);
        enc.fixed(&crate::sha3_256(&self.client_encryption_key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_every_field() {
        let ct = |b: u8| TypedCiphertext {
            fhe_type: FheType::Uint8,
            bytes: vec![b; 4],
        };
        let key = RequestId::derive("k", b"");
        let a = PublicDecryptionRequest {
            key_id: key,
            ciphertexts: vec![ct(1)],
        };
        let mut b = a.clone();
        b.ciphertexts[0].bytes[0] = 2;
        let mut c = a.clone();
        c.ciphertexts[0].fhe_type = FheType::Uint16;
        let mut d = a.clone();
        d.key_id = RequestId::derive("k2", b"");
        let ids = [
            a.request_id(),
            b.request_id(),
            c.request_id(),
            d.request_id(),
        ];
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                assert_ne!(ids[i], ids[j]);
            }
        }
        assert_eq!(a.request_id(), a.clone().request_id());
        // Same content, another kind of request: another ID.
        let u = UserDecryptionRequest {
            key_id: key,
            ciphertexts: vec![ct(1)],
            client_encryption_key: vec![],
        };
        assert_ne!(u.request_id(), a.request_id());
        let k1 = KeyGenRequest {
            params: ParamSetName::Default,
            label: "a".into(),
        };
        let k2 = KeyGenRequest {
            params: ParamSetName::TestInsecure,
            label: "a".into(),
        };
        assert_ne!(k1.request_id(), k2.request_id());
    }

    #[test]
    fn on_chain_forms_have_the_same_ids() {
        let key = RequestId::derive("k", b"");
        let cts = vec![
            TypedCiphertext {
                fhe_type: FheType::Uint8,
                bytes: vec![1, 2, 3],
            },
            TypedCiphertext {
                fhe_type: FheType::Int64,
                bytes: vec![4],
            },
        ];
        let p = PublicDecryptionRequest {
            key_id: key,
            ciphertexts: cts.clone(),
        };
        assert_eq!(p.to_ref().request_id(), p.request_id());
        let u = UserDecryptionRequest {
            key_id: key,
            ciphertexts: cts,
            client_encryption_key: vec![9; 800],
        };
        assert_eq!(u.to_ref().request_id(), u.request_id());
        assert_ne!(u.to_ref().request_id(), p.to_ref().request_id());
    }
}
