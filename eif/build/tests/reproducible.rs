//! The production image is reproducible: two checkouts of one commit, in two folders, cloned and
//! built one after the other, give the same EIF bytes and PCRs. The PCRs are also recomputed
//! here from the file as AWS specifies them (SHA-384 extends over the raw section payloads,
//! read with this test's own offsets), and read by AWS's own EIF reader
//! (`aws-nitro-enclaves-image-format`, in `eif/cross-check`); all three agree. Then the real
//! binaries are assembled again with one byte changed: the runtime moves PCR0 and PCR2 only,
//! the kernel PCR0 and PCR1 only.
//!
//! The checkouts are clones of this repository's HEAD: commit before running it locally.
//!
//! What this proves and what it does not: the second build compiles every workspace crate again,
//! from the second folder, but shares the compiled crates.io dependencies (and their C code) with
//! the first through the target directory, to stay within CI's time. So it shows that the
//! checkout's folder, the time and the assembly leave no trace; that the dependencies compile to
//! the same bytes under another cargo home and target directory is shown by
//! `scripts/check-reproducible-cold`, which shares nothing (about 25 minutes, outside CI).

mod support;

use kms_eif::manifest::Variant;
use sha2::{Digest, Sha384};
use std::path::Path;
use std::process::Command;
use support::{target_dir, vm_tools, workspace};

fn git_clone(into: &Path) {
    let ok = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(workspace())
        .arg(into)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git clone");
}

fn spec(source: &Path) -> kms_eif_build::ImageSpec {
    let tools = vm_tools();
    kms_eif_build::ImageSpec {
        binaries: kms_eif_build::BinariesSpec {
            source: source.to_path_buf(),
            target_dir: target_dir(),
            variant: Variant::Production,
        },
        allow_dirty: false,
        kernel: (tools.kernel, tools.kernel_sha256, tools.modules),
        cmdline: kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
        enclave_args: "--party 1 --channel vsock:3:5000 \
             --aws-kms-key-arn arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab \
             --aws-region eu-west-1"
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        extra_files: vec![],
    }
}

/// PCR0–2 as AWS specifies them, from the file's own section table (not this crate's reader).
fn independent_pcrs(eif: &[u8]) -> [String; 3] {
    let be16 = |at: usize| u16::from_be_bytes(eif[at..at + 2].try_into().unwrap());
    let be64 = |at: usize| u64::from_be_bytes(eif[at..at + 8].try_into().unwrap());
    assert_eq!(&eif[..4], b".eif");
    // magic 4, version 2, flags 2, memory 8, CPUs 8, reserved 2: the section count at 26, then
    // 32 offsets and 32 sizes.
    let count = be16(26) as usize;
    let (mut image, mut boot, mut app) = (Sha384::new(), Sha384::new(), Sha384::new());
    let mut ramdisks = 0;
    for i in 0..count {
        let off = be64(28 + 8 * i) as usize;
        let size = be64(28 + 8 * 32 + 8 * i) as usize;
        let kind = be16(off);
        let payload = &eif[off + 12..off + 12 + size];
        match kind {
            1 | 2 => {
                image.update(payload);
                boot.update(payload);
            }
            3 => {
                image.update(payload);
                if ramdisks == 0 {
                    boot.update(payload);
                } else {
                    app.update(payload);
                }
                ramdisks += 1;
            }
            _ => {}
        }
    }
    let extend = |h: Sha384| {
        let mut r = Sha384::new();
        r.update([0u8; 48]);
        r.update(h.finalize());
        hex::encode(r.finalize())
    };
    [extend(image), extend(boot), extend(app)]
}

