//! The ceremony against tfhe itself, at the real size (the one tfhe computes for the request):
//! the CRS it produces, with a cheater skipped, is one tfhe proves and verifies with (and
//! decrypts what was proven), and a proof made under it does not verify under another CRS.
//! Then the protocol on a CRS of a few powers (the protocol, not the size, is under test):
//! every kind of bad contribution is rejected, named and skipped, silent parties are skipped,
//! and the end state is still powers of one secret.

use kms_ceremony::{Ceremony, CeremonyError, Contribution, CrsShape, CrsState};
use kms_engine::tfhe;
use kms_types::{ParamSetName, RequestId};
use rand_core::OsRng;
use serde::Serialize;
use std::sync::OnceLock;
use tfhe::prelude::*;
use tfhe::zk::{CompactPkeCrs, ZkComputeLoad};
use tfhe::{ClientKey, CompactPublicKey, FheUint64, FheUint8, ProvenCompactCiphertextList};
use tfhe_zk_pok::curve_api::bls12_446::G1Affine;

const PARAMS: ParamSetName = ParamSetName::TestInsecure;
const BITS: u32 = 64;

fn shape() -> CrsShape {
    CrsShape::for_request(PARAMS, BITS).unwrap()
}

/// A CRS of 16 powers, for the protocol tests.
fn small() -> CrsShape {
    CrsShape { n: 16, ..shape() }
}

fn session(tag: &str) -> RequestId {
    RequestId::derive("ceremony-test", tag.as_bytes())
}

struct Keys {
    ck: ClientKey,
    pk: CompactPublicKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ck = ClientKey::generate(kms_engine::config_for(PARAMS));
        let pk = CompactPublicKey::new(&ck);
        Keys { ck, pk }
    })
}

/// Proves an encryption of (200u8, 0xfeed u64) under `crs` and checks it verifies there, not
/// with other metadata.
fn prove_and_verify(crs: &CompactPkeCrs) -> ProvenCompactCiphertextList {
    let meta = b"kms ceremony test";
    let proven = ProvenCompactCiphertextList::builder(&keys().pk)
        .push(200u8)
        .push(0xfeedu64)
        .build_with_proof_packed(crs, meta, ZkComputeLoad::Proof)
        .unwrap();
    assert!(proven.verify(crs, &keys().pk, meta).is_valid());
    assert!(proven
        .verify(crs, &keys().pk, b"other metadata")
        .is_invalid());
    proven
}

/// A party's turn and how its contribution was received.
type Turn = (u32, Result<(), CeremonyError>);

/// Runs a ceremony in which every party in `order` contributes honestly except those `bad`
/// maps to a forged contribution (or `None`: silent). Returns the ceremony, finished or not.
fn run(
    shape: CrsShape,
    order: &[u32],
    t: usize,
    tag: &str,
    mut bad: impl FnMut(u32, &CrsState) -> Option<Option<Vec<u8>>>,
) -> (Ceremony, Vec<Turn>) {
    let mut cer = Ceremony::new(shape, session(tag), order.to_vec(), t).unwrap();
    let mut results = Vec::new();
    while let Some(p) = cer.current() {
        match bad(p, cer.state()) {
            None => {
                cer.contribute_own(p, &mut OsRng).unwrap();
                results.push((p, Ok(())));
            }
            Some(None) => {
                assert_eq!(cer.skip_silent(), Some(p));
            }
            Some(Some(bytes)) => {
                let r = cer.receive(p, &bytes, &mut OsRng);
                results.push((p, r));
            }
        }
    }
    (cer, results)
}

