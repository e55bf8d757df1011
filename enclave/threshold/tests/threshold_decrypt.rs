//! Threshold public decryption by noise flooding against tfhe-rs's own decryption, with honest
//! and malicious parties: n = 4, t = 1 on real parameters; n = 7, t = 2 on test parameters.

use kms_algebra::prss::{deal_keys, Prss};
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::{serialize_public, Plaintext};
use kms_signcryption::ClientKeyPair;
use kms_threshold::{
    combine, deal_insecure, decode_partials, encode_partials, partial_decrypt, squash,
    user_combine, user_share, BlockLayout, DecryptionSession, FloodingParams, Share, SnsKeyShare,
    SquashedCiphertext, SubShares, UserShareResponse, B_SNS_LOG2,
};
use kms_threshold::{sns_noise_bound_log2, sns_noise_std_log2};
use kms_types::{FheType, ParamSetName, RequestId, TypedCiphertext};
use rand_core::{OsRng, RngCore};
use tfhe::prelude::*;
use tfhe::{ClientKey, FheBool, FheInt16, FheUint64, FheUint8};

struct Parties {
    keys: Vec<SnsKeyShare>,
    prss: Vec<Prss<u128, 4>>,
    fp: FloodingParams,
}

/// The key ID the test shares carry.
fn test_key() -> RequestId {
    RequestId::derive("threshold-test", b"key")
}

/// A public-decryption session for tag `tag` on the test key.
fn session(tag: &[u8]) -> DecryptionSession {
    DecryptionSession {
        kind: DecryptionSession::PUBLIC,
        key_id: test_key(),
        request_id: RequestId::derive("threshold-test/request", tag),
        index: 0,
        ciphertext_digest: kms_types::sha3_256(tag),
    }
}

fn setup(ck: &ClientKey, n: usize, t: usize) -> Parties {
    let keys = deal_insecure(ck, test_key(), n, t, &mut OsRng).unwrap();
    let prss_keys = deal_keys(n, t, &mut OsRng);
    let prss = (1..=n)
        .map(|p| Prss::new(p, n, t, &prss_keys).unwrap())
        .collect();
    let fp = FloodingParams::new(n, t, keys[0].message_modulus, keys[0].carry_modulus).unwrap();
    Parties { keys, prss, fp }
}

/// How party `who` misbehaves.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Random,
    /// Shares of another value, consistent with a degree-t polynomial among the cheaters.
    WrongValue,
    Malformed,
    Silent,
}

/// Runs one decryption: every party computes its partials, faulty parties replace theirs, every
/// honest party combines what it received. Returns each honest party's result.
fn run(
    p: &Parties,
    ct: &SquashedCiphertext,
    faults: &[(usize, Fault)],
    tag: &[u8],
) -> Vec<(Plaintext, Vec<usize>)> {
    let n = p.keys.len();
    let session = session(tag);
    let mut wire: Vec<Option<Vec<u8>>> = (0..n)
        .map(|i| {
            Some(encode_partials(
                &partial_decrypt(&p.keys[i], &p.prss[i], &p.fp, &session, ct).unwrap(),
            ))
        })
        .collect();
    for &(who, fault) in faults {
        let honest = decode_partials(wire[who - 1].as_ref().unwrap(), ct.blocks.len()).unwrap();
        wire[who - 1] = match fault {
            Fault::Random => Some(encode_partials(
                &honest
                    .iter()
                    .map(|_| Share::random(&mut OsRng))
                    .collect::<Vec<_>>(),
            )),
            Fault::WrongValue => Some(encode_partials(
                &honest
                    .iter()
                    .map(|s| s.add(&Share::from_scalar(1u128 << p.fp.delta_log2)))
                    .collect::<Vec<_>>(),
            )),
            Fault::Malformed => Some(vec![0xAB; 17]),
            Fault::Silent => None,
        };
    }
    let received: Vec<Option<Vec<Share>>> = wire
        .iter()
        .map(|w| w.as_ref().and_then(|b| decode_partials(b, ct.blocks.len())))
        .collect();
    (1..=n)
        .filter(|i| !faults.iter().any(|(w, _)| w == i))
        .map(|_| combine(&received, &p.fp, &ct.layout()).unwrap())
        .collect()
}

