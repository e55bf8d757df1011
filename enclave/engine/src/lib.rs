//! The KMS engine: tfhe-rs key generation, public and user decryption, CRS generation, and the
//! signed handles of public material.
//!
//! The engine does no I/O: callers pass bytes in and store the bytes it returns (through
//! [`kms_types::Storage`] and [`kms_types::Sealer`]), so the same engine runs in the enclave, in
//! developer mode and in tests. The centralized backend ([`CentralizedEngine`]) holds whole
//! secret keys; the threshold backend will implement the same [`Backend`] trait over key shares.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod backend;
mod crs;
mod decrypt;
mod error;
mod keyset;
mod material;
mod params;

pub use backend::{
    plaintexts_of, Backend, CentralizedEngine, CrsGenOutput, KeyGenOutput, PendingKey, MAX_BATCH,
};
pub use crs::{generate_crs, MAX_CRS_BITS};
pub use decrypt::{decrypt_ciphertext, deserialize_checked};
pub use error::EngineError;
pub use keyset::{
    decode_private_key, encode_private_key, generate_key_set, KeyGenStage, KeySet, PrivateKeyBlob,
};
pub use kms_eip712::{public_decryption_struct, SignedDecryption, SignedHandle};
pub use kms_types::Plaintext;
pub use material::{deserialize_public, serialize_public, verify_public_material, MaterialError};
pub use params::{compact_pke_params, config_for, require_available, ParamSetExt};

/// Re-exported so clients use the exact tfhe the engine was built with.
pub use tfhe;
