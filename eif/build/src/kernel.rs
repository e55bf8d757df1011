//! The kernel input.
//!
//! The kernel is not built by the image build: it is an input pinned by sha256 (AWS's Nitro
//! kernel blob in production, or one built by `scripts/build-nitro-kernel`, or a distribution
//! kernel with its modules for the QEMU boot test). Its version string is read from the bzImage
//! setup header, as the boot loader protocol defines it.

use crate::BuildError;
use std::path::{Path, PathBuf};

/// A kernel and the modules the init loads, in order.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The bzImage bytes.
    pub image: Vec<u8>,
    /// Its version string (from the setup header), or `unknown`.
    pub version: String,
    /// Module file name and bytes, in load order.
    pub modules: Vec<(String, Vec<u8>)>,
}

impl Kernel {
    /// Reads a kernel file and checks it against its pinned sha256, and reads the modules.
    pub fn load(path: &Path, sha256: &str, modules: &[PathBuf]) -> Result<Self, BuildError> {
        let image = crate::read(path)?;
        let found = kms_eif::sha256_hex(&image);
        if !found.eq_ignore_ascii_case(sha256) {
            return Err(BuildError::Pinned {
                what: format!("kernel {}", path.display()),
                expected: sha256.to_string(),
                found,
            });
        }
        let mut mods = Vec::new();
        for m in modules {
            let name = m
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| n.contains(".ko"))
                .ok_or_else(|| BuildError::Invalid(format!("{} is not a module", m.display())))?;
            mods.push((name.to_string(), crate::read(m)?));
        }
        Ok(Self {
            version: bzimage_version(&image).unwrap_or_else(|| "unknown".into()),
            image,
            modules: mods,
        })
    }
}

/// The version string of a bzImage: the boot protocol's setup header (`HdrS` at 0x202) holds,
/// at 0x20E, the offset (from 0x200) of a NUL-terminated version string.
pub fn bzimage_version(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*image.get(0x20E)?, *image.get(0x20F)?]);
    let start = usize::from(ptr) + 0x200;
    let rest = image.get(start..)?;
    let end = rest.iter().take(256).position(|&b| b == 0)?;
    let s = std::str::from_utf8(rest.get(..end)?).ok()?;
    // "6.12.90+deb12-cloud-amd64 (debian-kernel@…) #1 SMP …": the release is the first word.
    s.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_setup_header() {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x300 + 12].copy_from_slice(b"6.1.0 (x) #1");
        assert_eq!(bzimage_version(&img).as_deref(), Some("6.1.0"));
        img[0x202] = 0;
        assert_eq!(bzimage_version(&img), None);
        assert_eq!(bzimage_version(&[]), None);
    }
}