/// AWS's reader's view of the image.
fn aws_reader(eif_path: &Path) -> serde_json::Value {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["run", "--quiet", "--release", "--manifest-path"])
        .arg(workspace().join("eif/cross-check/Cargo.toml"))
        .arg("--")
        .arg(eif_path)
        .env("CARGO_TARGET_DIR", target_dir().join("eif-cross-check"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cross-check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn two_checkouts_of_one_commit_build_the_same_image_with_the_pcrs_aws_computes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("checkout-a");
    git_clone(&a);
    let (eif_a, manifest_a) = kms_eif_build::build(&spec(&a)).unwrap();
    // Another folder, cloned after the first build finished.
    let b = dir.path().join("elsewhere/checkout-b");
    git_clone(&b);
    let (eif_b, manifest_b) = kms_eif_build::build(&spec(&b)).unwrap();

    assert_eq!(manifest_a, manifest_b, "the two builds' manifests differ");
    assert_eq!(
        kms_eif::sha256_hex(&eif_a),
        kms_eif::sha256_hex(&eif_b),
        "the two builds' images differ"
    );
    assert!(!manifest_a.source_commit.ends_with("-dirty"));
    manifest_a.check_image(&eif_b).unwrap();

    // An independent computation and AWS's reader give the manifest's PCRs.
    let pcrs = [
        manifest_a.pcrs.pcr0.to_hex(),
        manifest_a.pcrs.pcr1.to_hex(),
        manifest_a.pcrs.pcr2.to_hex(),
    ];
    assert_eq!(independent_pcrs(&eif_a), pcrs);
    let path = dir.path().join("kms-enclave.eif");
    std::fs::write(&path, &eif_a).unwrap();
    let aws = aws_reader(&path);
    assert_eq!(aws["CheckCRC"], true, "{aws}");
    assert_eq!(aws["Version"], 4, "{aws}");
    for (i, p) in pcrs.iter().enumerate() {
        assert_eq!(aws[format!("PCR{i}")].as_str(), Some(p.as_str()), "{aws}");
    }
    assert_eq!(aws["Metadata"]["ImageName"], "kms-enclave", "{aws}");

    // The real binaries, one byte changed.
    let bins = target_dir().join("x86_64-unknown-linux-gnu/enclave");
    let tools = vm_tools();
    let inputs = kms_eif_build::ImageInputs {
        kernel: kms_eif_build::Kernel::load(&tools.kernel, &tools.kernel_sha256, &tools.modules)
            .unwrap(),
        cmdline: kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
        init: std::fs::read(bins.join("kms-init")).unwrap(),
        runtime: std::fs::read(bins.join("kms-enclave")).unwrap(),
        enclave_args: manifest_a.inputs.enclave_args.clone(),
        extra_files: vec![],
        variant: Variant::Production,
        version: manifest_a.version.clone(),
        source_commit: manifest_a.source_commit.clone(),
        toolchain: manifest_a.toolchain.clone(),
        cargo_lock: std::fs::read(b.join("Cargo.lock")).unwrap(),
    };
    let (again, _) = kms_eif_build::assemble(&inputs).unwrap();
    assert_eq!(
        again, eif_b,
        "assembling the same binaries again gives another image"
    );
    let base = manifest_a.pcrs;
    let mut runtime = inputs.clone();
    let mid = runtime.runtime.len() / 2;
    runtime.runtime[mid] ^= 1;
    let (_, m) = kms_eif_build::assemble(&runtime).unwrap();
    assert_ne!(m.pcrs.pcr0, base.pcr0);
    assert_eq!(m.pcrs.pcr1, base.pcr1);
    assert_ne!(m.pcrs.pcr2, base.pcr2);
    let mut kernel = inputs.clone();
    let mid = kernel.kernel.image.len() / 2;
    kernel.kernel.image[mid] ^= 1;
    let (_, m) = kms_eif_build::assemble(&kernel).unwrap();
    assert_ne!(m.pcrs.pcr0, base.pcr0);
    assert_ne!(m.pcrs.pcr1, base.pcr1);
    assert_eq!(m.pcrs.pcr2, base.pcr2);
    println!(
        "image sha256 {}; PCR0 {}; PCR1 {}; PCR2 {}",
        manifest_a.image_sha256, pcrs[0], pcrs[1], pcrs[2]
    );
}
