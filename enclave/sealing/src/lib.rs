//! Sealing of the enclave's state.
//!
//! State is sealed with AES-256-GCM ([`AeadSealer`]) under a 32-byte data key, with the
//! object's context (party and name) as associated data. In production the data key comes from
//! AWS KMS and only an attested enclave of a trusted release can obtain it
//! ([`aws_kms`]); the AWS calls run inside the enclave over HTTPS the host relays as opaque
//! bytes ([`https`]). In developer mode the data key is a local file (the enclave process's
//! `--dev-sealing-key`).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod aead;
pub mod aws_kms;
pub mod https;

pub use aead::{AeadError, AeadSealer};
pub use aws_kms::{AwsKmsSealing, Credentials, DataKeyRecord, KmsConfig, KmsSealingError};
pub use https::{Dial, RelayedHttps};
