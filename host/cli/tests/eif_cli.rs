//! `kms eif describe` and `kms eif verify`: an image against its manifest (and a tampered or
//! different image refused, naming what differs), and a real Nitro attestation document (from a
//! production enclave, signed under AWS's root) against a manifest holding its PCRs.

use kms_eif::manifest::{Manifest, Toolchain, Variant};
use kms_eif::Pcr;
use std::process::Command;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../attestation/verify/tests/fixtures/"
);

fn kms(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kms"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn inputs(runtime: &[u8]) -> kms_eif_build::ImageInputs {
    kms_eif_build::ImageInputs {
        kernel: kms_eif_build::Kernel {
            image: b"a kernel".to_vec(),
            version: "6.12.0".into(),
            modules: vec![],
        },
        cmdline: kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
        init: b"an init".to_vec(),
        runtime: runtime.to_vec(),
        enclave_args: vec!["--party".into(), "1".into()],
        extra_files: vec![],
        variant: Variant::Production,
        version: "0.1.0".into(),
        source_commit: "ab".repeat(20),
        toolchain: Toolchain {
            rustc: "rustc 1.95.0".into(),
            cc: "cc".into(),
            libc: "libc6-dev".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "enclave".into(),
            rustflags: vec![],
        },
        cargo_lock: b"lock".to_vec(),
    }
}

#[test]
fn describe_prints_the_manifest_pcrs_and_verify_names_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (eif, manifest) = kms_eif_build::assemble(&inputs(b"runtime v1")).unwrap();
    let (image, man) = (dir.path().join("a.eif"), dir.path().join("manifest.json"));
    std::fs::write(&image, &eif).unwrap();
    std::fs::write(&man, manifest.to_json().unwrap()).unwrap();
    let (image, man) = (image.to_str().unwrap(), man.to_str().unwrap());

    let (ok, out, err) = kms(&["eif", "describe", "--json", image]);
    assert!(ok, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["Measurements"]["PCR0"], manifest.pcrs.pcr0.to_hex());
    assert_eq!(d["Measurements"]["PCR1"], manifest.pcrs.pcr1.to_hex());
    assert_eq!(d["Measurements"]["PCR2"], manifest.pcrs.pcr2.to_hex());
    assert_eq!(d["ImageSha256"], manifest.image_sha256);
    assert_eq!(
        d["Metadata"]["BuildMetadata"]["BuildTime"],
        "1970-01-01T00:00:00+00:00"
    );
    let (ok, out, _) = kms(&["eif", "describe", image]);
    assert!(ok && out.contains(&manifest.pcrs.pcr2.to_hex()), "{out}");

    let (ok, out, err) = kms(&["eif", "verify", "--manifest", man, "--image", image]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("OK: the image is release kms-enclave 0.1.0"),
        "{out}"
    );

    // A flipped byte: the CRC no longer matches.
    let mut torn = eif.clone();
    let last = torn.len() - 1;
    torn[last] ^= 1;
    let torn_path = dir.path().join("torn.eif");
    std::fs::write(&torn_path, &torn).unwrap();
    let refused = |image: &std::path::Path| {
        let (ok, _, err) = kms(&[
            "eif",
            "verify",
            "--manifest",
            man,
            "--image",
            image.to_str().unwrap(),
        ]);
        assert!(!ok);
        err
    };
    let err = refused(&torn_path);
    assert!(err.contains("CRC32 mismatch"), "{err}");

    // A well-formed image of another runtime: PCR0 is named.
    let (other, _) = kms_eif_build::assemble(&inputs(b"runtime v2")).unwrap();
    let other_path = dir.path().join("other.eif");
    std::fs::write(&other_path, &other).unwrap();
    let err = refused(&other_path);
    assert!(err.contains("PCR0: the manifest has"), "{err}");
}

#[test]
fn verify_checks_a_real_nitro_document_against_a_manifest() {
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{FIXTURES}evervault_beta_nondebug_2022-10-13.json")).unwrap(),
    )
    .unwrap();
    let pcr = |k: &str| Pcr::from_hex(meta[k].as_str().unwrap()).unwrap();
    let (_, mut manifest): (_, Manifest) = kms_eif_build::assemble(&inputs(b"x")).unwrap();
    manifest.pcrs.pcr0 = pcr("pcr0");
    manifest.pcrs.pcr1 = pcr("pcr1");
    manifest.pcrs.pcr2 = pcr("pcr2");
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("manifest.json");
    std::fs::write(&man, manifest.to_json().unwrap()).unwrap();
    let doc = format!("{FIXTURES}evervault_beta_nondebug_2022-10-13.cbor");
    let at = meta["timestamp_ms"].as_u64().unwrap().to_string();
    let man_s = man.to_str().unwrap();

    // `kms eif verify` of the fixture against the manifest file as it is now.
    let verify = |extra: &[&str]| {
        let mut args = vec!["eif", "verify", "--manifest", man_s, "--attestation", &doc];
        args.extend_from_slice(extra);
        kms(&args)
    };

    // At its time, under AWS's root (the default): this enclave ran the manifest's release.
    let (ok, out, err) = verify(&["--at-ms", &at]);
    assert!(ok, "{err}");
    assert!(
        out.contains("i-020b6af9246d90e92-enc0183d09086c24190"),
        "{out}"
    );
    assert!(out.contains("signed under the pinned root"), "{out}");

    // Today the leaf certificate has long expired.
    let (ok, _, err) = verify(&[]);
    assert!(!ok);
    assert!(err.contains("not valid at"), "{err}");

    // Another release's PCR2: refused, naming it.
    manifest.pcrs.pcr2 = Pcr([0x42; 48]);
    std::fs::write(&man, manifest.to_json().unwrap()).unwrap();
    let (ok, _, err) = verify(&["--at-ms", &at]);
    assert!(!ok);
    assert!(err.contains("PCR2: the manifest has 4242"), "{err}");

    // The emulator mode reads the PCRs without a signature, and says so.
    manifest.pcrs.pcr2 = pcr("pcr2");
    std::fs::write(&man, manifest.to_json().unwrap()).unwrap();
    let (ok, out, err) = verify(&["--unsigned-emulator"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("OK (UNSIGNED, emulator only)"), "{out}");
}

#[test]
fn policy_trusts_production_releases_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, manifest) = kms_eif_build::assemble(&inputs(b"runtime v1")).unwrap();
    let man = dir.path().join("manifest.json");
    std::fs::write(&man, manifest.to_json().unwrap()).unwrap();
    let (ok, out, err) = kms(&["eif", "policy", "--manifest", man.to_str().unwrap()]);
    assert!(ok, "{err}");
    let policy: kms_attestation::Policy = serde_json::from_str(&out).unwrap();
    assert_eq!(policy.releases.len(), 1);
    assert_eq!(policy.releases[0].pcr0, manifest.pcrs.pcr0.0.to_vec());
    assert_eq!(policy.releases[0].pcr2, manifest.pcrs.pcr2.0.to_vec());
    assert!(!policy.allow_debug);

    let mut dev = inputs(b"runtime v1");
    dev.variant = Variant::InsecureDev;
    let (_, dev_manifest) = kms_eif_build::assemble(&dev).unwrap();
    std::fs::write(&man, dev_manifest.to_json().unwrap()).unwrap();
    let (ok, _, err) = kms(&["eif", "policy", "--manifest", man.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("never a trusted release"), "{err}");
}
