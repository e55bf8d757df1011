//! The enclave image, built reproducibly, described, and verified.
//!
//! - [`binaries`]: compiles `kms-enclave` and `kms-init` as static x86_64 binaries with the
//!   pinned toolchain and fixed flags (no build ID, the build machine's paths remapped, no
//!   incremental state), and records the toolchain.
//! - [`kernel`]: the kernel input: a file pinned by sha256, its version read from the bzImage
//!   header, and optional modules for the init to load.
//! - [`assemble`]: the ramdisks and the EIF from those bytes, and the release manifest. Pure:
//!   the same bytes in give the same image out.
//! - [`describe`]: what `nitro-cli describe-eif` prints (PCRs, and here the image sha256).
//! - [`verify`]: an image or a live attestation document against a release manifest.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod assemble;
pub mod binaries;
pub mod describe;
pub mod kernel;
pub mod verify;

pub use assemble::{assemble, ImageInputs, NITRO_CMDLINE};
pub use binaries::{build_binaries, Binaries, BinariesSpec};
pub use kernel::Kernel;

use std::path::PathBuf;

/// Why an image could not be built, described or verified.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A command could not be run or failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command.
        command: String,
        /// Its exit status or error, and its last output.
        detail: String,
    },
    /// The compiler is not the pinned one.
    #[error("the image is built with {expected}; this machine has {found}")]
    Toolchain {
        /// The pinned version.
        expected: String,
        /// `rustc -V` here.
        found: String,
    },
    /// An input's sha256 is not the pinned one.
    #[error("{what}: sha256 {found}, pinned {expected}")]
    Pinned {
        /// The input.
        what: String,
        /// Pinned.
        expected: String,
        /// Found.
        found: String,
    },
    /// The source tree has uncommitted changes (the manifest could not name its source).
    #[error("the source tree has uncommitted changes (use --allow-dirty for a test build)")]
    Dirty,
    /// A ramdisk could not be assembled.
    #[error("ramdisk: {0}")]
    Cpio(#[from] kms_eif::cpio::CpioError),
    /// The EIF could not be written or read.
    #[error("image: {0}")]
    Eif(#[from] kms_eif::EifError),
    /// The manifest does not parse or does not match.
    #[error("manifest: {0}")]
    Manifest(#[from] kms_eif::ManifestError),
    /// The attestation document does not verify.
    #[error("attestation: {0}")]
    Attestation(#[from] kms_attestation::AttestationError),
    /// Bad input (an argument or a file's contents).
    #[error("{0}")]
    Invalid(String),
}

/// Reads a file, naming it in the error.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|e| BuildError::Io(path.to_path_buf(), e))
}

/// Writes a file, naming it in the error.
pub fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), BuildError> {
    std::fs::write(path, bytes).map_err(|e| BuildError::Io(path.to_path_buf(), e))
}

/// The release version an image records (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything `kms eif build` needs.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Binaries to build.
    pub binaries: BinariesSpec,
    /// Accept uncommitted changes (the manifest's commit then ends in `-dirty`).
    pub allow_dirty: bool,
    /// The kernel file, its pinned sha256, and its modules in load order.
    pub kernel: (PathBuf, String, Vec<PathBuf>),
    /// The kernel command line.
    pub cmdline: Vec<u8>,
    /// The runtime's arguments.
    pub enclave_args: Vec<String>,
    /// Developer files (path in the image, file here): developer images only.
    pub extra_files: Vec<(String, PathBuf)>,
}

/// Builds the image: the binaries, then the ramdisks, the EIF and its manifest.
pub fn build(spec: &ImageSpec) -> Result<(Vec<u8>, kms_eif::Manifest), BuildError> {
    use kms_eif::manifest::Variant;
    if spec.binaries.variant == Variant::Production && !spec.extra_files.is_empty() {
        return Err(BuildError::Invalid(
            "a production image holds no developer files".into(),
        ));
    }
    let source_commit = binaries::source_commit(&spec.binaries.source, spec.allow_dirty)?;
    let (kernel_path, kernel_sha, modules) = &spec.kernel;
    let kernel = Kernel::load(kernel_path, kernel_sha, modules)?;
    let cargo_lock = read(&spec.binaries.source.join("Cargo.lock"))?;
    let mut extra_files = Vec::new();
    for (image_path, file) in &spec.extra_files {
        extra_files.push((image_path.clone(), read(file)?));
    }
    let bins = build_binaries(&spec.binaries)?;
    assemble(&ImageInputs {
        kernel,
        cmdline: spec.cmdline.clone(),
        init: bins.init,
        runtime: bins.runtime,
        enclave_args: spec.enclave_args.clone(),
        extra_files,
        variant: spec.binaries.variant,
        version: VERSION.into(),
        source_commit,
        toolchain: bins.toolchain,
        cargo_lock,
    })
}
