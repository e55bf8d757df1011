//! The auditor subcommand on a real Nitro document: accepted at its timestamp, rejected today,
//! in human and JSON form.

use std::process::Command;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../attestation/verify/tests/fixtures/"
);

fn policy_file(dir: &std::path::Path) -> std::path::PathBuf {
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{FIXTURES}evervault_beta_nondebug_2022-10-13.json")).unwrap(),
    )
    .unwrap();
    let policy = serde_json::json!({
        "releases": [{"name": "evervault beta", "pcr0": meta["pcr0"], "pcr1": meta["pcr1"], "pcr2": meta["pcr2"]}],
        "max_age_s": 300
    });
    let p = dir.join("policy.json");
    std::fs::write(&p, serde_json::to_vec(&policy).unwrap()).unwrap();
    p
}

fn kms(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kms"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn auditor_accepts_at_the_timestamp_and_rejects_today() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(dir.path());
    let doc = format!("{FIXTURES}evervault_beta_nondebug_2022-10-13.cbor");
    let (ok, text) = kms(&[
        "attestation",
        "verify",
        "--document",
        &doc,
        "--policy",
        policy.to_str().unwrap(),
        "--at-ms",
        "1665651482136",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("verdict:     ACCEPTED"), "{text}");
    assert!(
        text.contains("641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"),
        "{text}"
    );
    assert!(text.contains("release:     evervault beta"), "{text}");
    assert!(text.contains("debug mode:  false"), "{text}");

    let (ok, json) = kms(&[
        "--json",
        "attestation",
        "verify",
        "--document",
        &doc,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert!(
        !ok,
        "verifying today must fail: the leaf certificate expired in 2022"
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["verdict"], "rejected");
    assert!(
        v["error"].as_str().unwrap().contains("not valid at"),
        "{json}"
    );
    assert_eq!(v["chain"].as_array().unwrap().len(), 5);

    // The debug document under the same (production) policy.
    let dbg = format!("{FIXTURES}evervault_beta_debug_2022-10-12.cbor");
    let (ok, text) = kms(&[
        "attestation",
        "verify",
        "--document",
        &dbg,
        "--policy",
        policy.to_str().unwrap(),
        "--at-ms",
        "1665582606081",
    ]);
    assert!(!ok);
    assert!(text.contains("debug-mode enclave"), "{text}");
}
