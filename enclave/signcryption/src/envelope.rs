//! Sign-then-encrypt envelopes.

use crate::keys::{ClientKeyPair, ClientPublicKey};
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use alloy_primitives::{Address as AlloyAddress, FixedBytes};
use alloy_sol_types::SolValue;
use kms_eip712::types::{UserDecryptionPayload, UserDecryptionResponse};
use kms_eip712::{Address, DomainConfig, Eip712Error, Signature, SigningKey};
use kms_types::RequestId;
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{Ciphertext, MlKem512};
use zeroize::{Zeroize, Zeroizing};

const VERSION: u8 = 1;
const KEM_CT_LEN: usize = 768;
const NONCE_LEN: usize = 12;
const INFO: &[u8] = b"kms/user-decryption/v1";

/// Why an envelope could not be produced or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigncryptionError {
    /// The client's ML-KEM key is malformed.
    #[error("bad client key: {0}")]
    BadClientKey(&'static str),
    /// The envelope bytes are malformed (length, version).
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// Decryption failed: wrong key, tampered envelope, or an envelope for another
    /// request/client/signer.
    #[error("envelope does not decrypt under this client key and binding")]
    Decrypt,
    /// The decrypted payload is not a valid ABI encoding.
    #[error("envelope payload does not decode")]
    Payload,
    /// The payload's fields do not match what the client expected.
    #[error("envelope payload mismatch: {0}")]
    Mismatch(&'static str),
    /// A signature failed.
    #[error("signature: {0}")]
    Signature(#[from] Eip712Error),
    /// Encapsulation failed (only with a broken RNG).
    #[error("ML-KEM encapsulation failed")]
    Encapsulation,
}

/// An encrypted user-decryption envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope(Vec<u8>);

impl Envelope {
    /// Wraps received bytes, checking the layout.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SigncryptionError> {
        if bytes.len() < 1 + KEM_CT_LEN + NONCE_LEN + 16 {
            return Err(SigncryptionError::Malformed("too short"));
        }
        if bytes.first() != Some(&VERSION) {
            return Err(SigncryptionError::Malformed("unknown version"));
        }
        Ok(Self(bytes))
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// SHA3-256 of the bytes: the `envelopeDigest` of [`UserDecryptionResponse`].
    pub fn digest(&self) -> [u8; 32] {
        kms_types::sha3_256(&self.0)
    }
}

/// What the KMS sends back for one user decryption.
#[derive(Clone, Debug)]
pub struct Signcrypted {
    /// The encrypted envelope.
    pub envelope: Envelope,
    /// EIP-712 signature over [`UserDecryptionResponse`].
    pub response_signature: Signature,
}

impl Signcrypted {
    /// From received parts: the envelope's layout is checked, the signature is not (that is
    /// [`crate::open_and_verify`]'s).
    pub fn from_parts(
        envelope: Vec<u8>,
        response_signature: Signature,
    ) -> Result<Self, SigncryptionError> {
        Ok(Self {
            envelope: Envelope::from_bytes(envelope)?,
            response_signature,
        })
    }
}

fn aad(request_id: &RequestId, client_key_digest: &[u8; 32], kms: &Address) -> [u8; 72] {
    let mut a = [0u8; 72];
    a[..20].copy_from_slice(request_id.as_bytes());
    a[20..52].copy_from_slice(client_key_digest);
    a[52..].copy_from_slice(kms);
    a
}

fn derive_key(kem_ct: &[u8], shared: &[u8], aad: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(kem_ct), shared);
    let mut info = Vec::with_capacity(INFO.len() + aad.len());
    info.extend_from_slice(INFO);
    info.extend_from_slice(aad);
    let mut k = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    if hk.expand(&info, k.as_mut()).is_err() {
        unreachable!("HKDF output length is constant and valid");
    }
    k
}

/// The public response struct for an envelope.
pub fn response_struct(
    request_id: &RequestId,
    client_key_digest: &[u8; 32],
    envelope: &Envelope,
) -> UserDecryptionResponse {
    UserDecryptionResponse::new(request_id, *client_key_digest, envelope.digest())
}

/// A typed struct that can travel in an envelope: it names its request, the client key it is
/// for and the KMS signer, and those three are checked on opening.
pub trait SignedPayload: alloy_sol_types::SolStruct + SolValue + Sized {
    /// The request ID.
    fn request_id(&self) -> [u8; 20];
    /// The client key digest.
    fn client_key_digest(&self) -> [u8; 32];
    /// The KMS signer address.
    fn kms_signer(&self) -> Address;
    /// Sets the client key digest and the signer (done by [`signcrypt`]).
    fn bind(&mut self, client_key_digest: [u8; 32], signer: Address);
}

/// Both envelope payloads carry the same binding fields.
macro_rules! signed_payload {
    ($t:ty) => {
        impl SignedPayload for $t {
            fn request_id(&self) -> [u8; 20] {
                self.requestId.0
            }
            fn client_key_digest(&self) -> [u8; 32] {
                self.clientKeyDigest.0
            }
            fn kms_signer(&self) -> Address {
                self.kmsSigner.0 .0
            }
            fn bind(&mut self, client_key_digest: [u8; 32], signer: Address) {
                self.clientKeyDigest = FixedBytes(client_key_digest);
                self.kmsSigner = AlloyAddress::from(signer);
            }
        }
    };
}

signed_payload!(UserDecryptionPayload);
signed_payload!(kms_eip712::types::UserDecryptionShare);

/// Signs `payload` (after binding it to the client key and the signer's address) and encrypts
/// it to `client`.
pub fn signcrypt<P: SignedPayload>(
    signer: &SigningKey,
    domain: &DomainConfig,
    mut payload: P,
    client: &ClientPublicKey,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Signcrypted, SigncryptionError> {
    let request_id = RequestId::from_bytes(payload.request_id());
    payload.bind(client.digest(), signer.address());
    let sig = signer.sign(domain, &payload)?;

    let mut plaintext = Zeroizing::new(payload.abi_encode());
    plaintext.extend_from_slice(&sig.0);

    let (kem_ct, mut raw_shared) = client
        .ek
        .encapsulate(rng)
        .map_err(|_| SigncryptionError::Encapsulation)?;
    let shared = Zeroizing::new(raw_shared.to_vec());
    raw_shared.as_mut_slice().zeroize();
    let aad = aad(&request_id, &client.digest(), &signer.address());
    let key = derive_key(&kem_ct, &shared, &aad);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| SigncryptionError::Decrypt)?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SigncryptionError::Decrypt)?;

    let mut out = Vec::with_capacity(1 + KEM_CT_LEN + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&kem_ct);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    let envelope = Envelope(out);
    let response_signature = signer.sign(
        domain,
        &response_struct(&request_id, &client.digest(), &envelope),
    )?;
    Ok(Signcrypted {
        envelope,
        response_signature,
    })
}

