//! The image measurements.
//!
//! A Nitro PCR starts at 48 zero bytes and is extended as `PCR = SHA-384(PCR ‖ SHA-384(data))`.
//! The hypervisor extends PCR0, PCR1 and PCR2 once each, with the digest of the concatenated
//! section payloads (the section headers, the EIF header, the metadata and the signature are not
//! measured):
//!
//! - PCR0 = extend(kernel ‖ cmdline ‖ ramdisk₀ ‖ … ‖ ramdiskₙ₋₁)
//! - PCR1 = extend(kernel ‖ cmdline ‖ ramdisk₀)
//! - PCR2 = extend(ramdisk₁ ‖ … ‖ ramdiskₙ₋₁)

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// One 48-byte PCR value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pcr(pub [u8; 48]);

impl Pcr {
    /// The register after one extend of a zeroed register with `SHA-384(data)`.
    pub fn extend_once(data_digest: &[u8; 48]) -> Self {
        let mut h = Sha384::new();
        h.update([0u8; 48]);
        h.update(data_digest);
        Self(h.finalize().into())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 96 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 48];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl std::fmt::Debug for Pcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Pcr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Pcr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a PCR is 96 hex digits"))
    }
}

/// PCR0, PCR1 and PCR2 of an image (its signature's PCR8 is not supported: images here are
/// unsigned, and pinned by PCR0–2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurements {
    /// Kernel, command line and every ramdisk.
    #[serde(rename = "PCR0")]
    pub pcr0: Pcr,
    /// Kernel, command line and the first (boot) ramdisk.
    #[serde(rename = "PCR1")]
    pub pcr1: Pcr,
    /// The other (application) ramdisks.
    #[serde(rename = "PCR2")]
    pub pcr2: Pcr,
}

impl Measurements {
    /// Measures an image's sections.
    pub fn of(kernel: &[u8], cmdline: &[u8], ramdisks: &[Vec<u8>]) -> Self {
        let mut image = Sha384::new();
        let mut boot = Sha384::new();
        let mut app = Sha384::new();
        for part in [kernel, cmdline] {
            image.update(part);
            boot.update(part);
        }
        for (i, r) in ramdisks.iter().enumerate() {
            image.update(r);
            if i == 0 {
                boot.update(r);
            } else {
                app.update(r);
            }
        }
        Self {
            pcr0: Pcr::extend_once(&image.finalize().into()),
            pcr1: Pcr::extend_once(&boot.finalize().into()),
            pcr2: Pcr::extend_once(&app.finalize().into()),
        }
    }

    /// As an attestation policy's PCR array (PCR0, PCR1, PCR2).
    pub fn as_arrays(&self) -> [[u8; 48]; 3] {
        [self.pcr0.0, self.pcr1.0, self.pcr2.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image with one ramdisk has nothing in PCR2: extend(SHA-384 of the empty string). The
    /// value is the one tkhq/qos publishes for its single-ramdisk images.
    #[test]
    fn pcr2_of_a_single_ramdisk_image_is_the_known_empty_extend() {
        let m = Measurements::of(b"kernel", b"cmdline", &[b"boot".to_vec()]);
        assert_eq!(
            m.pcr2.to_hex(),
            "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c\
             10edb30948c90ba67310f7b964fc500a"
        );
    }

    #[test]
    fn pcr_hex_round_trips_and_rejects_bad_lengths() {
        let p = Pcr([7; 48]);
        assert_eq!(Pcr::from_hex(&p.to_hex()), Some(p));
        assert_eq!(Pcr::from_hex("00"), None);
        assert_eq!(Pcr::from_hex(&"zz".repeat(48)), None);
    }
}
