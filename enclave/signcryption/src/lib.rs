//! User-decryption envelopes.
//!
//! The client generates an ephemeral ML-KEM-512 key pair and sends the encapsulation key with its
//! request. The KMS signs the result (an EIP-712 [`UserDecryptionPayload`] binding the request
//! ID, the digest of the client's key and the KMS signer's address), then encrypts payload and
//! signature to the client (sign-then-encrypt):
//!
//! ```text
//! (kem_ct, ss) = ML-KEM-512.Encaps(ek)
//! k            = HKDF-SHA256(salt = kem_ct, ikm = ss, info = "kms/user-decryption/v1" ‖ aad)
//! aad          = request_id (20) ‖ SHA3-256(ek) (32) ‖ kms_address (20)
//! envelope     = 0x01 ‖ kem_ct (768) ‖ nonce (12) ‖ AES-256-GCM_k(nonce, abi(payload) ‖ sig, aad)
//! ```
//!
//! The KMS also signs a public [`UserDecryptionResponse`] over the envelope's digest so that
//! anyone can check which party produced which envelope without learning the plaintext.
//!
//! [`UserDecryptionPayload`]: kms_eip712::types::UserDecryptionPayload
//! [`UserDecryptionResponse`]: kms_eip712::types::UserDecryptionResponse

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod envelope;
mod keys;

pub use envelope::{open_and_verify, signcrypt, Envelope, Signcrypted, SigncryptionError};
pub use keys::{ClientKeyPair, ClientPublicKey};