/// User decryption of `cts`: every party signcrypts its shares; `bad_envelope` parties sign
/// with a key that is not theirs, `wrong_shares` parties send shares of another value.
fn user_run(
    p: &Parties,
    cts: &[(TypedCiphertext, SquashedCiphertext)],
    bad_envelope: &[usize],
    wrong_shares: &[usize],
) -> (Vec<[u8; 32]>, Vec<usize>, Vec<usize>) {
    let n = p.keys.len();
    let domain = DomainConfig::default();
    let signers: Vec<SigningKey> = (0..n).map(|_| SigningKey::random(&mut OsRng)).collect();
    let client = ClientKeyPair::generate(&mut OsRng);
    let request = RequestId::derive("user-decrypt-test", &[n as u8]);
    let key_id = test_key();
    let with_digests: Vec<([u8; 32], SquashedCiphertext)> =
        cts.iter().map(|(c, s)| (c.digest(), s.clone())).collect();
    let responses: Vec<UserShareResponse> = (0..n)
        .map(|i| {
            let party = i + 1;
            let impostor = SigningKey::random(&mut OsRng);
            let signer = if bad_envelope.contains(&party) {
                &impostor
            } else {
                &signers[i]
            };
            // A wrong-shares party computes its shares on ciphertexts shifted by Δ: shares of
            // another value.
            let data: Vec<([u8; 32], SquashedCiphertext)> = with_digests
                .iter()
                .map(|(d, s)| {
                    let mut s = s.clone();
                    if wrong_shares.contains(&party) {
                        for (_, b) in s.blocks.iter_mut() {
                            *b = b.wrapping_add(1u128 << p.fp.delta_log2);
                        }
                    }
                    (*d, s)
                })
                .collect();
            let resp = user_share(
                &p.keys[i],
                &p.prss[i],
                &p.fp,
                signer,
                &domain,
                request,
                key_id,
                &data,
                client.public(),
                &mut OsRng,
            )
            .unwrap();
            UserShareResponse {
                party,
                signer: signers[i].address(),
                response: Some(resp),
            }
        })
        .collect();
    let meta: Vec<(FheType, [u8; 32])> =
        cts.iter().map(|(c, _)| (c.fhe_type, c.digest())).collect();
    let out = user_combine(
        &client, &domain, &request, &key_id, &meta, &responses, &p.fp,
    )
    .unwrap();
    // Another client key cannot open anything: every envelope is rejected, so nothing opens.
    let stranger = ClientKeyPair::generate(&mut OsRng);
    match user_combine(
        &stranger, &domain, &request, &key_id, &meta, &responses, &p.fp,
    ) {
        Err(kms_threshold::ThresholdError::NeedMoreShares { rejected, .. }) => {
            assert_eq!(rejected, (1..=n).collect::<Vec<_>>())
        }
        other => panic!("a stranger's key opened something: {other:?}"),
    }
    (
        out.plaintexts.iter().map(|p| p.word).collect(),
        out.cheaters,
        out.rejected,
    )
}

fn tfhe_word(ck: &ClientKey, ct: &TypedCiphertext) -> [u8; 32] {
    let lim = 1 << 30;
    let b = ct.bytes.as_slice();
    use tfhe::safe_serialization::safe_deserialize as de;
    let mut w = [0u8; 32];
    match ct.fhe_type {
        FheType::Bool => w[31] = de::<FheBool>(b, lim).unwrap().decrypt(ck) as u8,
        FheType::Uint8 => {
            let v: u8 = de::<FheUint8>(b, lim).unwrap().decrypt(ck);
            w[31] = v;
        }
        FheType::Uint64 => {
            let v: u64 = de::<FheUint64>(b, lim).unwrap().decrypt(ck);
            w[24..].copy_from_slice(&v.to_be_bytes());
        }
        FheType::Int16 => {
            let v: i16 = de::<FheInt16>(b, lim).unwrap().decrypt(ck);
            w = if v < 0 { [0xff; 32] } else { [0; 32] };
            w[16..].copy_from_slice(&i128::from(v).to_be_bytes());
        }
        t => panic!("unused {t}"),
    }
    w
}

