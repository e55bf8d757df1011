//! The image's two binaries, built reproducibly.
//!
//! What could make two builds of one commit differ, and what fixes it:
//! - the compiler: pinned ([`PINNED_RUSTC`]) and checked before building; the C compiler and
//!   the static C library are recorded in the manifest;
//! - dependencies: `--locked` (`Cargo.lock` pins every crate by checksum);
//! - the build machine's paths (in panic locations and C `__FILE__`s): the cargo home and the
//!   target directory are remapped to `/cargo` and `/target`; workspace crates are compiled by
//!   cargo with paths relative to the workspace, so the checkout's folder does not appear;
//! - the linker's build ID: `--build-id=none`; debug info: none; symbols: stripped;
//! - the C library: linked statically (`+crt-static`), so the image carries no loader and no
//!   shared libraries;
//! - incremental compilation and timestamps: off (`CARGO_INCREMENTAL=0`,
//!   `SOURCE_DATE_EPOCH=1`).
//!
//! Proc macros and build scripts run on the build machine and are built without these flags
//! (`--target` keeps the two apart).

use crate::BuildError;
use kms_eif::manifest::{Toolchain, Variant};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler every release is built with (`rustc -V` must start with it).
pub const PINNED_RUSTC: &str = "rustc 1.95.0 ";
/// The target.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The cargo profile (in the workspace's `Cargo.toml`).
pub const PROFILE: &str = "enclave";

/// What to build.
#[derive(Clone, Debug)]
pub struct BinariesSpec {
    /// The workspace root.
    pub source: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// Production, or the developer runtime.
    pub variant: Variant,
}

/// The built binaries and how they were built.
#[derive(Clone)]
pub struct Binaries {
    /// `kms-init`.
    pub init: Vec<u8>,
    /// `kms-enclave`.
    pub runtime: Vec<u8>,
    /// The toolchain and flags.
    pub toolchain: Toolchain,
}

fn output(cmd: &mut Command) -> Result<String, BuildError> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| BuildError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(BuildError::Command {
            command: shown,
            detail: format!("{}: {}", out.status, tail(&out.stderr)),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines
        .iter()
        .skip(lines.len().saturating_sub(20))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cargo home (where crates.io sources are unpacked).
fn cargo_home() -> Result<PathBuf, BuildError> {
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(h));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo"))
        .ok_or_else(|| BuildError::Invalid("neither CARGO_HOME nor HOME is set".into()))
}

/// The compiler flags, with the machine's paths (the manifest records them as placeholders).
pub fn rustflags(cargo_home: &Path, target_dir: &Path) -> Vec<String> {
    vec![
        "-C".into(),
        "target-feature=+crt-static".into(),
        "-C".into(),
        "link-arg=-Wl,--build-id=none".into(),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/target", target_dir.display()),
    ]
}

/// The git commit of the source tree; an error if it has uncommitted changes and `allow_dirty`
/// is false (then the commit is suffixed `-dirty`).
pub fn source_commit(source: &Path, allow_dirty: bool) -> Result<String, BuildError> {
    let commit = output(
        Command::new("git")
            .arg("-C")
            .arg(source)
            .args(["rev-parse", "HEAD"]),
    )?;
    let status = output(Command::new("git").arg("-C").arg(source).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))?;
    if status.is_empty() {
        Ok(commit)
    } else if allow_dirty {
        Ok(format!("{commit}-dirty"))
    } else {
        Err(BuildError::Dirty)
    }
}

/// The environment every build command runs in: nothing of the caller's but the search path,
/// the home and the rustup and cargo homes, so no `RUSTFLAGS`, `RUSTC_WRAPPER`, `CC`, `CFLAGS`,
/// `CARGO_PROFILE_*` or similar can change the bytes behind the manifest's back.
fn clean(cmd: &mut Command) -> &mut Command {
    cmd.env_clear();
    for keep in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd
}

/// Refuses cargo configuration files that would change the build and that the manifest cannot
/// describe: in the source tree or any folder above it, and in the cargo home.
pub fn check_no_cargo_config(source: &Path, cargo_home: &Path) -> Result<(), BuildError> {
    let mut places: Vec<PathBuf> = source.ancestors().map(|d| d.join(".cargo")).collect();
    places.push(cargo_home.to_path_buf());
    for dir in places {
        for name in ["config.toml", "config"] {
            let f = dir.join(name);
            if f.is_file() {
                return Err(BuildError::Invalid(format!(
                    "the cargo configuration {} would change the build: remove it",
                    f.display()
                )));
            }
        }
    }
    Ok(())
}

/// The toolchain that builds in `source`, checked against the pin.
pub fn toolchain(
    source: &Path,
    cargo_home: &Path,
    target_dir: &Path,
) -> Result<Toolchain, BuildError> {
    let rustc = output(
        clean(&mut Command::new("rustc"))
            .current_dir(source)
            .arg("-V"),
    )?;
    if !rustc.starts_with(PINNED_RUSTC) {
        return Err(BuildError::Toolchain {
            expected: PINNED_RUSTC.trim().into(),
            found: rustc,
        });
    }
    let cc = output(clean(&mut Command::new("cc")).arg("--version"))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let libc =
        output(Command::new("dpkg-query").args(["-W", "-f", "${Package} ${Version}", "libc6-dev"]))
            .unwrap_or_else(|_| "unknown".into());
    let flags = rustflags(cargo_home, target_dir)
        .into_iter()
        .map(|f| {
            f.replace(&cargo_home.display().to_string(), "$CARGO_HOME")
                .replace(&target_dir.display().to_string(), "$TARGET_DIR")
        })
        .collect();
    Ok(Toolchain {
        rustc,
        cc,
        libc,
        target: TARGET.into(),
        profile: PROFILE.into(),
        rustflags: flags,
    })
}

/// Builds `kms-enclave` (of `variant`) and `kms-init`.
pub fn build_binaries(spec: &BinariesSpec) -> Result<Binaries, BuildError> {
    let home = cargo_home()?;
    check_no_cargo_config(&spec.source, &home)?;
    let toolchain = toolchain(&spec.source, &home, &spec.target_dir)?;
    let flags = rustflags(&home, &spec.target_dir).join("\u{1f}");
    let prefix_map = format!(
        "-ffile-prefix-map={}=/cargo -ffile-prefix-map={}=/target",
        home.display(),
        spec.target_dir.display()
    );
    let mut cmd = Command::new("cargo");
    clean(&mut cmd)
        .current_dir(&spec.source)
        .args([
            "build",
            "--locked",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
        ])
        .args([
            "-p",
            "kms-runtime",
            "--bin",
            "kms-enclave",
            "-p",
            "kms-init",
            "--bin",
            "kms-init",
        ])
        .env("CARGO_TARGET_DIR", &spec.target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .env("CFLAGS_x86_64_unknown_linux_gnu", &prefix_map)
        .env("CXXFLAGS_x86_64_unknown_linux_gnu", &prefix_map)
        .env("SOURCE_DATE_EPOCH", "1")
        .env("CARGO_INCREMENTAL", "0");
    if spec.variant == Variant::InsecureDev {
        cmd.args(["--features", "kms-runtime/insecure-dev"]);
    }
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| BuildError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !status.success() {
        return Err(BuildError::Command {
            command: shown,
            detail: status.to_string(),
        });
    }
    let out = spec.target_dir.join(TARGET).join(PROFILE);
    Ok(Binaries {
        init: crate::read(&out.join("kms-init"))?,
        runtime: crate::read(&out.join("kms-enclave"))?,
        toolchain,
    })
}
