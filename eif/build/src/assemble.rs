//! The image from its inputs' bytes: two ramdisks, the EIF, and the release manifest.
//!
//! - Ramdisk 0, the boot ramdisk (PCR1 with the kernel and command line): `/init`
//!   (`kms-init`), `/dev/console`, the mount points, and the kernel modules with their load
//!   list if the kernel needs any.
//! - Ramdisk 1, the application (PCR2): `/usr/bin/kms-enclave`, its fixed arguments
//!   (`/etc/kms-enclave/args`) and, in developer images only, the developer files the
//!   arguments name.
//!
//! So PCR1 changes only with the kernel, its command line, the init or the modules, and PCR2
//! only with the runtime, its arguments or its files; PCR0 changes with any of them.

use crate::{BuildError, Kernel};
use kms_eif::cpio::Archive;
use kms_eif::manifest::{Input, Inputs, Manifest, Toolchain, Variant, SCHEMA};
use kms_eif::{sha256_hex, Eif, Metadata};
use kms_init::{to_lines, ARGS_PATH, INIT_PATH, MODULES_DIR, MODULES_LIST, RUNTIME_PATH};

/// The kernel command line of AWS's Nitro CLI images, byte for byte (with its final newline,
/// which is measured).
pub const NITRO_CMDLINE: &str = "reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on\n";

/// The image name in the EIF metadata and the manifest.
pub const IMAGE_NAME: &str = "kms-enclave";

/// Everything an image is made of.
#[derive(Clone)]
pub struct ImageInputs {
    /// The kernel and its modules.
    pub kernel: Kernel,
    /// The kernel command line.
    pub cmdline: Vec<u8>,
    /// `kms-init`.
    pub init: Vec<u8>,
    /// `kms-enclave`.
    pub runtime: Vec<u8>,
    /// The runtime's arguments.
    pub enclave_args: Vec<String>,
    /// Developer files: path in the image (under `etc/kms-enclave/`) and bytes.
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// The runtime variant.
    pub variant: Variant,
    /// Release version.
    pub version: String,
    /// Source commit.
    pub source_commit: String,
    /// Toolchain.
    pub toolchain: Toolchain,
    /// `Cargo.lock`'s bytes.
    pub cargo_lock: Vec<u8>,
}

/// Adds `path`'s missing parent directories (mode 0755).
fn parents(
    a: &mut Archive,
    path: &str,
    have: &mut std::collections::BTreeSet<String>,
) -> Result<(), BuildError> {
    let mut prefix = String::new();
    let comps: Vec<&str> = path.split('/').collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(c);
        if have.insert(prefix.clone()) {
            a.dir(&prefix, 0o755)?;
        }
    }
    Ok(())
}

/// The boot ramdisk.
pub fn boot_ramdisk(init: &[u8], modules: &[(String, Vec<u8>)]) -> Result<Vec<u8>, BuildError> {
    let mut a = Archive::new();
    for d in ["dev", "proc", "sys", "lib", "usr"] {
        a.dir(d, 0o755)?;
    }
    a.dir("tmp", 0o1777)?;
    a.char_device("dev/console", 0o600, 5, 1)?;
    a.file(INIT_PATH, 0o755, init.to_vec())?;
    if modules.len() > kms_init::MAX_LINES {
        return Err(BuildError::Invalid("too many kernel modules".into()));
    }
    if !modules.is_empty() {
        a.dir(MODULES_DIR, 0o755)?;
        let mut names = Vec::new();
        for (name, bytes) in modules {
            if name.is_empty() || name.contains(['/', '\n', '\r']) {
                return Err(BuildError::Invalid(format!("bad module name {name:?}")));
            }
            a.file(&format!("{MODULES_DIR}/{name}"), 0o644, bytes.clone())?;
            names.push(name.clone());
        }
        a.file(MODULES_LIST, 0o644, to_lines(&names).into_bytes())?;
    }
    Ok(a.to_bytes()?)
}