fn keys(params: ParamSetName) -> (ClientKey, RequestId) {
    let id = RequestId::derive("threshold-test", params.as_str().as_bytes());
    let ks = kms_engine::generate_key_set(params, &id, &mut |_| {});
    tfhe::set_server_key(ks.server_key.decompress());
    (ks.client_key, id)
}

#[test]
fn real_parameters_n4_t1_honest_and_malicious() {
    let (ck, _) = keys(ParamSetName::Default);
    let p = setup(&ck, 4, 1);
    let cts = vec![
        TypedCiphertext {
            fhe_type: FheType::Bool,
            bytes: serialize_public(&FheBool::encrypt(true, &ck)).unwrap(),
        },
        TypedCiphertext {
            fhe_type: FheType::Uint8,
            bytes: serialize_public(&FheUint8::encrypt(201u8, &ck)).unwrap(),
        },
        TypedCiphertext {
            fhe_type: FheType::Uint64,
            bytes: serialize_public(&FheUint64::encrypt(0xfedc_ba98_7654_3210u64, &ck)).unwrap(),
        },
    ];
    // The squashed noise stays under the bound the flooding parameters assume.
    let nsk = ck.clone().into_raw_parts().3.unwrap().into_raw_parts();
    let s = nsk.post_noise_squashing_secret_key().as_lwe_secret_key();
    let s: &[u128] = s.as_ref();
    let mut max_noise = 0u128;
    let mut sum_sq = 0f64;
    let mut samples = 0usize;
    for ct in &cts {
        let sq = squash(ct, ParamSetName::Default).unwrap();
        for (a, b) in &sq.blocks {
            let phase = a
                .iter()
                .zip(s)
                .fold(*b, |acc, (x, y)| acc.wrapping_sub(x.wrapping_mul(*y)));
            let delta = 1u128 << p.fp.delta_log2;
            let e = (phase.wrapping_add(delta / 2) % delta).wrapping_sub(delta / 2) as i128;
            max_noise = max_noise.max(e.unsigned_abs());
            sum_sq += (e as f64) * (e as f64);
            samples += 1;
        }
    }
    // Against tfhe-rs's noise formula: the measured standard deviation matches the derived one
    // (within a bit, for a few dozen samples) and every sample is under the derived 2^-128 bound,
    // which B_sns covers.
    let std_log2 = 0.5 * (sum_sq / samples as f64).log2();
    let formula_std = sns_noise_std_log2(ParamSetName::Default).unwrap();
    let bound = sns_noise_bound_log2(ParamSetName::Default).unwrap();
    eprintln!(
        "squashed noise over {samples} blocks: std 2^{std_log2:.2} (formula 2^{formula_std:.2}), \
         max 2^{:.1}, derived bound 2^{bound:.2}, B_sns 2^{B_SNS_LOG2}",
        (max_noise as f64).log2()
    );
    assert!(
        (std_log2 - formula_std).abs() < 1.0,
        "{std_log2} vs {formula_std}"
    );
    assert!(((max_noise as f64).log2()) < bound);
    assert!(bound < f64::from(B_SNS_LOG2));
    assert!(FloodingParams::for_param_set(ParamSetName::Default, 4, 1, 4, 4).is_ok());
    assert!(FloodingParams::for_param_set(ParamSetName::TestInsecure, 7, 2, 4, 4).is_ok());

    for (i, ct) in cts.iter().enumerate() {
        let sq = squash(ct, ParamSetName::Default).unwrap();
        let truth = tfhe_word(&ck, ct);
        for (pt, cheaters) in run(&p, &sq, &[], format!("honest-{i}").as_bytes()) {
            assert_eq!(pt.word, truth, "{}", ct.fhe_type);
            assert!(cheaters.is_empty());
        }
        for fault in [
            Fault::Random,
            Fault::WrongValue,
            Fault::Malformed,
            Fault::Silent,
        ] {
            for (pt, cheaters) in run(
                &p,
                &sq,
                &[(3, fault)],
                format!("m-{i}-{fault:?}").as_bytes(),
            ) {
                assert_eq!(pt.word, truth, "{} with party 3 {fault:?}", ct.fhe_type);
                match fault {
                    Fault::Random | Fault::WrongValue => assert_eq!(cheaters, vec![3]),
                    Fault::Malformed | Fault::Silent => assert!(cheaters.is_empty()), // absent, not wrong
                }
            }
        }
    }
    // Layouts from the type alone match what squashing produced.
    let squashed: Vec<(TypedCiphertext, SquashedCiphertext)> = cts
        .iter()
        .map(|c| (c.clone(), squash(c, ParamSetName::Default).unwrap()))
        .collect();
    for (c, sq) in &squashed {
        assert_eq!(
            BlockLayout::for_type(c.fhe_type, p.keys[0].message_modulus),
            sq.layout(),
            "{}",
            c.fhe_type
        );
    }
    // User decryption, honest, then with party 2's envelope not signed by party 2, then with
    // party 3's shares wrong.
    let truths: Vec<[u8; 32]> = cts.iter().map(|c| tfhe_word(&ck, c)).collect();
    let (words, cheaters, rejected) = user_run(&p, &squashed, &[], &[]);
    assert_eq!(words, truths);
    assert!(cheaters.is_empty() && rejected.is_empty());
    // t = 1: one faulty party at a time.
    let (words, cheaters, rejected) = user_run(&p, &squashed, &[2], &[]);
    assert_eq!(words, truths);
    assert!(cheaters.is_empty());
    assert_eq!(rejected, vec![2]);
    let (words, cheaters, rejected) = user_run(&p, &squashed, &[], &[3]);
    assert_eq!(words, truths);
    assert_eq!(cheaters, vec![3]);
    assert!(rejected.is_empty());

    // Squashing is deterministic: every party gets the same blocks.
    let a = squash(&cts[1], ParamSetName::Default).unwrap();
    let b = squash(&cts[1], ParamSetName::Default).unwrap();
    assert_eq!(a.blocks, b.blocks);
}

