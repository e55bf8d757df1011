//! Release manifests: what an operator pins and an auditor checks.
//!
//! A manifest names a release (version, source commit, toolchain, build flags), the hashes of
//! every input that went into the image (kernel, command line, init, runtime, the enclave's
//! arguments, `Cargo.lock`), and the results: the image's sha256 and its PCR0, PCR1 and PCR2.
//! Operators put it in their configuration and the config contract holds its PCRs as a trusted
//! release; [`Manifest::check_image`] and [`Manifest::check_measurements`] compare an image or a
//! live attestation document's PCRs against it.

use crate::image::Eif;
use crate::pcr::{Measurements, Pcr};
use serde::{Deserialize, Serialize};

/// The manifest format written here.
pub const SCHEMA: u32 = 1;

/// Which build of the runtime an image holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The production runtime: device NSM and AWS KMS sealing only.
    Production,
    /// The developer runtime (`insecure-dev`: mock NSM, local sealing key). Never trusted in
    /// production; its images exist to test the image itself.
    InsecureDev,
}

/// How the binaries were built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    /// `rustc -V` of the compiler.
    pub rustc: String,
    /// `cc --version` (first line) of the C compiler that built the C parts (aws-lc).
    pub cc: String,
    /// The C library the binaries link statically (its Debian package and version).
    pub libc: String,
    /// Rust target triple.
    pub target: String,
    /// Cargo profile.
    pub profile: String,
    /// Compiler flags, with the build machine's paths written as `$CARGO_HOME` and
    /// `$TARGET_DIR`.
    pub rustflags: Vec<String>,
}

/// One input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Where it is in the image (or what it is).
    pub name: String,
    /// Its sha256, lowercase hex.
    pub sha256: String,
}

/// The inputs of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The kernel (bzImage).
    pub kernel: Input,
    /// Its version string.
    pub kernel_version: String,
    /// The kernel modules the init loads, in load order.
    pub modules: Vec<Input>,
    /// sha256 of the command line bytes.
    pub cmdline_sha256: String,
    /// The init (`kms-init`).
    pub init: Input,
    /// The runtime (`kms-enclave`).
    pub runtime: Input,
    /// The runtime's arguments, fixed in the image.
    pub enclave_args: Vec<String>,
    /// Other files of the application ramdisk (developer images only).
    pub extra_files: Vec<Input>,
    /// sha256 of `Cargo.lock`.
    pub cargo_lock_sha256: String,
}

/// A release manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Image name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// Runtime variant.
    pub variant: Variant,
    /// Git commit of the source tree (40 hex digits).
    pub source_commit: String,
    /// Toolchain and flags.
    pub toolchain: Toolchain,
    /// Input hashes.
    pub inputs: Inputs,
    /// sha256 of the EIF file.
    pub image_sha256: String,
    /// The image's measurements.
    pub pcrs: Measurements,
}

/// Why an image or a document does not match a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest is not valid JSON of this schema.
    #[error("manifest: {0}")]
    Json(String),
    /// A schema this reader does not know.
    #[error("manifest schema {0} is not supported")]
    Schema(u32),
    /// A value differs.
    #[error("{what}: the manifest has {expected}, found {found}")]
    Mismatch {
        /// Which value.
        what: &'static str,
        /// The manifest's.
        expected: String,
        /// The image's or document's.
        found: String,
    },
    /// A PCR is missing from an attestation document.
    #[error("the document has no PCR{0}")]
    MissingPcr(u8),
}

