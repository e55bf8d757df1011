//! `kms eif describe`: an image's measurements and identity, as `nitro-cli describe-eif`
//! prints them (`Measurements` with `HashAlgorithm`, `PCR0`–`PCR2`), plus the image sha256.

use kms_eif::{Eif, Measurements, Metadata};
use serde::Serialize;

/// What `describe` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Description {
    /// EIF format version.
    #[serde(rename = "EifVersion")]
    pub eif_version: u16,
    /// The measurements.
    #[serde(rename = "Measurements")]
    pub measurements: MeasurementsView,
    /// Whether the image carries a signature (PCR8): never, for images this reader accepts.
    #[serde(rename = "IsSigned")]
    pub is_signed: bool,
    /// The CRC matched (the reader refuses images whose CRC does not).
    #[serde(rename = "CheckCRC")]
    pub check_crc: bool,
    /// sha256 of the file.
    #[serde(rename = "ImageSha256")]
    pub image_sha256: String,
    /// Section sizes: kernel, cmdline, ramdisks.
    #[serde(rename = "Sections")]
    pub sections: Sections,
    /// The metadata section.
    #[serde(rename = "Metadata")]
    pub metadata: Metadata,
}

/// `Measurements` in nitro-cli's shape.
#[derive(Clone, Debug, Serialize)]
pub struct MeasurementsView {
    /// Always SHA-384, spelled as nitro-cli prints it.
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: &'static str,
    /// The PCRs.
    #[serde(flatten)]
    pub pcrs: Measurements,
}

/// Section sizes.
#[derive(Clone, Debug, Serialize)]
pub struct Sections {
    /// Kernel bytes.
    pub kernel: usize,
    /// Command line bytes.
    pub cmdline: usize,
    /// Each ramdisk's bytes.
    pub ramdisks: Vec<usize>,
}

/// Describes an EIF file.
pub fn describe(bytes: &[u8]) -> Result<Description, kms_eif::EifError> {
    let eif = Eif::parse(bytes)?;
    Ok(Description {
        eif_version: kms_eif::image::VERSION,
        measurements: MeasurementsView {
            hash_algorithm: "Sha384 { ... }",
            pcrs: eif.measurements(),
        },
        is_signed: false,
        check_crc: true,
        image_sha256: kms_eif::sha256_hex(bytes),
        sections: Sections {
            kernel: eif.kernel.len(),
            cmdline: eif.cmdline.len(),
            ramdisks: eif.ramdisks.iter().map(Vec::len).collect(),
        },
        metadata: eif.metadata,
    })
}

impl std::fmt::Display for Description {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.measurements.pcrs;
        writeln!(
            f,
            "image   {} {}",
            self.metadata.image_name, self.metadata.image_version
        )?;
        writeln!(f, "sha256  {}", self.image_sha256)?;
        writeln!(
            f,
            "kernel  {} ({} bytes)",
            self.metadata.build.kernel_version, self.sections.kernel
        )?;
        writeln!(f, "PCR0    {}", m.pcr0.to_hex())?;
        writeln!(f, "PCR1    {}", m.pcr1.to_hex())?;
        write!(f, "PCR2    {}", m.pcr2.to_hex())
    }
}
