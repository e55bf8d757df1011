//! The AWS KMS sealing flow end to end, with the production code on both sides of the channel:
//! the enclave's data-key functions (`kms_runtime::sealing`: one-shot recipient key attested by
//! the NSM, the AWS SDK signing with the host's credentials, HTTPS terminating in the enclave)
//! over a real enclave⇄host channel, the host's own relay and credential handler, and a local
//! KMS endpoint that checks the attestation document against its key policy's PCRs.

use kms_channel::mux::{EnclaveChannel, HostChannel};
use kms_mock_aws_kms::{MockKey, MockKms, HOST_NAME};
use kms_nsm::{MockNsm, MockRootCa, Nsm};
use kms_runtime::sealing::{self, SealingError, SealingSource, DATA_KEY_OBJECT};
use kms_sealing::{DataKeyRecord, KmsConfig, KmsSealingError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const PCRS: [[u8; 48]; 3] = [[0x11; 48], [0x22; 48], [0x33; 48]];
const ARN: &str = "arn:aws:kms:mock-region:111122223333:key/0f5e2d1c-party-1";
const ACCESS_KEY: &str = "AKIAKMSHOSTTEST00001";

fn now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

struct World {
    kms: MockKms,
    root: MockRootCa,
    data_dir: tempfile::TempDir,
}

async fn world() -> World {
    // The host's credentials, as the SDK's default chain finds them (environment here, the
    // instance role in production).
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        "host-secret-never-in-the-enclave-logs",
    );
    std::env::remove_var("AWS_SESSION_TOKEN");
    let root = MockRootCa::generate(now()).unwrap();
    let kms = MockKms::start(
        vec![MockKey {
            arn: ARN.into(),
            pcrs: PCRS,
        }],
        root.pinned().unwrap(),
        ACCESS_KEY,
        now,
    )
    .await
    .unwrap();
    World {
        kms,
        root,
        data_dir: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn nsm(&self, pcrs: [[u8; 48]; 3]) -> Arc<dyn Nsm> {
        let root =
            MockRootCa::from_parts(self.root.cert_der(), &self.root.key_pkcs8_der()).unwrap();
        Arc::new(MockNsm::new(root, "i-enclave-1", pcrs, now).unwrap())
    }

    /// A host relaying AWS KMS to `kms_addr` and keeping sealed objects in the data dir, and
    /// the enclave's end of its channel.
    fn channel(&self, kms_addr: std::net::SocketAddr) -> (HostChannel, EnclaveChannel) {
        let (host_io, enclave_io) = tokio::net::UnixStream::pair().unwrap();
        let blobs = kms_host::Blobs::new(self.data_dir.path().join("blobs"));
        let rpc = kms_connector::ChainRpc::new("http://127.0.0.1:9").unwrap();
        let host = HostChannel::start(
            Box::new(host_io),
            kms_host::process::dialer(
                rpc.clone(),
                Some(kms_addr.to_string()),
                kms_host::process::Preamble { slot: 0, slots: 1 },
            ),
            kms_host::process::handler(
                self.data_dir.path().to_path_buf(),
                blobs,
                rpc.clone(),
                Arc::new(kms_host::Nonces::new(rpc, [0; 20]).lease()),
            ),
        );
        let (enclave, _jobs, _accepted) = EnclaveChannel::start(Box::new(enclave_io));
        (host, enclave)
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.kms.ca_der.clone().into()).unwrap();
        roots
    }

    fn config(&self) -> KmsConfig {
        KmsConfig {
            region: "mock-region".into(),
            endpoint_host: HOST_NAME.into(),
            key_arn: ARN.into(),
            owner: "party-1".into(),
        }
    }

    fn source(&self) -> SealingSource {
        SealingSource::AwsKms {
            config: self.config(),
            roots: self.roots(),
        }
    }

    fn record_path(&self) -> std::path::PathBuf {
        self.data_dir.path().join("sealed").join(DATA_KEY_OBJECT)
    }
}

