//! Nitro Enclave image files (EIF), their measurements, and the ramdisks inside them.
//!
//! - [`image`]: the EIF container, written deterministically (fixed header fields, fixed
//!   metadata, sections in nitro-cli's order) and read back strictly (magic, version, flags,
//!   section table, CRC32), every length checked against the input.
//! - [`pcr`]: PCR0 (kernel, command line, all ramdisks), PCR1 (kernel, command line, first
//!   ramdisk) and PCR2 (the other ramdisks), each a SHA-384 extend of a zeroed register, as
//!   `nitro-cli describe-eif` and the Nitro hypervisor compute them.
//! - [`cpio`]: the ramdisks, as newc archives with sorted entries, owner 0, mtime 0 and fixed
//!   modes, so that the same files always give the same bytes.
//! - [`manifest`]: a release manifest (version, source commit, toolchain, input hashes, image
//!   sha256, PCRs) and the comparison of an image's measurements against it.
//!
//! Nothing here touches a file, a clock or the network.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod cpio;
pub mod image;
pub mod manifest;
pub mod pcr;

pub use image::{Eif, EifError, Metadata};
pub use manifest::{Manifest, ManifestError};
pub use pcr::{Measurements, Pcr};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
