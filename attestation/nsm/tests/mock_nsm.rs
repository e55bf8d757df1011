//! Mock-NSM documents go through the same verifier as real ones, with the mock root pinned.

use kms_attestation::{verify_document, AttestationError, PinnedRoot, Policy, Release};
use kms_nsm::{AttestationRequest, DeviceNsm, MockNsm, MockRootCa, Nsm, NsmError};
use std::time::Duration;

const NOW: Duration = Duration::from_secs(1_795_392_000); // 2026-11-23T00:00:00Z

fn image() -> [[u8; 48]; 3] {
    [[0x11; 48], [0x22; 48], [0x33; 48]]
}

fn release() -> Release {
    let [a, b, c] = image();
    Release {
        name: "kms-enclave test".into(),
        pcr0: a.to_vec(),
        pcr1: b.to_vec(),
        pcr2: c.to_vec(),
        pcr3: None,
        pcr4: None,
        pcr8: None,
    }
}

fn mock(pcrs: [[u8; 48]; 3]) -> MockNsm {
    MockNsm::new(
        MockRootCa::generate(NOW).unwrap(),
        "i-mock-enc0001",
        pcrs,
        || NOW,
    )
    .unwrap()
}

#[test]
fn mock_documents_verify_with_the_mock_root_only() {
    let nsm = mock(image());
    let req = AttestationRequest {
        user_data: Some(b"party 1".to_vec()),
        nonce: Some(vec![7u8; 32]),
        public_key: Some(b"tls key spki".to_vec()),
    };
    let doc = nsm.attest(&req).unwrap();
    let mut policy = Policy::production(vec![release()], 300);
    policy.nonce = req.nonce.clone();
    policy.public_key = req.public_key.clone();
    policy.user_data = req.user_data.clone();
    let v = verify_document(
        &doc,
        &nsm.trusted_root(),
        &policy,
        NOW + Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(v.release.as_deref(), Some("kms-enclave test"));
    assert!(!v.debug);
    assert_eq!(v.document.pcrs.len(), 16);
    assert_eq!(v.document.cabundle.len(), 2);
    assert_eq!(v.document.module_id, "i-mock-enc0001");
    assert_eq!(v.document.timestamp_ms, NOW.as_millis() as u64);
    // The same document against the AWS root: refused.
    assert!(matches!(
        verify_document(&doc, &PinnedRoot::aws(), &policy, NOW),
        Err(AttestationError::UntrustedRoot(_))
    ));
    // Against another developer root: refused.
    let other = MockRootCa::generate(NOW).unwrap().pinned().unwrap();
    assert!(matches!(
        verify_document(&doc, &other, &policy, NOW),
        Err(AttestationError::UntrustedRoot(_))
    ));
    // Stale: four hours later the leaf has expired.
    let late = NOW + Duration::from_secs(4 * 3600);
    assert!(matches!(
        verify_document(
            &doc,
            &nsm.trusted_root(),
            &Policy::production(vec![release()], 86_400),
            late
        ),
        Err(AttestationError::Expired { index: 2, .. })
    ));
    // A different nonce.
    let mut p = policy.clone();
    p.nonce = Some(vec![8u8; 32]);
    assert_eq!(
        verify_document(&doc, &nsm.trusted_root(), &p, NOW),
        Err(AttestationError::Binding("nonce"))
    );
}

#[test]
fn debug_mock_is_accepted_only_by_the_developer_policy() {
    let nsm = mock([[0u8; 48]; 3]);
    let doc = nsm.attest(&AttestationRequest::default()).unwrap();
    assert_eq!(
        verify_document(
            &doc,
            &nsm.trusted_root(),
            &Policy::production(vec![release()], 300),
            NOW
        ),
        Err(AttestationError::DebugMode)
    );
    assert!(
        verify_document(
            &doc,
            &nsm.trusted_root(),
            &Policy::developer(vec![], 300),
            NOW
        )
        .unwrap()
        .debug
    );
}

#[test]
fn pcrs_extend_and_lock_like_the_device() {
    use sha2::Digest;
    let nsm = mock(image());
    assert_eq!(nsm.describe_pcr(0).unwrap().value, image()[0].to_vec());
    assert!(nsm.describe_pcr(0).unwrap().locked);
    assert_eq!(nsm.extend_pcr(0, b"x"), Err(NsmError::Locked(0)));
    let v = nsm.extend_pcr(16, b"config").unwrap();
    let mut h = sha2::Sha384::new();
    h.update([0u8; 48]);
    h.update(b"config");
    assert_eq!(v, h.finalize().to_vec());
    nsm.lock_pcr(16).unwrap();
    assert_eq!(nsm.extend_pcr(16, b"more"), Err(NsmError::Locked(16)));
    assert!(matches!(
        nsm.describe_pcr(32),
        Err(NsmError::InvalidArgument(_))
    ));
    assert_eq!(nsm.get_random().unwrap().len(), 256);
    let big = AttestationRequest {
        user_data: Some(vec![0; 513]),
        ..Default::default()
    };
    assert!(matches!(
        nsm.attest(&big),
        Err(NsmError::InvalidArgument(_))
    ));
}

#[test]
fn a_persisted_root_reloads() {
    let root = MockRootCa::generate(NOW).unwrap();
    let pinned = root.pinned().unwrap();
    let (cert, key) = (root.cert_der().to_vec(), root.key_pkcs8_der());
    let reloaded = MockRootCa::from_parts(&cert, &key).unwrap();
    let nsm = MockNsm::new(reloaded, "i-reloaded", image(), || NOW).unwrap();
    let doc = nsm.attest(&AttestationRequest::default()).unwrap();
    verify_document(
        &doc,
        &pinned,
        &Policy::production(vec![release()], 300),
        NOW,
    )
    .unwrap();
    assert!(MockRootCa::from_parts(&cert, b"not a key").is_err());
}

#[test]
fn the_device_is_absent_outside_an_enclave() {
    if std::path::Path::new("/dev/nsm").exists() {
        return; // running inside a real enclave: nothing to assert here
    }
    assert!(matches!(DeviceNsm::open(), Err(NsmError::Unavailable(_))));
}