#[test]
fn test_parameters_n7_t2_with_two_cheaters() {
    let (ck, _) = keys(ParamSetName::TestInsecure);
    let p = setup(&ck, 7, 2);
    let mut all = Vec::new();
    for (t, bytes) in [
        (
            FheType::Uint64,
            serialize_public(&FheUint64::encrypt(OsRng.next_u64(), &ck)).unwrap(),
        ),
        (
            FheType::Int16,
            serialize_public(&FheInt16::encrypt(-12345i16, &ck)).unwrap(),
        ),
        (
            FheType::Bool,
            serialize_public(&FheBool::encrypt(false, &ck)).unwrap(),
        ),
    ] {
        let ct = TypedCiphertext { fhe_type: t, bytes };
        let sq = squash(&ct, ParamSetName::TestInsecure).unwrap();
        let truth = tfhe_word(&ck, &ct);
        all.push((ct.clone(), sq.clone(), truth));
        for faults in [
            vec![],
            vec![(2, Fault::Random), (6, Fault::WrongValue)],
            vec![(1, Fault::Silent), (7, Fault::Random)],
            vec![(4, Fault::Malformed), (5, Fault::Silent)],
        ] {
            for (pt, cheaters) in run(&p, &sq, &faults, b"seven") {
                assert_eq!(pt.word, truth, "{t} with {faults:?}");
                let wrong: Vec<usize> = faults
                    .iter()
                    .filter(|(_, f)| matches!(f, Fault::Random | Fault::WrongValue))
                    .map(|(w, _)| *w)
                    .collect();
                assert_eq!(cheaters, wrong);
            }
        }
    }
    let squashed: Vec<(TypedCiphertext, SquashedCiphertext)> =
        all.iter().map(|(c, s, _)| (c.clone(), s.clone())).collect();
    let truths: Vec<[u8; 32]> = all.iter().map(|(_, _, t)| *t).collect();
    let (words, cheaters, rejected) = user_run(&p, &squashed, &[5], &[1]);
    assert_eq!(words, truths);
    assert_eq!(cheaters, vec![1]);
    assert_eq!(rejected, vec![5]);
}

