//! The real Nitro documents in `tests/fixtures` (see PROVENANCE.md), verified at their own
//! timestamps against the real AWS root with their real PCRs, and each way they must fail.

use kms_attestation::{verify_document, AttestationError, PinnedRoot, Policy, Release};
use proptest::prelude::*;
use std::time::Duration;

struct Fixture {
    bytes: Vec<u8>,
    meta: serde_json::Value,
}

fn fixture(name: &str) -> Fixture {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    Fixture {
        bytes: std::fs::read(format!("{dir}{name}.cbor")).unwrap(),
        meta: serde_json::from_slice(&std::fs::read(format!("{dir}{name}.json")).unwrap()).unwrap(),
    }
}

const NONDEBUG: &str = "evervault_beta_nondebug_2022-10-13";
const DEBUG: &str = "evervault_beta_debug_2022-10-12";
const GA_DEBUG: &str = "evervault_ga_debug_2023-09-18";

impl Fixture {
    fn at(&self) -> Duration {
        Duration::from_millis(self.meta["timestamp_ms"].as_u64().unwrap())
    }
    fn hex(&self, key: &str) -> Option<Vec<u8>> {
        self.meta[key].as_str().map(|s| hex::decode(s).unwrap())
    }
    fn release(&self) -> Release {
        Release {
            name: "evervault beta".into(),
            pcr0: self.hex("pcr0").unwrap(),
            pcr1: self.hex("pcr1").unwrap(),
            pcr2: self.hex("pcr2").unwrap(),
            pcr3: None,
            pcr4: None,
            pcr8: None,
        }
    }
}

fn today() -> Duration {
    // 2026-11-23T00:00:00Z: a fixed "now" so the test does not depend on the machine clock.
    Duration::from_secs(1_795_392_000)
}

#[test]
fn production_document_verifies_at_its_timestamp() {
    let f = fixture(NONDEBUG);
    let mut policy = Policy::production(vec![f.release()], 300);
    policy.nonce = f.hex("nonce_hex");
    let v = verify_document(&f.bytes, &PinnedRoot::aws(), &policy, f.at()).unwrap();
    assert!(!v.debug);
    assert_eq!(v.release.as_deref(), Some("evervault beta"));
    assert_eq!(v.document.module_id, f.meta["module_id"].as_str().unwrap());
    assert_eq!(
        v.document.pcrs.len(),
        f.meta["pcr_count"].as_u64().unwrap() as usize
    );
    assert_eq!(v.document.pcrs[&0], f.hex("pcr0").unwrap());
    // Also inside the chain's validity window, a little after the timestamp.
    verify_document(
        &f.bytes,
        &PinnedRoot::aws(),
        &policy,
        f.at() + Duration::from_secs(120),
    )
    .unwrap();
}

/// A policy read from outside (the config contract) may name any clock skew: the check
/// saturates instead of overflowing.
#[test]
fn an_unbounded_clock_skew_in_a_policy_does_not_panic() {
    let f = fixture(NONDEBUG);
    let mut policy = Policy::production(vec![f.release()], 300);
    policy.nonce = f.hex("nonce_hex");
    policy.max_clock_skew_s = u64::MAX;
    verify_document(&f.bytes, &PinnedRoot::aws(), &policy, f.at()).unwrap();
}

#[test]
fn debug_documents_verify_only_under_a_developer_policy() {
    for name in [DEBUG, GA_DEBUG] {
        let f = fixture(name);
        let mut dev = Policy::developer(vec![], 300);
        dev.user_data = f.hex("user_data_hex");
        dev.public_key = f.hex("public_key_hex");
        dev.nonce = f.hex("nonce_hex");
        let v = verify_document(&f.bytes, &PinnedRoot::aws(), &dev, f.at()).unwrap();
        assert!(v.debug, "{name}");
        assert_eq!(v.release, None);
        assert_eq!(
            verify_document(
                &f.bytes,
                &PinnedRoot::aws(),
                &Policy::production(vec![], 300),
                f.at()
            ),
            Err(AttestationError::DebugMode),
            "{name}"
        );
    }
    let f = fixture(DEBUG);
    let v = verify_document(
        &f.bytes,
        &PinnedRoot::aws(),
        &Policy::developer(vec![], 300),
        f.at(),
    )
    .unwrap();
    assert_eq!(v.document.user_data.as_deref(), Some(&b"hello, world!"[..]));
    assert_eq!(
        v.document.public_key.as_deref(),
        Some(&b"my super secret key"[..])
    );
}

#[test]
fn every_fixture_fails_at_todays_date() {
    for name in [NONDEBUG, DEBUG, GA_DEBUG] {
        let f = fixture(name);
        let policy = Policy::developer(vec![f.release()], u64::MAX / 2);
        let e = verify_document(&f.bytes, &PinnedRoot::aws(), &policy, today()).unwrap_err();
        assert!(matches!(e, AttestationError::Expired { .. }), "{name}: {e}");
    }
}

/// The policy each fixture passes at its timestamp.
fn passing_policy(f: &Fixture) -> Policy {
    if f.meta["debug_mode"].as_bool().unwrap() {
        Policy::developer(vec![], 300)
    } else {
        Policy::production(vec![f.release()], 300)
    }
}