/// The application ramdisk.
pub fn app_ramdisk(
    runtime: &[u8],
    args: &[String],
    extra: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, BuildError> {
    if args.len() > kms_init::MAX_LINES
        || args
            .iter()
            .any(|a| a.is_empty() || a.contains('\n') || a.contains('\r'))
    {
        return Err(BuildError::Invalid(format!(
            "enclave arguments: at most {} non-empty ones without line breaks",
            kms_init::MAX_LINES
        )));
    }
    let mut a = Archive::new();
    let mut have = std::collections::BTreeSet::new();
    parents(&mut a, RUNTIME_PATH, &mut have)?;
    a.file(RUNTIME_PATH, 0o755, runtime.to_vec())?;
    parents(&mut a, ARGS_PATH, &mut have)?;
    a.file(ARGS_PATH, 0o644, to_lines(args).into_bytes())?;
    for (path, bytes) in extra {
        if !path.starts_with("etc/kms-enclave/") || path == ARGS_PATH {
            return Err(BuildError::Invalid(format!(
                "extra file {path:?} must be under etc/kms-enclave/"
            )));
        }
        parents(&mut a, path, &mut have)?;
        a.file(path, 0o600, bytes.clone())?;
    }
    Ok(a.to_bytes()?)
}

/// The image and its manifest.
pub fn assemble(i: &ImageInputs) -> Result<(Vec<u8>, Manifest), BuildError> {
    let eif = Eif {
        kernel: i.kernel.image.clone(),
        cmdline: i.cmdline.clone(),
        metadata: Metadata::new(IMAGE_NAME, &i.version, &i.kernel.version),
        ramdisks: vec![
            boot_ramdisk(&i.init, &i.kernel.modules)?,
            app_ramdisk(&i.runtime, &i.enclave_args, &i.extra_files)?,
        ],
    };
    let bytes = eif.to_bytes()?;
    let input = |name: &str, b: &[u8]| Input {
        name: name.into(),
        sha256: sha256_hex(b),
    };
    let manifest = Manifest {
        schema: SCHEMA,
        name: IMAGE_NAME.into(),
        version: i.version.clone(),
        variant: i.variant,
        source_commit: i.source_commit.clone(),
        toolchain: i.toolchain.clone(),
        inputs: Inputs {
            kernel: input("bzImage", &i.kernel.image),
            kernel_version: i.kernel.version.clone(),
            modules: i.kernel.modules.iter().map(|(n, b)| input(n, b)).collect(),
            cmdline_sha256: sha256_hex(&i.cmdline),
            init: input(INIT_PATH, &i.init),
            runtime: input(RUNTIME_PATH, &i.runtime),
            enclave_args: i.enclave_args.clone(),
            extra_files: i.extra_files.iter().map(|(n, b)| input(n, b)).collect(),
            cargo_lock_sha256: sha256_hex(&i.cargo_lock),
        },
        image_sha256: sha256_hex(&bytes),
        pcrs: eif.measurements(),
    };
    Ok((bytes, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ImageInputs {
        ImageInputs {
            kernel: Kernel {
                image: b"kernel".to_vec(),
                version: "6.1.0".into(),
                modules: vec![],
            },
            cmdline: NITRO_CMDLINE.as_bytes().to_vec(),
            init: b"init binary".to_vec(),
            runtime: b"runtime binary".to_vec(),
            enclave_args: vec!["--party".into(), "1".into()],
            extra_files: vec![],
            variant: Variant::Production,
            version: "0.1.0".into(),
            source_commit: "ab".repeat(20),
            toolchain: Toolchain {
                rustc: "rustc 1.95.0".into(),
                cc: "cc".into(),
                libc: "libc".into(),
                target: "t".into(),
                profile: "p".into(),
                rustflags: vec![],
            },
            cargo_lock: b"lock".to_vec(),
        }
    }

    /// Which PCRs each input moves: the runtime and its arguments only PCR0 and PCR2; the
    /// kernel, command line, init and modules PCR0 and PCR1.
    #[test]
    fn each_input_moves_exactly_the_pcrs_it_belongs_to() {
        let (_, base) = assemble(&inputs()).unwrap();
        let moved = |f: &dyn Fn(&mut ImageInputs)| {
            let mut i = inputs();
            f(&mut i);
            let (_, m) = assemble(&i).unwrap();
            (
                m.pcrs.pcr0 != base.pcrs.pcr0,
                m.pcrs.pcr1 != base.pcrs.pcr1,
                m.pcrs.pcr2 != base.pcrs.pcr2,
            )
        };
        assert_eq!(moved(&|i| i.runtime[0] ^= 1), (true, false, true));
        assert_eq!(
            moved(&|i| i.enclave_args[1] = "2".into()),
            (true, false, true)
        );
        assert_eq!(moved(&|i| i.kernel.image[0] ^= 1), (true, true, false));
        assert_eq!(
            moved(&|i| i.cmdline.pop().map(|_| ()).unwrap()),
            (true, true, false)
        );
        assert_eq!(moved(&|i| i.init[0] ^= 1), (true, true, false));
        assert_eq!(
            moved(&|i| i.kernel.modules.push(("x.ko".into(), vec![1]))),
            (true, true, false)
        );
        // The manifest's other fields are not measured.
        assert_eq!(moved(&|i| i.version = "9".into()), (false, false, false));
    }

    #[test]
    fn bad_arguments_and_misplaced_files_are_refused() {
        let mut i = inputs();
        i.enclave_args.push("a\nb".into());
        assert!(assemble(&i).is_err());
        let mut i = inputs();
        i.extra_files.push(("etc/passwd".into(), vec![]));
        assert!(assemble(&i).is_err());
    }
}
