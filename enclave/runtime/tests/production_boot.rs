//! The production boot path: without a developer root CA the enclave takes its attestation
//! documents from `/dev/nsm`. Outside a Nitro Enclave there is none, and the enclave must stop
//! with a typed error before it asks its host for anything (no sealed state fetched, no data
//! key requested, nothing relayed): an enclave without an attestation provider never runs.

use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn without_an_nsm_the_enclave_stops_before_talking_to_its_host() {
    if std::path::Path::new("/dev/nsm").exists() {
        eprintln!("skipped: this machine has /dev/nsm");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("channel.sock");
    // The host's end of the channel: it must never see a connection.
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let out = tokio::task::spawn_blocking({
        let socket = socket.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_kms-enclave"))
                .args(["--party", "1", "--channel"])
                .arg(format!("unix:{}", socket.display()))
                .args([
                    "--aws-kms-key-arn",
                    "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                    "--aws-region",
                    "eu-west-1",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/dev/nsm"), "{stderr}");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err(),
        "the enclave connected to its host without an attestation provider"
    );
}