#[test]
fn parameter_constraints_are_checked() {
    assert!(FloodingParams::new(4, 1, 4, 4).is_ok());
    assert!(FloodingParams::new(7, 2, 4, 4).is_ok());
    // C(13,4) = 715 ≤ 2^11 fits; C(16,5) = 4368 > 2^11 does not.
    assert!(FloodingParams::new(13, 4, 4, 4).is_ok());
    assert!(FloodingParams::new(16, 5, 4, 4).is_err());
    assert!(FloodingParams::new(40, 13, 4, 4).is_err());
    let (ck, _) = keys(ParamSetName::TestInsecure);
    assert!(deal_insecure(&ck, test_key(), 3, 1, &mut OsRng).is_err()); // n < 3t + 1
}

#[test]
fn resharing_refreshes_and_moves_to_seven_parties() {
    use kms_algebra::shamir::interpolate_at;
    use kms_threshold::{reshare_in, reshare_out};
    let (ck, _) = keys(ParamSetName::TestInsecure);
    let old = setup(&ck, 4, 1);
    let (mm, cm) = (old.keys[0].message_modulus, old.keys[0].carry_modulus);
    let nsk = ck.clone().into_raw_parts().3.unwrap().into_raw_parts();
    let lwe = nsk.post_noise_squashing_secret_key().as_lwe_secret_key();
    let truth: Vec<u128> = lwe.as_ref().to_vec();
    let ct = TypedCiphertext {
        fhe_type: FheType::Uint64,
        bytes: serialize_public(&FheUint64::encrypt(0x0bad_cafe_dead_beefu64, &ck)).unwrap(),
    };
    let sq = squash(&ct, ParamSetName::TestInsecure).unwrap();
    let want = tfhe_word(&ck, &ct);

    // 4 → 4 (proactive refresh), combining the sub-shares of old parties 2 and 3.
    let outs: Vec<Vec<SubShares<u128>>> = old
        .keys
        .iter()
        .map(|k| reshare_out(k, 4, 1, &mut OsRng).unwrap())
        .collect();
    let refreshed: Vec<SnsKeyShare> = (1..=4)
        .map(|j| {
            let recv: Vec<(usize, SubShares<u128>)> = [2usize, 3]
                .iter()
                .map(|&i| (i, outs[i - 1][j - 1].clone()))
                .collect();
            reshare_in(j, test_key(), 4, 1, 1, &recv, mm, cm).unwrap()
        })
        .collect();
    for (c, &coef) in truth.iter().enumerate().take(32) {
        // New shares hold the same key…
        let v = interpolate_at(
            &[(1, refreshed[0].key[c]), (4, refreshed[3].key[c])],
            &Share::ZERO,
        )
        .unwrap();
        assert_eq!(v, Share::from_scalar(coef));
        // …but an old share and a new one reconstruct garbage: old shares are useless.
        let mixed = interpolate_at(
            &[(1, old.keys[0].key[c]), (2, refreshed[1].key[c])],
            &Share::ZERO,
        )
        .unwrap();
        assert_ne!(mixed, Share::from_scalar(coef), "coefficient {c}");
        assert_ne!(refreshed[0].key[c], old.keys[0].key[c]);
    }
    let p = Parties {
        keys: refreshed,
        prss: old.prss.clone(),
        fp: old.fp,
    };
    for (pt, cheaters) in run(&p, &sq, &[(2, Fault::Random)], b"after refresh") {
        assert_eq!(pt.word, want);
        assert_eq!(cheaters, vec![2]);
    }

    // 4 → 7 with t' = 2.
    let outs: Vec<Vec<SubShares<u128>>> = old
        .keys
        .iter()
        .map(|k| reshare_out(k, 7, 2, &mut OsRng).unwrap())
        .collect();
    let seven: Vec<SnsKeyShare> = (1..=7)
        .map(|j| {
            let recv: Vec<(usize, SubShares<u128>)> =
                (1..=4).map(|i| (i, outs[i - 1][j - 1].clone())).collect();
            reshare_in(j, test_key(), 7, 2, 1, &recv, mm, cm).unwrap()
        })
        .collect();
    let prss_keys = deal_keys(7, 2, &mut OsRng);
    let p7 = Parties {
        keys: seven,
        prss: (1..=7)
            .map(|i| Prss::new(i, 7, 2, &prss_keys).unwrap())
            .collect(),
        fp: FloodingParams::new(7, 2, mm, cm).unwrap(),
    };
    for (pt, cheaters) in run(
        &p7,
        &sq,
        &[(3, Fault::WrongValue), (7, Fault::Silent)],
        b"seven",
    ) {
        assert_eq!(pt.word, want);
        assert_eq!(cheaters, vec![3]);
    }
    assert!(reshare_out(&old.keys[0], 5, 2, &mut OsRng).is_err()); // 5 < 3·2 + 1
}