/// At tfhe's real size, one contribution (the multi-party run at this size, with a silent and a
/// cheating party, is `enclave/runtime/tests/crs_ceremony.rs`, through the chain).
#[test]
fn a_contribution_at_tfhe_size_makes_a_crs_tfhe_proves_verifies_and_decrypts_with() {
    let (cer, results) = run(shape(), &[1], 0, "real-1", |_, _| None);
    assert_eq!(results, vec![(1, Ok(()))]);
    let out = cer.finish().unwrap();
    assert_eq!(out.accepted, vec![1]);
    assert!(out.rejected.is_empty() && out.silent.is_empty());
    // The sizes are tfhe's for this request.
    let reference = kms_engine::generate_crs(PARAMS, BITS).unwrap();
    match (&out.crs, &reference) {
        (CompactPkeCrs::PkeV2(a), CompactPkeCrs::PkeV2(b)) => {
            assert_eq!(
                (a.n, a.d, a.k, a.B_inf, a.q, a.t, a.B_bound_squared),
                (b.n, b.d, b.k, b.B_inf, b.q, b.t, b.B_bound_squared)
            );
            assert_eq!(a.msbs_zero_padding_bit_count, b.msbs_zero_padding_bit_count);
        }
        _ => panic!("not PKE v2"),
    }

    let proven = prove_and_verify(&out.crs);
    // Under tfhe's own CRS for the same request (another trapdoor) it does not verify.
    assert!(proven
        .verify(&reference, &keys().pk, b"kms ceremony test")
        .is_invalid());
    // What was proven decrypts (tfhe's expansion and decryption).
    tfhe::set_server_key(keys().ck.generate_server_key());
    let expanded = proven
        .verify_and_expand(&out.crs, &keys().pk, b"kms ceremony test")
        .unwrap();
    let a: FheUint8 = expanded.get(0).unwrap().unwrap();
    let b: FheUint64 = expanded.get(1).unwrap().unwrap();
    let (a, b): (u8, u64) = (a.decrypt(&keys().ck), b.decrypt(&keys().ck));
    assert_eq!((a, b), (200, 0xfeed));

    // The CRS survives tfhe's serialization with its conformance check, unchanged.
    let bytes = kms_engine::serialize_public(&out.crs).unwrap();
    let back: CompactPkeCrs = kms_engine::deserialize_public(&bytes).unwrap();
    assert_eq!(kms_engine::serialize_public(&back).unwrap(), bytes);
}

/// A contribution by `who` that is valid powers of a secret of its own, ignoring the state
/// (a "reset"), with a proof relative to its own base: everything checks except the proof.
fn reset(who: u32, prev: &CrsState) -> Vec<u8> {
    let fresh = CrsState::initial(*prev.shape(), prev.session());
    let mut c = kms_ceremony::contribute(&fresh, who, &mut OsRng).unwrap();
    c.contributor = who;
    c.to_bytes().unwrap()
}

/// An honest contribution with one G1 power replaced by another valid group element.
fn wrong_power(who: u32, prev: &CrsState) -> Vec<u8> {
    let mut c = kms_ceremony::contribute(prev, who, &mut OsRng).unwrap();
    c.g1[5] = c.g1[7];
    c.to_bytes().unwrap()
}

#[test]
fn seven_parties_two_cheaters_and_a_silent_one_the_cheaters_are_skipped_and_named() {
    let (cer, results) = run(
        small(),
        &[1, 2, 3, 4, 5, 6, 7],
        2,
        "cheaters-7",
        |p, prev| match p {
            2 => Some(Some(reset(2, prev))),
            5 => Some(Some(wrong_power(5, prev))),
            6 => Some(None),
            _ => None,
        },
    );
    assert_eq!(
        results
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(p, r)| (*p, r.clone().unwrap_err()))
            .collect::<Vec<_>>(),
        vec![
            (2, CeremonyError::BadProof),
            (5, CeremonyError::NotPowers("successive G1 powers")),
        ]
    );
    let end = cer.state().clone();
    end.check_powers(&mut OsRng).unwrap();
    assert_ne!(
        end.first_g1(),
        CrsState::initial(small(), session("cheaters-7")).first_g1(),
        "the accepted contributions moved the secret"
    );
    // Every party sees the same transcript: a second run of the same session with fresh
    // secrets ends elsewhere.
    let (again, _) = run(small(), &[1, 2, 3, 4, 5, 6, 7], 2, "cheaters-7", |_, _| {
        None
    });
    assert_ne!(again.state().digest(), end.digest());
    // The outcome names them (finish assembles tfhe's CRS, which needs the real size: the
    // small one is refused, by tfhe's own check).
    assert_eq!(cer.finish().unwrap_err(), CeremonyError::Unusable);
}