#[tokio::test]
async fn first_boot_and_every_later_boot_get_the_same_data_key() {
    let w = world().await;
    let (_host, enclave) = w.channel(w.kms.addr);
    let created = sealing::create_data_key(&enclave, w.config(), w.roots(), w.nsm(PCRS))
        .await
        .unwrap();
    // The host holds the record (the KMS key and its ciphertext blob), never the key.
    let record = DataKeyRecord::decode(&std::fs::read(w.record_path()).unwrap()).unwrap();
    assert_eq!(record.key_arn, ARN);
    assert!(!record
        .ciphertext_blob
        .windows(32)
        .any(|win| win == created.as_slice()));

    // A reboot (a new channel and a new NSM session) gets it back from KMS.
    let (_host, enclave) = w.channel(w.kms.addr);
    let opened = sealing::open_data_key(&enclave, &w.source(), w.nsm(PCRS))
        .await
        .unwrap();
    assert_eq!(*opened, *created);
    assert_eq!(w.kms.counters.released.load(Ordering::SeqCst), 2);

    // A second first boot would orphan the state sealed under the first key: refused before
    // any KMS call.
    let again = sealing::create_data_key(&enclave, w.config(), w.roots(), w.nsm(PCRS)).await;
    assert!(
        matches!(again, Err(SealingError::RecordExists)),
        "{again:?}"
    );
    assert_eq!(w.kms.counters.released.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn another_release_and_a_debug_enclave_are_denied_by_the_key_policy() {
    let w = world().await;
    let (_host, enclave) = w.channel(w.kms.addr);
    let other_release = [[0x11; 48], [0x22; 48], [0x34; 48]];
    for pcrs in [other_release, [[0; 48]; 3]] {
        let denied = sealing::create_data_key(&enclave, w.config(), w.roots(), w.nsm(pcrs)).await;
        match denied {
            Err(SealingError::Kms(KmsSealingError::Kms(msg))) => {
                assert!(msg.starts_with("AccessDeniedException"), "{msg}")
            }
            other => panic!("expected a denial, got {other:?}"),
        }
    }
    assert_eq!(w.kms.counters.denied.load(Ordering::SeqCst), 2);
    assert_eq!(w.kms.counters.released.load(Ordering::SeqCst), 0);
    assert!(!w.record_path().exists());
}

#[tokio::test]
async fn a_missing_record_is_an_error_never_a_new_key() {
    let w = world().await;
    let (_host, enclave) = w.channel(w.kms.addr);
    let opened = sealing::open_data_key(&enclave, &w.source(), w.nsm(PCRS)).await;
    assert!(matches!(opened, Err(SealingError::NoRecord)), "{opened:?}");
    assert_eq!(w.kms.counters.released.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_host_cannot_substitute_the_endpoint_the_key_or_the_blob() {
    let w = world().await;
    let (_host, enclave) = w.channel(w.kms.addr);
    let created = sealing::create_data_key(&enclave, w.config(), w.roots(), w.nsm(PCRS))
        .await
        .unwrap();
    let honest = std::fs::read(w.record_path()).unwrap();

    // Its own "KMS" (a server with a certificate the enclave does not trust): TLS fails, so
    // the host can neither see the request nor answer with a key it chose.
    let impostor = MockKms::start(
        vec![MockKey {
            arn: ARN.into(),
            pcrs: PCRS,
        }],
        w.root.pinned().unwrap(),
        ACCESS_KEY,
        now,
    )
    .await
    .unwrap();
    let (_host, enclave) = w.channel(impostor.addr);
    let redirected = sealing::open_data_key(&enclave, &w.source(), w.nsm(PCRS)).await;
    assert!(
        matches!(redirected, Err(SealingError::Kms(KmsSealingError::Kms(_)))),
        "{redirected:?}"
    );
    assert_eq!(impostor.counters.released.load(Ordering::SeqCst), 0);

    // A record naming a key the host controls: refused before any call.
    let mut record = DataKeyRecord::decode(&honest).unwrap();
    record.key_arn = "arn:aws:kms:mock-region:999999999999:key/host-owned".into();
    std::fs::write(w.record_path(), record.encode()).unwrap();
    let (_host, enclave) = w.channel(w.kms.addr);
    let other_key = sealing::open_data_key(&enclave, &w.source(), w.nsm(PCRS)).await;
    assert!(
        matches!(
            other_key,
            Err(SealingError::Kms(KmsSealingError::OtherKey { .. }))
        ),
        "{other_key:?}"
    );

    // A tampered blob: KMS refuses it.
    let mut record = DataKeyRecord::decode(&honest).unwrap();
    let last = record.ciphertext_blob.len() - 1;
    record.ciphertext_blob[last] ^= 1;
    std::fs::write(w.record_path(), record.encode()).unwrap();
    let tampered = sealing::open_data_key(&enclave, &w.source(), w.nsm(PCRS)).await;
    match tampered {
        Err(SealingError::Kms(KmsSealingError::Kms(msg))) => {
            assert!(msg.starts_with("InvalidCiphertextException"), "{msg}")
        }
        other => panic!("expected InvalidCiphertextException, got {other:?}"),
    }

    // Party 1's honest record handed to another party's enclave under the same key and
    // policy: the encryption context (the owner) does not match, KMS refuses.
    std::fs::write(w.record_path(), &honest).unwrap();
    let other_party = SealingSource::AwsKms {
        config: KmsConfig {
            owner: "party-2".into(),
            ..w.config()
        },
        roots: w.roots(),
    };
    match sealing::open_data_key(&enclave, &other_party, w.nsm(PCRS)).await {
        Err(SealingError::Kms(KmsSealingError::Kms(msg))) => {
            assert!(msg.starts_with("InvalidCiphertextException"), "{msg}")
        }
        other => panic!("expected InvalidCiphertextException, got {other:?}"),
    }

    // The honest record still opens to the same key.
    std::fs::write(w.record_path(), &honest).unwrap();
    let opened = sealing::open_data_key(&enclave, &w.source(), w.nsm(PCRS))
        .await
        .unwrap();
    assert_eq!(*opened, *created);
}
