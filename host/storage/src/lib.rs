//! Storage backends for public material and sealed private blobs: a filesystem folder and S3.
//!
//! Both implement [`kms_types::Storage`]. They run in the untrusted host: the enclave and clients
//! verify what they read (digests and signatures for public material, authenticated sealing for
//! private blobs), so a compromised backend can withhold data but not forge it.

#![forbid(unsafe_code)]

mod file;
mod s3;
mod uri;

pub use file::FileStorage;
pub use s3::{S3Config, S3Storage};
pub use uri::fetch_uri;