impl Manifest {
    /// Parses a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.schema != SCHEMA {
            return Err(ManifestError::Schema(m.schema));
        }
        Ok(m)
    }

    /// Pretty JSON (deterministic: fields in declaration order).
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        let mut v =
            serde_json::to_vec_pretty(self).map_err(|e| ManifestError::Json(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Checks an EIF file: its sha256 and its measurements (recomputed from its sections).
    pub fn check_image(&self, eif_bytes: &[u8]) -> Result<Measurements, ManifestError> {
        let found = crate::sha256_hex(eif_bytes);
        let eif = Eif::parse(eif_bytes).map_err(|e| ManifestError::Mismatch {
            what: "image",
            expected: "a valid EIF".into(),
            found: e.to_string(),
        })?;
        let m = eif.measurements();
        self.check_measurements(&m)?;
        if found != self.image_sha256 {
            return Err(ManifestError::Mismatch {
                what: "image sha256",
                expected: self.image_sha256.clone(),
                found,
            });
        }
        Ok(m)
    }

    /// Checks measurements (from an image, or from an attestation document's PCR0–2).
    pub fn check_measurements(&self, m: &Measurements) -> Result<(), ManifestError> {
        let pairs: [(&'static str, Pcr, Pcr); 3] = [
            ("PCR0", self.pcrs.pcr0, m.pcr0),
            ("PCR1", self.pcrs.pcr1, m.pcr1),
            ("PCR2", self.pcrs.pcr2, m.pcr2),
        ];
        for (what, expected, found) in pairs {
            if expected != found {
                return Err(ManifestError::Mismatch {
                    what,
                    expected: expected.to_hex(),
                    found: found.to_hex(),
                });
            }
        }
        Ok(())
    }

    /// Checks an attestation document's PCR map (index → value) against PCR0–2.
    pub fn check_document_pcrs(
        &self,
        pcrs: &std::collections::BTreeMap<u8, Vec<u8>>,
    ) -> Result<(), ManifestError> {
        let get = |i: u8| -> Result<Pcr, ManifestError> {
            let v = pcrs.get(&i).ok_or(ManifestError::MissingPcr(i))?;
            let arr: [u8; 48] = v
                .as_slice()
                .try_into()
                .map_err(|_| ManifestError::Mismatch {
                    what: "PCR length",
                    expected: "48 bytes".into(),
                    found: format!("{} bytes", v.len()),
                })?;
            Ok(Pcr(arr))
        };
        self.check_measurements(&Measurements {
            pcr0: get(0)?,
            pcr1: get(1)?,
            pcr2: get(2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Metadata;

    fn image() -> Eif {
        Eif {
            kernel: b"k".to_vec(),
            cmdline: b"c\n".to_vec(),
            metadata: Metadata::new("kms-enclave", "0.1.0", "test"),
            ramdisks: vec![b"boot".to_vec(), b"app".to_vec()],
        }
    }

    fn manifest_of(eif: &Eif) -> Manifest {
        let bytes = eif.to_bytes().unwrap();
        let input = |name: &str| Input {
            name: name.into(),
            sha256: "00".repeat(32),
        };
        Manifest {
            schema: SCHEMA,
            name: "kms-enclave".into(),
            version: "0.1.0".into(),
            variant: Variant::Production,
            source_commit: "ab".repeat(20),
            toolchain: Toolchain {
                rustc: "rustc 1.95.0".into(),
                cc: "gcc".into(),
                libc: "libc6-dev 2.36".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                profile: "enclave".into(),
                rustflags: vec![],
            },
            inputs: Inputs {
                kernel: input("bzImage"),
                kernel_version: "test".into(),
                modules: vec![],
                cmdline_sha256: crate::sha256_hex(&eif.cmdline),
                init: input("init"),
                runtime: input("usr/bin/kms-enclave"),
                enclave_args: vec!["--party".into(), "1".into()],
                extra_files: vec![],
                cargo_lock_sha256: "11".repeat(32),
            },
            image_sha256: crate::sha256_hex(&bytes),
            pcrs: eif.measurements(),
        }
    }

    #[test]
    fn a_manifest_accepts_its_image_and_names_what_differs_in_another() {
        let eif = image();
        let m = manifest_of(&eif);
        let round = Manifest::from_json(&m.to_json().unwrap()).unwrap();
        assert_eq!(round, m);
        m.check_image(&eif.to_bytes().unwrap()).unwrap();

        let mut other = eif.clone();
        other.ramdisks[1].push(0);
        let err = m.check_image(&other.to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(err, ManifestError::Mismatch { what: "PCR0", .. }),
            "{err}"
        );

        // Same sections, other metadata: same PCRs, another file.
        let mut renamed = eif.clone();
        renamed.metadata.image_version = "0.2.0".into();
        let err = m.check_image(&renamed.to_bytes().unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::Mismatch {
                    what: "image sha256",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn document_pcrs_are_checked_by_index_and_length() {
        let eif = image();
        let m = manifest_of(&eif);
        let mut pcrs: std::collections::BTreeMap<u8, Vec<u8>> = m
            .pcrs
            .as_arrays()
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u8, p.to_vec()))
            .collect();
        m.check_document_pcrs(&pcrs).unwrap();
        pcrs.insert(2, vec![0; 48]);
        assert!(m.check_document_pcrs(&pcrs).is_err());
        pcrs.remove(&1);
        assert_eq!(
            m.check_document_pcrs(&pcrs),
            Err(ManifestError::MissingPcr(1))
        );
    }

    #[test]
    fn another_schema_is_refused() {
        let mut m = manifest_of(&image());
        m.schema = 2;
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_json(&json), Err(ManifestError::Schema(2)));
    }
}
