//! `kms eif`: build the enclave image reproducibly, describe it, verify it (or a live enclave's
//! attestation document) against a release manifest. See `eif/README.md`.

use clap::Subcommand;
use kms_eif::manifest::Variant;
use kms_eif::Manifest;
use kms_eif_build::verify::{DocumentTrust, Verified};
use std::path::PathBuf;

/// `kms eif` subcommands.
#[derive(Subcommand)]
pub enum EifCmd {
    /// Build the image from the source tree: writes OUT/kms-enclave.eif and OUT/manifest.json.
    Build {
        /// The workspace (source tree) to build.
        #[arg(long, default_value = ".")]
        source: PathBuf,
        /// Cargo's target directory (default: $CARGO_TARGET_DIR, else SOURCE/target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The kernel (bzImage).
        #[arg(long)]
        kernel: PathBuf,
        /// The kernel's pinned sha256.
        #[arg(long)]
        kernel_sha256: String,
        /// A kernel module for the init to load (repeat, in load order).
        #[arg(long = "module")]
        modules: Vec<PathBuf>,
        /// The kernel command line, byte for byte (default: Nitro CLI's, with its newline).
        #[arg(long)]
        cmdline_file: Option<PathBuf>,
        /// The runtime's arguments, whitespace-separated (fixed in the image, measured in PCR2).
        #[arg(long, allow_hyphen_values = true)]
        enclave_args: String,
        /// `production` or `insecure-dev` (mock NSM, local sealing: test images only).
        #[arg(long, default_value = "production")]
        variant: String,
        /// A developer file, IMAGE_PATH=FILE (insecure-dev images only; repeat).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Build from a tree with uncommitted changes (the manifest says so).
        #[arg(long)]
        allow_dirty: bool,
    },
    /// Print an image's PCR0–2 and sha256 (as `nitro-cli describe-eif`).
    Describe {
        /// The image.
        image: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify an image, or a live enclave's attestation document, against a release manifest.
    /// Exits non-zero on any difference.
    Verify {
        /// The release manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// An image file.
        #[arg(long, conflicts_with = "attestation")]
        image: Option<PathBuf>,
        /// An attestation document (COSE_Sign1).
        #[arg(long)]
        attestation: Option<PathBuf>,
        /// PEM of the root to pin (default: the AWS Nitro Enclaves root G1).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Verification time in Unix milliseconds (default: now).
        #[arg(long)]
        at_ms: Option<u64>,
        /// Largest document age in seconds.
        #[arg(long, default_value_t = 600)]
        max_age_s: u64,
        /// Accept QEMU's unsigned emulated-NSM document (compares PCRs only: no authenticity).
        #[arg(long)]
        unsigned_emulator: bool,
    },
}

type R<T> = Result<T, String>;

fn read(p: &PathBuf) -> R<Vec<u8>> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs a `kms eif` subcommand.
pub fn run(cmd: EifCmd) -> R<()> {
    match cmd {
        EifCmd::Build {
            source,
            target_dir,
            out,
            kernel,
            kernel_sha256,
            modules,
            cmdline_file,
            enclave_args,
            variant,
            files,
            allow_dirty,
        } => {
            let variant = match variant.as_str() {
                "production" => Variant::Production,
                "insecure-dev" => Variant::InsecureDev,
                v => return Err(format!("unknown variant {v:?} (production | insecure-dev)")),
            };
            let source =
                std::fs::canonicalize(&source).map_err(|e| format!("{}: {e}", source.display()))?;
            let target_dir = target_dir
                .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
                .unwrap_or_else(|| source.join("target"));
            std::fs::create_dir_all(&target_dir).map_err(|e| e.to_string())?;
            let target_dir = std::fs::canonicalize(&target_dir).map_err(|e| e.to_string())?;
            let cmdline = match cmdline_file {
                Some(f) => read(&f)?,
                None => kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
            };
            let mut extra_files = Vec::new();
            for f in files {
                let (image_path, file) = f
                    .split_once('=')
                    .ok_or_else(|| format!("--file {f:?}: expected IMAGE_PATH=FILE"))?;
                extra_files.push((image_path.to_string(), PathBuf::from(file)));
            }
            let spec = kms_eif_build::ImageSpec {
                binaries: kms_eif_build::BinariesSpec {
                    source,
                    target_dir,
                    variant,
                },
                allow_dirty,
                kernel: (kernel, kernel_sha256, modules),
                cmdline,
                enclave_args: enclave_args
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                extra_files,
            };
            let (eif, manifest) = kms_eif_build::build(&spec).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let json = manifest.to_json().map_err(|e| e.to_string())?;
            kms_eif_build::write(&out.join("kms-enclave.eif"), &eif).map_err(|e| e.to_string())?;
            kms_eif_build::write(&out.join("manifest.json"), &json).map_err(|e| e.to_string())?;
            println!("{}", String::from_utf8_lossy(&json).trim_end());
            Ok(())
        }
        EifCmd::Describe { image, json } => {
            let d = kms_eif_build::describe::describe(&read(&image)?).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?
                );
            } else {
                println!("{d}");
            }
            Ok(())
        }
        EifCmd::Verify {
            manifest,
            image,
            attestation,
            root,
            at_ms,
            max_age_s,
            unsigned_emulator,
        } => {
            let m = Manifest::from_json(&read(&manifest)?).map_err(|e| e.to_string())?;
            let verified = match (image, attestation) {
                (Some(image), None) => {
                    kms_eif_build::verify::image(&m, &read(&image)?).map_err(|e| e.to_string())?
                }
                (None, Some(doc)) => {
                    let trust = if unsigned_emulator {
                        DocumentTrust::UnsignedEmulator
                    } else {
                        let root = match root {
                            Some(p) => kms_attestation::PinnedRoot::from_pem(
                                &String::from_utf8(read(&p)?).map_err(|e| e.to_string())?,
                            )
                            .map_err(|e| e.to_string())?,
                            None => kms_attestation::PinnedRoot::aws(),
                        };
                        let now = match at_ms {
                            Some(ms) => std::time::Duration::from_millis(ms),
                            None => std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_err(|e| e.to_string())?,
                        };
                        DocumentTrust::Root {
                            root,
                            now,
                            max_age_s,
                        }
                    };
                    kms_eif_build::verify::document(&m, &read(&doc)?, &trust)
                        .map_err(|e| e.to_string())?
                }
                _ => return Err("give exactly one of --image and --attestation".into()),
            };
            match verified {
                Verified::Image(p) => println!(
                    "OK: the image is release {} {} (sha256 {}; PCR0 {})",
                    m.name, m.version, m.image_sha256, p.pcr0.to_hex()
                ),
                Verified::SignedDocument { module_id } => println!(
                    "OK: enclave {module_id} runs release {} {} (document signed under the pinned root)",
                    m.name, m.version
                ),
                Verified::UnsignedEmulatorDocument { module_id } => println!(
                    "OK (UNSIGNED, emulator only): {module_id} reports the PCRs of release {} {}",
                    m.name, m.version
                ),
            }
            Ok(())
        }
    }
}