/// A G1 element with the given coordinates, as the wire encodes one, not checked (tfhe's
/// deserialization does not check; the ceremony must).
fn unchecked_g1(x: u64, y: u64) -> G1Affine {
    #[derive(Serialize)]
    struct Fp {
        val: Vec<u64>,
    }
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum Affine {
        Infinity,
        Compressed { x: Fp, take_largest_y: bool },
        Uncompressed { x: Fp, y: Fp },
    }
    use bincode::Options;
    let limbs = |v| {
        let mut l = vec![0u64; 7];
        l[0] = v;
        Fp { val: l }
    };
    let bytes = bincode::DefaultOptions::new()
        .serialize(&Affine::Uncompressed {
            x: limbs(x),
            y: limbs(y),
        })
        .unwrap();
    bincode::DefaultOptions::new().deserialize(&bytes).unwrap()
}

#[test]
fn each_kind_of_bad_contribution_is_rejected_with_its_reason_and_changes_nothing() {
    let sh = small();
    let n = sh.n;
    let start = CrsState::initial(sh, session("kinds"));
    let honest = kms_ceremony::contribute(&start, 1, &mut OsRng).unwrap();
    let check = |c: &Contribution| kms_ceremony::verify_contribution(&start, c, &mut OsRng);
    assert!(check(&honest).is_ok());

    let mut c = honest.clone();
    c.g1[3] = unchecked_g1(1, 2);
    assert_eq!(
        check(&c),
        Err(CeremonyError::InvalidPoint {
            group: "G1",
            index: 3
        })
    );
    let mut c = honest.clone();
    c.g1.pop();
    assert!(matches!(check(&c), Err(CeremonyError::WrongLength { .. })));
    let mut c = honest.clone();
    c.g1[n] = c.g1[0];
    assert!(matches!(check(&c), Err(CeremonyError::Degenerate(_))));
    let mut c = honest.clone();
    c.g1[2] = c.g1[n];
    assert!(matches!(check(&c), Err(CeremonyError::Degenerate(_))));
    let mut c = honest.clone();
    c.g2[3] = c.g2[4];
    assert_eq!(
        check(&c),
        Err(CeremonyError::NotPowers("successive G2 powers"))
    );
    let mut c = honest.clone();
    c.g1[n + 1] = c.g1[n + 2];
    assert!(matches!(check(&c), Err(CeremonyError::NotPowers(_))));
    // The proof is bound to its contributor: the same contribution under another name fails.
    let mut c = honest.clone();
    c.contributor = 2;
    assert_eq!(check(&c), Err(CeremonyError::BadProof));
    // And to the session.
    let elsewhere = CrsState::initial(sh, session("another session"));
    assert_eq!(
        kms_ceremony::verify_contribution(&elsewhere, &honest, &mut OsRng),
        Err(CeremonyError::BadProof)
    );
    // Copying the previous contributor's contribution, proof included, fails too.
    let after_1 = kms_ceremony::verify_contribution(&start, &honest, &mut OsRng).unwrap();
    let mut copy = honest.clone();
    copy.contributor = 2;
    assert_eq!(
        kms_ceremony::verify_contribution(&after_1, &copy, &mut OsRng),
        Err(CeremonyError::BadProof)
    );

    // Bytes: truncated, oversized, and a contribution claiming another contributor.
    let bytes = honest.to_bytes().unwrap();
    assert!(bytes.len() <= Contribution::max_len(&sh));
    assert_eq!(Contribution::from_bytes(&bytes, &sh).unwrap(), honest);
    assert!(matches!(
        Contribution::from_bytes(&bytes[..bytes.len() / 2], &sh),
        Err(CeremonyError::Malformed(_))
    ));
    assert!(matches!(
        Contribution::from_bytes(&vec![0u8; Contribution::max_len(&sh) + 1], &sh),
        Err(CeremonyError::Malformed(_))
    ));
    let mut cer = Ceremony::new(sh, session("kinds"), vec![1, 2, 3, 4], 1).unwrap();
    // Out of turn: refused, nothing changes, party 1 still has the turn.
    assert_eq!(
        cer.receive(2, &bytes, &mut OsRng),
        Err(CeremonyError::OutOfTurn(2))
    );
    assert_eq!(cer.current(), Some(1));
    assert_eq!(cer.state(), &start);
    // Party 1 sending a contribution that names party 2.
    let mut other = honest.clone();
    other.contributor = 2;
    assert_eq!(
        cer.receive(1, &other.to_bytes().unwrap(), &mut OsRng),
        Err(CeremonyError::WrongContributor {
            got: 2,
            expected: 1
        })
    );
    assert_eq!(
        cer.state(),
        &start,
        "a rejected contribution changes nothing"
    );
    assert_eq!(cer.current(), Some(2));
}