#[test]
fn compute_key_shares_hold_the_tfhe_keys_and_reshare() {
    use kms_algebra::shamir::{interpolate_at, robust_open};
    use kms_threshold::{
        compute_key_coefficients, deal_compute_keys_insecure, reshare_compute_in,
        reshare_compute_out, ComputeKeyShares, Share64,
    };
    let (ck, _) = keys(ParamSetName::TestInsecure);
    let (lwe, glwe) = compute_key_coefficients(&ck).unwrap();
    assert!(!lwe.is_empty() && !glwe.is_empty());
    // Binary keys on these parameters: shares are of 0/1 values, but never themselves 0/1 only.
    assert!(lwe.iter().chain(&glwe).all(|&c| c <= 1));
    let shares = deal_compute_keys_insecure(&ck, test_key(), 4, 1, &mut OsRng).unwrap();
    assert_eq!(shares[2].lwe.len(), lwe.len());
    assert_eq!(shares[2].glwe.len(), glwe.len());
    // Robust opening of every coefficient, with party 3 sending garbage, gives tfhe's key.
    let open = |get: &dyn Fn(&ComputeKeyShares) -> Share64| -> (Share64, Vec<usize>) {
        let v: Vec<Option<Share64>> = shares
            .iter()
            .map(|s| {
                Some(if s.party == 3 {
                    Share64::random(&mut OsRng)
                } else {
                    get(s)
                })
            })
            .collect();
        let o = robust_open(&v, 1).unwrap();
        (o.value, o.cheaters)
    };
    for (c, &want) in lwe.iter().enumerate() {
        let (v, cheaters) = open(&|s| s.lwe[c]);
        assert_eq!(v, Share64::from_scalar(want));
        assert_eq!(cheaters, vec![3]);
    }
    for (c, &want) in glwe.iter().enumerate().step_by(7) {
        let (v, _) = open(&|s| s.glwe[c]);
        assert_eq!(v, Share64::from_scalar(want));
    }
    // One share alone says nothing: it is not the coefficient.
    assert!(shares[0].glwe.iter().any(|s| !s.is_scalar()));

    // Reshare 4 → 7 (t' = 2) from dealers 1, 2, 4.
    let outs: Vec<Vec<SubShares<u64>>> = shares
        .iter()
        .map(|s| reshare_compute_out(s, 7, 2, &mut OsRng).unwrap())
        .collect();
    let seven: Vec<ComputeKeyShares> = (1..=7)
        .map(|j| {
            let recv: Vec<(usize, SubShares<u64>)> = [1usize, 2, 4]
                .iter()
                .map(|&i| (i, outs[i - 1][j - 1].clone()))
                .collect();
            reshare_compute_in(j, test_key(), 7, 2, 1, lwe.len(), &recv).unwrap()
        })
        .collect();
    for (c, &want) in lwe.iter().enumerate() {
        let pts: Vec<(usize, Share64)> = [2usize, 5, 7]
            .iter()
            .map(|&p| (p, seven[p - 1].lwe[c]))
            .collect();
        assert_eq!(
            interpolate_at(&pts, &Share64::ZERO).unwrap(),
            Share64::from_scalar(want)
        );
        // Two old shares and one new do not combine.
        let mixed = [
            (1, shares[0].lwe[c]),
            (2, shares[1].lwe[c]),
            (3, seven[2].lwe[c]),
        ];
        assert_ne!(
            interpolate_at(&mixed, &Share64::ZERO).unwrap(),
            Share64::from_scalar(want)
        );
    }
    for (c, &want) in glwe.iter().enumerate().step_by(13) {
        let pts: Vec<(usize, Share64)> = [1usize, 3, 6]
            .iter()
            .map(|&p| (p, seven[p - 1].glwe[c]))
            .collect();
        assert_eq!(
            interpolate_at(&pts, &Share64::ZERO).unwrap(),
            Share64::from_scalar(want)
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReshareFault {
    /// The dealer reshares another value for one coefficient (a consistent sharing).
    WrongValue(usize),
    /// The dealer sends one new party a sub-share off the polynomial.
    Inconsistent(usize),
    /// A new party sends random check shares for every dealer.
    LyingChecker(usize),
}

/// 4 → 7 resharing with the new parties' verification; returns the verdict and the new shares.
fn verified_reshare(
    old: &Parties,
    faults: &[ReshareFault],
    force_dealers: Option<Vec<usize>>,
) -> (
    kms_threshold::reshare_check::ReshareVerdict,
    Vec<SnsKeyShare>,
) {
    use kms_algebra::shamir::robust_open;
    use kms_threshold::reshare_check::{check_shares, judge, seed_share};
    use kms_threshold::{reshare_in, reshare_out};
    let (old_n, old_t, new_n, new_t) = (4, 1, 7, 2);
    let (mm, cm) = (old.keys[0].message_modulus, old.keys[0].carry_modulus);
    let coefs = old.keys[0].key.len();
    // Dealing.
    let mut outs: Vec<Vec<SubShares<u128>>> = old
        .keys
        .iter()
        .map(|k| reshare_out(k, new_n, new_t, &mut OsRng).unwrap())
        .collect();
    for f in faults {
        match *f {
            ReshareFault::WrongValue(d) => {
                // Add a consistent sharing of δ to coefficient 5 of dealer d's dealing.
                let delta =
                    kms_algebra::shamir::share::<u128, 4>(1 << 100, new_t, new_n, &mut OsRng)
                        .unwrap();
                for (j, dj) in delta.iter().enumerate() {
                    let v = outs[d - 1][j].values_mut();
                    v[5] = v[5].add(dj.value());
                }
            }
            ReshareFault::Inconsistent(d) => {
                outs[d - 1][6].values_mut()[9] = Share::random(&mut OsRng);
            }
            ReshareFault::LyingChecker(_) => {}
        }
    }
    // The new parties' PRSS (their own setup) and the common seed.
    let prss_keys = deal_keys(new_n, new_t, &mut OsRng);
    let prss: Vec<Prss<u128, 4>> = (1..=new_n)
        .map(|j| Prss::new(j, new_n, new_t, &prss_keys).unwrap())
        .collect();
    let sid = b"reshare/epoch-2";
    let seed_shares: Vec<Option<Share>> = prss.iter().map(|p| Some(seed_share(p, sid))).collect();
    let seed = robust_open(&seed_shares, new_t).unwrap().value;
    // Check shares.
    let checks: Vec<Option<Vec<Vec<Option<Share>>>>> = (1..=new_n)
        .map(|j| {
            let received: Vec<Option<SubShares<u128>>> =
                (0..old_n).map(|i| Some(outs[i][j - 1].clone())).collect();
            let mut m = check_shares(&prss[j - 1], sid, &seed, &received, coefs, old_t).unwrap();
            if faults.contains(&ReshareFault::LyingChecker(j)) {
                for row in m.iter_mut() {
                    for v in row.iter_mut() {
                        *v = Some(Share::random(&mut OsRng));
                    }
                }
            }
            Some(m)
        })
        .collect();
    let verdict = judge(&checks, old_n, old_t, new_t).unwrap();
    let dealers = force_dealers.unwrap_or_else(|| verdict.dealers.clone());
    let new_keys = (1..=new_n)
        .map(|j| {
            let recv: Vec<(usize, SubShares<u128>)> = dealers
                .iter()
                .map(|&i| (i, outs[i - 1][j - 1].clone()))
                .collect();
            reshare_in(j, test_key(), new_n, new_t, old_t, &recv, mm, cm).unwrap()
        })
        .collect();
    (verdict, new_keys)
}

#[test]
fn verified_resharing_excludes_cheating_dealers() {
    use kms_algebra::shamir::interpolate_at;
    let (ck, _) = keys(ParamSetName::TestInsecure);
    let old = setup(&ck, 4, 1);
    let nsk = ck.clone().into_raw_parts().3.unwrap().into_raw_parts();
    let truth: Vec<u128> = nsk
        .post_noise_squashing_secret_key()
        .as_lwe_secret_key()
        .as_ref()
        .to_vec();
    let ct = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: serialize_public(&FheUint8::encrypt(77u8, &ck)).unwrap(),
    };
    let sq = squash(&ct, ParamSetName::TestInsecure).unwrap();
    let want = tfhe_word(&ck, &ct);
    let holds_key = |keys: &[SnsKeyShare]| {
        [0usize, 5, 9, 100].iter().all(|&c| {
            let pts: Vec<(usize, Share)> = [1usize, 4, 7]
                .iter()
                .map(|&p| (p, keys[p - 1].key[c]))
                .collect();
            interpolate_at(&pts, &Share::ZERO).unwrap() == Share::from_scalar(truth[c])
        })
    };
    use ReshareFault::*;
    for (faults, excluded, liars) in [
        (vec![], vec![], vec![]),
        (vec![WrongValue(3)], vec![3], vec![]),
        (vec![WrongValue(1)], vec![1], vec![]),
        (vec![Inconsistent(2)], vec![2], vec![]),
        (vec![LyingChecker(5)], vec![], vec![5]),
        (vec![WrongValue(1), LyingChecker(6)], vec![1], vec![6]),
    ] {
        let (verdict, new_keys) = verified_reshare(&old, &faults, None);
        assert_eq!(verdict.excluded, excluded, "{faults:?}");
        assert_eq!(verdict.lying_new_parties, liars, "{faults:?}");
        assert_eq!(verdict.dealers.len(), 2);
        assert!(verdict.dealers.iter().all(|d| !excluded.contains(d)));
        assert!(holds_key(&new_keys), "{faults:?}");
        // And the new parties decrypt.
        let prss_keys = deal_keys(7, 2, &mut OsRng);
        let p7 = Parties {
            keys: new_keys,
            prss: (1..=7)
                .map(|i| Prss::new(i, 7, 2, &prss_keys).unwrap())
                .collect(),
            fp: FloodingParams::new(7, 2, 4, 4).unwrap(),
        };
        for (pt, _) in run(&p7, &sq, &[], b"after verified reshare") {
            assert_eq!(pt.word, want);
        }
    }
    // Without the check, the wrong-value dealer would have corrupted the key for good.
    let (_, corrupted) = verified_reshare(&old, &[WrongValue(3)], Some(vec![3, 4]));
    assert!(!holds_key(&corrupted));
}
