//! The backend interface and its centralized implementation.

use crate::keyset::{decode_private_key as decode_private, encode_private_key as encode_private};
use crate::{
    decrypt_ciphertext, generate_crs, generate_key_set, serialize_public, EngineError, KeyGenStage,
    Plaintext, PrivateKeyBlob, SignedDecryption, SignedHandle,
};
use kms_eip712::types::UserDecryptionPayload;
use kms_eip712::{public_decryption_struct, Address, DomainConfig, SigningKey};
use kms_signcryption::{ClientPublicKey, Signcrypted};
use kms_types::{
    CanonicalRequest, CrsGenRequest, DataType, KeyGenRequest, ParamSetName,
    PublicDecryptionRequest, RequestId, TypedCiphertext, UserDecryptionRequest,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tfhe::prelude::Tagged;
use tfhe::ClientKey;

/// Most ciphertexts in one decryption request.
pub const MAX_BATCH: usize = 1024;

/// What a key generation produced, before it is stored.
pub struct KeyGenOutput {
    /// Signed handles with the bytes to publish (server key, public key).
    pub public: Vec<(SignedHandle, Vec<u8>)>,
    /// Private material to seal and store.
    pub private: PrivateKeyBlob,
    /// The key, to [`Backend::activate`] once everything is stored.
    pub pending: PendingKey,
}

/// A generated key not yet in service.
pub struct PendingKey {
    key_id: RequestId,
    params: ParamSetName,
    client_key: ClientKey,
}

/// What a CRS generation produced.
pub struct CrsGenOutput {
    /// Signed handle.
    pub handle: SignedHandle,
    /// The safe-serialized CRS.
    pub bytes: Vec<u8>,
}

/// Decodes the plaintexts of a verified user-decryption payload.
pub fn plaintexts_of(payload: &UserDecryptionPayload) -> Result<Vec<Plaintext>, EngineError> {
    let words = payload.plaintexts.as_ref();
    if words.len() != payload.fheTypes.len() * 32 {
        return Err(EngineError::InvalidRequest(
            "plaintexts do not match fheTypes".into(),
        ));
    }
    payload
        .fheTypes
        .iter()
        .zip(words.chunks_exact(32))
        .map(|(&t, w)| {
            let fhe_type = kms_types::FheType::from_wire(t.into())
                .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
            let mut word = [0u8; 32];
            word.copy_from_slice(w);
            Ok(Plaintext { fhe_type, word })
        })
        .collect()
}

/// A KMS backend: centralized today, threshold (over key shares, talking to other parties) next.
/// Methods are blocking and CPU-heavy: call them off the async runtime.
pub trait Backend: Send + Sync {
    /// The address results are signed by.
    fn signer_address(&self) -> Address;
    /// The EIP-712 domain.
    fn domain(&self) -> &DomainConfig;
    /// Generates a key set. Its key ID is the request's ID, derived here from the request
    /// itself (never taken from a caller).
    fn keygen(
        &self,
        req: &KeyGenRequest,
        progress: &mut dyn FnMut(KeyGenStage),
    ) -> Result<KeyGenOutput, EngineError>;
    /// Puts a generated key in service.
    fn activate(&self, pending: PendingKey);
    /// Puts a stored key in service (after unsealing at start-up).
    fn load_key(&self, key_id: RequestId, private: &[u8]) -> Result<(), EngineError>;
    /// Whether a key is in service.
    fn has_key(&self, key_id: &RequestId) -> bool;
    /// Decrypts and signs the plaintexts under the request's derived ID.
    fn public_decrypt(
        &self,
        req: &PublicDecryptionRequest,
    ) -> Result<SignedDecryption, EngineError>;
    /// Decrypts, signs and encrypts the plaintexts to the client's key, under the request's
    /// derived ID.
    fn user_decrypt(&self, req: &UserDecryptionRequest) -> Result<Signcrypted, EngineError>;
    /// Generates a CRS under the request's derived ID.
    fn crs_gen(&self, req: &CrsGenRequest) -> Result<CrsGenOutput, EngineError>;
}

struct LoadedKey {
    params: ParamSetName,
    client_key: ClientKey,
}

/// The centralized backend: one party holds whole secret keys. Used in developer mode and as
/// the reference the threshold backend is tested against.
pub struct CentralizedEngine {
    signer: SigningKey,
    domain: DomainConfig,
    keys: RwLock<HashMap<RequestId, Arc<LoadedKey>>>,
}

impl CentralizedEngine {
    /// An engine signing with `signer` under `domain`, holding no keys yet.
    pub fn new(signer: SigningKey, domain: DomainConfig) -> Self {
        Self {
            signer,
            domain,
            keys: RwLock::new(HashMap::new()),
        }
    }

    fn key(&self, key_id: &RequestId) -> Result<Arc<LoadedKey>, EngineError> {
        let keys = self
            .keys
            .read()
            .map_err(|_| EngineError::Tfhe("key table lock poisoned".into()))?;
        keys.get(key_id)
            .cloned()
            .ok_or(EngineError::UnknownKey(*key_id))
    }

    fn decrypt_all(
        &self,
        key_id: &RequestId,
        cts: &[TypedCiphertext],
    ) -> Result<(Vec<[u8; 32]>, Vec<Plaintext>), EngineError> {
        if cts.is_empty() || cts.len() > MAX_BATCH {
            return Err(EngineError::InvalidRequest(format!(
                "a request holds 1..={MAX_BATCH} ciphertexts, got {}",
                cts.len()
            )));
        }
        let key = self.key(key_id)?;
        let mut pts = Vec::with_capacity(cts.len());
        for (i, ct) in cts.iter().enumerate() {
            pts.push(decrypt_ciphertext(
                i,
                ct,
                key_id,
                key.params,
                &key.client_key,
            )?);
        }
        Ok((cts.iter().map(TypedCiphertext::digest).collect(), pts))
    }

    fn insert(&self, key_id: RequestId, key: LoadedKey) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(key_id, Arc::new(key));
        }
    }
}