#[test]
fn without_t_plus_one_accepted_contributions_there_is_no_crs() {
    // n = 4, t = 1: three of four silent or bad leaves one, which may be the adversary's.
    let (cer, _) = run(small(), &[1, 2, 3, 4], 1, "too-few", |p, prev| match p {
        1 => None,
        2 => Some(Some(reset(2, prev))),
        _ => Some(None),
    });
    assert_eq!(
        cer.finish().unwrap_err(),
        CeremonyError::TooFewContributions {
            accepted: 1,
            needed: 2
        }
    );
    // Nor before every party had its turn.
    let cer = Ceremony::new(small(), session("early"), vec![1, 2, 3, 4], 1).unwrap();
    assert_eq!(cer.finish().unwrap_err(), CeremonyError::OutOfTurn(1));
    // And the party set must allow t.
    assert!(Ceremony::new(small(), session("x"), vec![1, 2, 3], 1).is_err());
    assert!(Ceremony::new(small(), session("x"), vec![1, 2, 2, 4], 1).is_err());
}

#[test]
fn a_party_resumes_from_the_accepted_list_and_the_last_bytes_to_the_same_state() {
    use kms_ceremony::{verify_contribution_bytes, Accepted};
    use sha3::{Digest, Sha3_256};
    let (shape, sid) = (small(), session("resume"));
    // Parties 1 and 3 accepted, party 2 rejected: a party that followed every step...
    let mut cer = Ceremony::new(shape, sid, vec![1, 2, 3], 0).unwrap();
    let b1 = cer.contribute_own(1, &mut OsRng).unwrap();
    let bad = reset(2, cer.state());
    assert!(cer.receive(2, &bad, &mut OsRng).is_err());
    let b3 = kms_ceremony::contribute(cer.state(), 3, &mut OsRng)
        .unwrap()
        .to_bytes()
        .unwrap();
    cer.receive(3, &b3, &mut OsRng).unwrap();
    let followed = cer.state().clone();
    // ...and one that resumes from the agreed list and the last bytes only hold the same state.
    let accepted = [
        Accepted {
            contributor: 1,
            digest: Sha3_256::digest(&b1).into(),
        },
        Accepted {
            contributor: 3,
            digest: Sha3_256::digest(&b3).into(),
        },
    ];
    let resumed = CrsState::resume(shape, sid, &accepted, Some(&b3)).unwrap();
    assert_eq!(resumed, followed);
    // The next contribution verifies on top of either.
    let b4 = kms_ceremony::contribute(&resumed, 4, &mut OsRng)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(verify_contribution_bytes(&followed, 4, &b4, &mut OsRng).is_ok());
    // Bytes that are not the last accepted contribution, a missing or extra one, are refused.
    assert!(matches!(
        CrsState::resume(shape, sid, &accepted, Some(&b1)),
        Err(CeremonyError::Malformed(_))
    ));
    assert!(CrsState::resume(shape, sid, &accepted, None).is_err());
    assert!(CrsState::resume(shape, sid, &[], Some(&b1)).is_err());
    assert_eq!(
        CrsState::resume(shape, sid, &[], None).unwrap(),
        CrsState::initial(shape, sid)
    );
    // A wrong contributor in the list is refused too.
    let mut wrong = accepted;
    wrong[1].contributor = 2;
    assert!(matches!(
        CrsState::resume(shape, sid, &wrong, Some(&b3)),
        Err(CeremonyError::WrongContributor { .. })
    ));
    // A non-canonical encoding (a trailing byte) of a valid contribution is refused: its digest
    // would not be the one the transcript records.
    let mut longer = b4.clone();
    longer.push(0);
    assert!(verify_contribution_bytes(&followed, 4, &longer, &mut OsRng).is_err());
}
