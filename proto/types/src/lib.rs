//! Types shared by every component of the KMS: the chain, the host, the enclave and clients.
//!
//! * [`RequestId`]: the 160-bit identifier of every request, derived from its canonical encoding.
//! * [`FheType`]: the encrypted types the KMS can decrypt.
//! * [`DataType`] and [`StorageKey`]: where public material and sealed private blobs live.
//! * [`Storage`]: the one storage interface; backends live in the untrusted host.
//!
//! This crate is pure: no I/O, no clock, no randomness.

#![forbid(unsafe_code)]

mod canonical;
mod fhe_type;
mod key_epoch;
mod plaintext;
mod request_id;
mod requests;
mod sealing;
mod storage;

pub use canonical::{CanonicalEncoder, CanonicalRequest};
pub use fhe_type::{FheType, UnknownFheType};
pub use key_epoch::{KeyEpoch, Reshared};
pub use plaintext::Plaintext;
pub use request_id::{RequestId, RequestIdError};
pub use requests::{
    CiphertextRef, CrsGenRequest, KeyGenRequest, ParamSetName, PublicDecryptionRef,
    PublicDecryptionRequest, TypedCiphertext, UserDecryptionRef, UserDecryptionRequest,
};
pub use sealing::{SealError, Sealer};
pub use storage::{
    DataType, Storage, StorageError, StorageKey, Visibility, CRS_MAX_BYTES, PUBLIC_KEY_MAX_BYTES,
    SERVER_KEY_MAX_BYTES,
};

/// SHA3-256 digest, the digest used for ciphertexts and public material.
pub fn sha3_256(data: &[u8]) -> [u8; 32] {
    use sha3::Digest;
    sha3::Sha3_256::digest(data).into()
}