impl Backend for CentralizedEngine {
    fn signer_address(&self) -> Address {
        self.signer.address()
    }

    fn domain(&self) -> &DomainConfig {
        &self.domain
    }

    fn keygen(
        &self,
        req: &KeyGenRequest,
        progress: &mut dyn FnMut(KeyGenStage),
    ) -> Result<KeyGenOutput, EngineError> {
        let id = req.request_id();
        crate::params::require_available(req.params)?;
        let ks = generate_key_set(req.params, &id, progress);
        progress(KeyGenStage::Publishing);
        let sk = serialize_public(&ks.server_key)?;
        let pk = serialize_public(&ks.public_key)?;
        let public = vec![
            (
                SignedHandle::sign(&self.signer, &self.domain, id, DataType::ServerKey, &sk)?,
                sk,
            ),
            (
                SignedHandle::sign(&self.signer, &self.domain, id, DataType::PublicKey, &pk)?,
                pk,
            ),
        ];
        let private = encode_private(req.params, &ks.client_key)?;
        Ok(KeyGenOutput {
            public,
            private,
            pending: PendingKey {
                key_id: id,
                params: req.params,
                client_key: ks.client_key,
            },
        })
    }

    fn activate(&self, pending: PendingKey) {
        self.insert(
            pending.key_id,
            LoadedKey {
                params: pending.params,
                client_key: pending.client_key,
            },
        );
    }

    fn load_key(&self, key_id: RequestId, private: &[u8]) -> Result<(), EngineError> {
        let (params, client_key) = decode_private(private)?;
        if client_key.tag().as_slice() != key_id.as_bytes() {
            return Err(EngineError::CorruptPrivate(format!(
                "stored key is tagged for another key ID than {key_id}"
            )));
        }
        self.insert(key_id, LoadedKey { params, client_key });
        Ok(())
    }

    fn has_key(&self, key_id: &RequestId) -> bool {
        self.key(key_id).is_ok()
    }

    fn public_decrypt(
        &self,
        req: &PublicDecryptionRequest,
    ) -> Result<SignedDecryption, EngineError> {
        let id = req.request_id();
        let (digests, plaintexts) = self.decrypt_all(&req.key_id, &req.ciphertexts)?;
        let s = public_decryption_struct(&id, &req.key_id, &digests, &plaintexts);
        let signature = self.signer.sign(&self.domain, &s)?;
        Ok(SignedDecryption {
            request_id: id,
            key_id: req.key_id,
            ciphertext_digests: digests,
            plaintexts,
            signature,
            signer: self.signer.address(),
        })
    }