/// Client side: checks the public response signature, decrypts the envelope, checks the inner
/// signature and that the payload is for this request, this client key and this KMS signer.
pub fn open_and_verify<P: SignedPayload>(
    keys: &ClientKeyPair,
    domain: &DomainConfig,
    request_id: &RequestId,
    kms_signer: &Address,
    received: &Signcrypted,
) -> Result<P, SigncryptionError> {
    let client_digest = keys.public().digest();
    kms_eip712::verify_signer(
        domain,
        &response_struct(request_id, &client_digest, &received.envelope),
        &received.response_signature,
        kms_signer,
    )?;

    // Layout checked by `Envelope::from_bytes`: version ‖ kem_ct ‖ nonce ‖ ciphertext.
    let body = received
        .envelope
        .as_bytes()
        .get(1..)
        .ok_or(SigncryptionError::Malformed("too short"))?;
    let (kem_ct_bytes, rest) = body
        .split_at_checked(KEM_CT_LEN)
        .ok_or(SigncryptionError::Malformed("too short"))?;
    let (nonce, ct) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(SigncryptionError::Malformed("too short"))?;
    let kem_ct = Ciphertext::<MlKem512>::try_from(kem_ct_bytes)
        .map_err(|_| SigncryptionError::Malformed("KEM ciphertext"))?;
    let mut raw_shared = keys
        .dk
        .decapsulate(&kem_ct)
        .map_err(|_| SigncryptionError::Decrypt)?;
    let shared = Zeroizing::new(raw_shared.to_vec());
    raw_shared.as_mut_slice().zeroize();
    let aad = aad(request_id, &client_digest, kms_signer);
    let key = derive_key(kem_ct_bytes, &shared, &aad);
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| SigncryptionError::Decrypt)?;
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| SigncryptionError::Decrypt)?,
    );
    if plaintext.len() < 65 {
        return Err(SigncryptionError::Payload);
    }
    let (abi, sig) = plaintext.split_at(plaintext.len() - 65);
    let sig = Signature::from_slice(sig)?;
    let payload = <P as alloy_sol_types::SolType>::abi_decode_validate(abi)
        .map_err(|_| SigncryptionError::Payload)?;
    kms_eip712::verify_signer(domain, &payload, &sig, kms_signer)?;
    if payload.request_id() != *request_id.as_bytes() {
        return Err(SigncryptionError::Mismatch("request ID"));
    }
    if payload.client_key_digest() != client_digest {
        return Err(SigncryptionError::Mismatch("client key"));
    }
    if payload.kms_signer() != *kms_signer {
        return Err(SigncryptionError::Mismatch("KMS signer"));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Bytes;
    use rand_core::OsRng;

    fn payload(id: &RequestId) -> UserDecryptionPayload {
        UserDecryptionPayload {
            requestId: FixedBytes(*id.as_bytes()),
            keyId: FixedBytes([3u8; 20]),
            clientKeyDigest: FixedBytes([0u8; 32]),
            kmsSigner: AlloyAddress::ZERO,
            ciphertextDigests: vec![FixedBytes([5u8; 32])],
            fheTypes: vec![2],
            plaintexts: Bytes::from(vec![0u8; 32]),
        }
    }

    struct Fixture {
        signer: SigningKey,
        domain: DomainConfig,
        client: ClientKeyPair,
        id: RequestId,
        sc: Signcrypted,
    }

    fn fixture() -> Fixture {
        let signer = SigningKey::random(&mut OsRng);
        let domain = DomainConfig::default();
        let client = ClientKeyPair::generate(&mut OsRng);
        let id = RequestId::derive("t", b"1");
        let sc = signcrypt(&signer, &domain, payload(&id), client.public(), &mut OsRng).unwrap();
        Fixture {
            signer,
            domain,
            client,
            id,
            sc,
        }
    }

    #[test]
    fn round_trip() {
        let f = fixture();
        let got = open_and_verify::<UserDecryptionPayload>(
            &f.client,
            &f.domain,
            &f.id,
            &f.signer.address(),
            &f.sc,
        )
        .unwrap();
        assert_eq!(got.plaintexts, payload(&f.id).plaintexts);
        assert_eq!(got.kmsSigner.0 .0, f.signer.address());
    }

    #[test]
    fn rejects_wrong_client_request_signer_and_tampering() {
        let f = fixture();
        let other_client = ClientKeyPair::generate(&mut OsRng);
        assert!(open_and_verify::<UserDecryptionPayload>(
            &other_client,
            &f.domain,
            &f.id,
            &f.signer.address(),
            &f.sc
        )
        .is_err());
        let other_id = RequestId::derive("t", b"2");
        assert!(open_and_verify::<UserDecryptionPayload>(
            &f.client,
            &f.domain,
            &other_id,
            &f.signer.address(),
            &f.sc
        )
        .is_err());
        let other_signer = SigningKey::random(&mut OsRng);
        assert!(matches!(
            open_and_verify::<UserDecryptionPayload>(
                &f.client,
                &f.domain,
                &f.id,
                &other_signer.address(),
                &f.sc
            ),
            Err(SigncryptionError::Signature(
                Eip712Error::WrongSigner { .. }
            ))
        ));
        // Flip one byte of the AEAD ciphertext: the outer signature no longer matches.
        let mut bytes = f.sc.envelope.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = Signcrypted {
            envelope: Envelope::from_bytes(bytes.clone()).unwrap(),
            response_signature: f.sc.response_signature,
        };
        assert!(open_and_verify::<UserDecryptionPayload>(
            &f.client,
            &f.domain,
            &f.id,
            &f.signer.address(),
            &tampered
        )
        .is_err());
        // A host that re-signs nothing but strips the outer check still fails AEAD: check with a
        // valid outer signature from the signer over the tampered envelope.
        let resigned = Signcrypted {
            response_signature: f
                .signer
                .sign(
                    &f.domain,
                    &response_struct(&f.id, &f.client.public().digest(), &tampered.envelope),
                )
                .unwrap(),
            envelope: tampered.envelope,
        };
        assert_eq!(
            open_and_verify::<UserDecryptionPayload>(
                &f.client,
                &f.domain,
                &f.id,
                &f.signer.address(),
                &resigned
            )
            .unwrap_err(),
            SigncryptionError::Decrypt
        );
        assert!(Envelope::from_bytes(vec![1u8; 10]).is_err());
        let mut v2 = f.sc.envelope.as_bytes().to_vec();
        v2[0] = 2;
        assert!(Envelope::from_bytes(v2).is_err());
    }
}