#[test]
fn flipped_bytes_are_rejected() {
    for name in [NONDEBUG, DEBUG, GA_DEBUG] {
        let f = fixture(name);
        let policy = passing_policy(&f);
        verify_document(&f.bytes, &PinnedRoot::aws(), &policy, f.at()).unwrap();
        let n = f.bytes.len();
        // Last byte: inside the 96-byte signature.
        let mut sig = f.bytes.clone();
        sig[n - 1] ^= 1;
        assert_eq!(
            verify_document(&sig, &PinnedRoot::aws(), &policy, f.at()),
            Err(AttestationError::BadSignature),
            "{name}"
        );
        // A byte of PCR0's value inside the payload: structure intact, signature broken.
        let pcr0 = f.hex("pcr0").unwrap();
        let pos = f
            .bytes
            .windows(pcr0.len())
            .position(|w| w == pcr0.as_slice())
            .unwrap();
        let mut payload = f.bytes.clone();
        payload[pos + 5] ^= 0x40;
        assert_eq!(
            verify_document(&payload, &PinnedRoot::aws(), &policy, f.at()),
            Err(AttestationError::BadSignature),
            "{name}"
        );
        // A byte of the module ID.
        let module = f.meta["module_id"].as_str().unwrap().as_bytes().to_vec();
        let pos = f
            .bytes
            .windows(module.len())
            .position(|w| w == module.as_slice())
            .unwrap();
        let mut m = f.bytes.clone();
        m[pos] ^= 0x01;
        assert_eq!(
            verify_document(&m, &PinnedRoot::aws(), &policy, f.at()),
            Err(AttestationError::BadSignature),
            "{name}"
        );
    }
}

#[test]
fn another_pinned_root_is_rejected() {
    for name in [NONDEBUG, DEBUG, GA_DEBUG] {
        let f = fixture(name);
        let doc = kms_attestation::document::parse_unverified(&f.bytes).unwrap();
        // Pin the first intermediate instead of the AWS root.
        let other = PinnedRoot::from_der(&doc.cabundle[1]).unwrap();
        let e = verify_document(&f.bytes, &other, &passing_policy(&f), f.at()).unwrap_err();
        assert!(
            matches!(e, AttestationError::UntrustedRoot(_)),
            "{name}: {e}"
        );
    }
}

#[test]
fn policy_failures_are_distinct() {
    let f = fixture(NONDEBUG);
    let root = PinnedRoot::aws();
    let mut other = f.release();
    other.pcr0[0] ^= 1;
    let e = verify_document(
        &f.bytes,
        &root,
        &Policy::production(vec![other], 300),
        f.at(),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::UntrustedPcrs(_)), "{e}");
    // Pinning PCR3 to a wrong value also fails; pinning it to the right one passes.
    let mut with3 = f.release();
    let pcr3 = hex::decode(f.meta["pcrs_nonzero"]["3"].as_str().unwrap()).unwrap();
    with3.pcr3 = Some(pcr3.clone());
    verify_document(
        &f.bytes,
        &root,
        &Policy::production(vec![with3.clone()], 300),
        f.at(),
    )
    .unwrap();
    with3.pcr3.as_mut().unwrap()[0] ^= 1;
    assert!(verify_document(
        &f.bytes,
        &root,
        &Policy::production(vec![with3], 300),
        f.at()
    )
    .is_err());
    // Bindings.
    let mut p = Policy::production(vec![f.release()], 300);
    p.nonce = Some(b"another nonce".to_vec());
    assert_eq!(
        verify_document(&f.bytes, &root, &p, f.at()),
        Err(AttestationError::Binding("nonce"))
    );
    let mut p = Policy::production(vec![f.release()], 300);
    p.public_key = Some(b"k".to_vec());
    assert_eq!(
        verify_document(&f.bytes, &root, &p, f.at()),
        Err(AttestationError::Binding("public_key"))
    );
    // Freshness: too old (an hour later, chain still valid) and from the future.
    let e = verify_document(
        &f.bytes,
        &root,
        &Policy::production(vec![f.release()], 300),
        f.at() + Duration::from_secs(3600),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::TooOld { .. }), "{e}");
    let g = fixture(GA_DEBUG);
    let e = verify_document(
        &g.bytes,
        &root,
        &Policy::developer(vec![], 300),
        g.at() - Duration::from_secs(600),
    )
    .unwrap_err();
    assert!(matches!(e, AttestationError::FromTheFuture(_)), "{e}");
}

#[test]
fn tagged_cose_is_accepted_and_other_tags_are_not() {
    let f = fixture(NONDEBUG);
    let policy = Policy::production(vec![f.release()], 300);
    let mut tagged = vec![0xd2]; // tag 18
    tagged.extend_from_slice(&f.bytes);
    verify_document(&tagged, &PinnedRoot::aws(), &policy, f.at()).unwrap();
    let mut other = vec![0xd1]; // tag 17
    other.extend_from_slice(&f.bytes);
    assert!(matches!(
        verify_document(&other, &PinnedRoot::aws(), &policy, f.at()),
        Err(AttestationError::Cose(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn parser_never_panics_on_random_input(data in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let _ = kms_attestation::document::parse_unverified(&data);
    }

    /// Any single-byte change or truncation of a real document is rejected, never accepted, never
    /// a panic.
    #[test]
    fn mutated_real_document_never_verifies(pos in 0usize..4748, xor in 1u8..=255, cut in any::<bool>()) {
        let f = fixture(GA_DEBUG);
        let mut b = f.bytes.clone();
        let pos = pos % b.len();
        if cut { b.truncate(pos) } else { b[pos] ^= xor }
        let r = verify_document(&b, &PinnedRoot::aws(), &Policy::developer(vec![], 300), f.at());
        prop_assert!(r.is_err());
    }
}