    fn user_decrypt(&self, req: &UserDecryptionRequest) -> Result<Signcrypted, EngineError> {
        let id = req.request_id();
        // Validate the client key before spending time on decryption.
        let client = ClientPublicKey::from_bytes(&req.client_encryption_key)?;
        let (digests, plaintexts) = self.decrypt_all(&req.key_id, &req.ciphertexts)?;
        let s = public_decryption_struct(&id, &req.key_id, &digests, &plaintexts);
        let payload = UserDecryptionPayload {
            requestId: s.requestId,
            keyId: s.keyId,
            clientKeyDigest: client.digest().into(),
            kmsSigner: self.signer.address().into(),
            ciphertextDigests: s.ciphertextDigests,
            fheTypes: s.fheTypes,
            plaintexts: s.plaintexts,
        };
        Ok(kms_signcryption::signcrypt(
            &self.signer,
            &self.domain,
            payload,
            &client,
            &mut rand_core::OsRng,
        )?)
    }

    fn crs_gen(&self, req: &CrsGenRequest) -> Result<CrsGenOutput, EngineError> {
        let id = req.request_id();
        let crs = generate_crs(req.params, req.max_num_bits)?;
        let bytes = serialize_public(&crs)?;
        let handle = SignedHandle::sign(&self.signer, &self.domain, id, DataType::Crs, &bytes)?;
        Ok(CrsGenOutput { handle, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_types::{CanonicalRequest, FheType};
    use tfhe::prelude::*;

    fn engine() -> CentralizedEngine {
        CentralizedEngine::new(
            SigningKey::random(&mut rand_core::OsRng),
            DomainConfig::default(),
        )
    }

    #[test]
    fn keygen_activate_decrypt_and_refusals() {
        let e = engine();
        let req = KeyGenRequest {
            params: ParamSetName::TestInsecure,
            label: "unit".into(),
        };
        let id = req.request_id();
        let mut stages = Vec::new();
        let out = e.keygen(&req, &mut |s| stages.push(s)).unwrap();
        assert_eq!(
            stages,
            [
                KeyGenStage::ClientKey,
                KeyGenStage::ServerKey,
                KeyGenStage::PublicKey,
                KeyGenStage::Publishing
            ]
        );
        for (h, bytes) in &out.public {
            crate::verify_public_material(h, bytes, e.domain(), &e.signer_address()).unwrap();
        }
        let (_, ck) = decode_private(&out.private.0).unwrap();
        let ct = tfhe::FheUint8::encrypt(77u8, &ck);
        let dreq = PublicDecryptionRequest {
            key_id: id,
            ciphertexts: vec![TypedCiphertext {
                fhe_type: FheType::Uint8,
                bytes: serialize_public(&ct).unwrap(),
            }],
        };
        // Not active yet.
        assert!(matches!(
            e.public_decrypt(&dreq),
            Err(EngineError::UnknownKey(_))
        ));
        e.activate(out.pending);
        let r = e.public_decrypt(&dreq).unwrap();
        assert_eq!(r.request_id, dreq.request_id());
        assert_eq!(r.plaintexts[0].as_u128(), Some(77));
        r.verify(e.domain(), &e.signer_address()).unwrap();
        // A forged plaintext no longer verifies.
        let mut forged = r.clone();
        forged.plaintexts[0].word[31] = 78;
        assert!(forged.verify(e.domain(), &e.signer_address()).is_err());
        // Empty batch.
        let empty = PublicDecryptionRequest {
            key_id: id,
            ciphertexts: vec![],
        };
        assert!(matches!(
            e.public_decrypt(&empty),
            Err(EngineError::InvalidRequest(_))
        ));
        // Corrupt or mislabelled private material.
        assert!(matches!(
            e.load_key(id, b"garbage"),
            Err(EngineError::CorruptPrivate(_))
        ));
        assert!(matches!(
            e.load_key(RequestId::derive("x", b"y"), &out.private.0),
            Err(EngineError::CorruptPrivate(_))
        ));
        // A bad client key for user decryption.
        let ureq = UserDecryptionRequest {
            key_id: id,
            ciphertexts: dreq.ciphertexts.clone(),
            client_encryption_key: vec![1, 2, 3],
        };
        assert!(matches!(
            e.user_decrypt(&ureq),
            Err(EngineError::Signcryption(_))
        ));
    }
}
