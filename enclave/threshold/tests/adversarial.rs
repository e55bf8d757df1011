//! Issue 9, the MPC holes, tried as an attacker would: on the in-process transport with its
//! fault-injection filter (the untrusted hosts drop, delay or replace messages) and with corrupt
//! parties that send what they like to whom they like. Test parameters (seconds).
//!
//! * hole 1: a host drops honest shares to one party, a corrupt party equivocates: an honest
//!   party outputs the right value or refuses (naming the missing parties), never a wrong one,
//!   and two honest parties never output different values;
//! * hole 4: masks bound to (key, request, ciphertext digest, block); one content per request
//!   ID; key shares checked against the request's key;
//! * holes 6 and 15: the user-decryption client decodes from any 2t + 1 agreeing shares, a bad
//!   envelope counts as silent, and it asks for more when needed;
//! * hole 10: resharing verdicts agreed on; old shares erased only after a checked, agreed
//!   resharing.

mod common;

use kms_algebra::prss::{deal_keys, mask_value, Prss, PrssKeys};
use kms_algebra::shamir::{robust_open, share, ShamirError};
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::serialize_public;
use kms_party_net::{Delivery, InProcessNetwork, Transport};
use kms_signcryption::{ClientKeyPair, Signcrypted};
use kms_threshold::reshare_agree::{
    agree_verdict, check_new_sharing, commit_reshare, AgreedVerdict, Grade,
};
use kms_threshold::reshare_check::{check_shares, encode_dealers, judge, seed_share};
use kms_threshold::{
    deal_insecure, decrypt_round, encode_partials, partial_decrypt, reshare_in, reshare_out,
    squash, user_combine, user_share, DecryptionSession, FloodingParams, HeldKey, RoundOutcome,
    ServedLog, Share, SnsKeyShare, SquashedCiphertext, SubShares, ThresholdError, ThresholdParty,
    UserShareResponse,
};
use kms_types::{FheType, KeyEpoch, ParamSetName, RequestId, TypedCiphertext};
use rand_core::OsRng;
use std::sync::Arc;
use std::time::Duration;
use tfhe::prelude::*;

const VALUE: u8 = 173;

struct World {
    key_id: RequestId,
    ck: tfhe::ClientKey,
    keys: Vec<Arc<SnsKeyShare>>,
    prss_keys: PrssKeys,
    prss: Vec<Arc<Prss<u128, 4>>>,
    fp: FloodingParams,
    ct: TypedCiphertext,
    sq: SquashedCiphertext,
}

/// A key set on test parameters, its shares for n parties, and one FheUint8 ciphertext of
/// [`VALUE`], squashed.
fn world(n: usize, t: usize) -> World {
    let key_id = RequestId::derive("adversarial", &[n as u8, t as u8]);
    let ks = kms_engine::generate_key_set(ParamSetName::TestInsecure, &key_id, &mut |_| {});
    tfhe::set_server_key(ks.server_key.decompress());
    let ct = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: serialize_public(&tfhe::FheUint8::encrypt(VALUE, &ks.client_key)).unwrap(),
    };
    let sq = squash(&ct, ParamSetName::TestInsecure).unwrap();
    let keys = deal_insecure(&ks.client_key, key_id, n, t, &mut OsRng).unwrap();
    let fp = FloodingParams::new(n, t, keys[0].message_modulus, keys[0].carry_modulus).unwrap();
    let prss_keys = deal_keys(n, t, &mut OsRng);
    World {
        key_id,
        ck: ks.client_key,
        prss: (1..=n)
            .map(|p| Arc::new(Prss::new(p, n, t, &prss_keys).unwrap()))
            .collect(),
        prss_keys,
        keys: keys.into_iter().map(Arc::new).collect(),
        fp,
        ct,
        sq,
    }
}

impl World {
    fn session(&self, tag: &[u8]) -> DecryptionSession {
        DecryptionSession {
            kind: DecryptionSession::PUBLIC,
            key_id: self.key_id,
            request_id: RequestId::derive("adversarial/request", tag),
            index: 0,
            ciphertext_digest: self.ct.digest(),
        }
    }

    /// Party `p`'s honest partial decryptions.
    fn honest(&self, p: usize, s: &DecryptionSession) -> Vec<Share> {
        partial_decrypt(&self.keys[p - 1], &self.prss[p - 1], &self.fp, s, &self.sq).unwrap()
    }

    /// Party `p`'s partials shifted by `k·Δ` on every block: shares of another value.
    fn shifted(&self, p: usize, s: &DecryptionSession, k: u128) -> Vec<u8> {
        let shift = Share::from_scalar(k << self.fp.delta_log2);
        encode_partials(
            &self
                .honest(p, s)
                .iter()
                .map(|x| x.add(&shift))
                .collect::<Vec<_>>(),
        )
    }
}

/// Runs the decryption round for the honest `parties` concurrently.
async fn run_honest(
    w: &World,
    net: &InProcessNetwork,
    parties: &[usize],
    s: &DecryptionSession,
    deadline: Duration,
) -> Vec<Result<RoundOutcome, ThresholdError>> {
    let mut tasks = Vec::new();
    for &p in parties {
        let (k, r, fp, sq, s, t) = (
            w.keys[p - 1].clone(),
            w.prss[p - 1].clone(),
            w.fp,
            w.sq.clone(),
            s.clone(),
            net.party(p),
        );
        tasks.push(tokio::spawn(async move {
            decrypt_round(&t, &k, &r, &fp, &s, &sq, deadline).await
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn refused_missing(r: &Result<RoundOutcome, ThresholdError>) -> Option<Vec<usize>> {
    match r {
        Err(ThresholdError::Open {
            source: ShamirError::InsufficientAgreement { missing, .. },
            ..
        }) => Some(missing.clone()),
        _ => None,
    }
}

/// Holes 1 and the dropped-messages test: n = 4, t = 1; the host of party 1 drops the shares of
/// honest parties 2 and 3; corrupt party 4 sends shares of another value. On the old rule party
/// 1 opened its own share with party 4's, a wrong value; now it refuses and names parties 2
/// and 3. Parties 2 and 3 correct party 4's shares and output the right value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_honest_shares_make_one_party_refuse() {
    let w = world(4, 1);
    let net = InProcessNetwork::new(4);
    let s = w.session(b"dropped");
    net.set_filter(|from, to, _, _| {
        if to == 1 && (from == 2 || from == 3) {
            Delivery::Drop
        } else {
            Delivery::Deliver
        }
    });
    let p4 = net.party(4);
    for to in 1..=3 {
        p4.send(to, &s.id(), w.shifted(4, &s, 5)).await.unwrap();
    }
    let outs = run_honest(&w, &net, &[1, 2, 3], &s, Duration::from_millis(400)).await;
    assert_eq!(
        refused_missing(&outs[0]),
        Some(vec![2, 3]),
        "party 1: {:?}",
        outs[0].as_ref().map(|o| o.plaintext)
    );
    for o in &outs[1..] {
        let o = o.as_ref().unwrap();
        assert_eq!(o.plaintext.as_u128(), Some(u128::from(VALUE)));
        assert_eq!(o.cheaters, vec![4]);
        assert!(o.absent.is_empty());
    }
}

/// Equivocation: corrupt parties send different shares to different honest parties (honest
/// ones, shares of different wrong values, garbage, nothing), sometimes with a host dropping
/// an honest share too. Every honest party outputs the right value or refuses; never a wrong
/// value; two honest parties never output different values. Both outcomes occur.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_parties_never_split_honest_parties() {
    #[derive(Clone, Copy, Debug)]
    enum Msg {
        Honest,
        Shift(u128),
        Garbage,
        Nothing,
    }
    let mut refusals = 0;
    let mut outputs = 0;
    // n = 4, t = 1, party 4 corrupt: what it sends to parties 1, 2, 3, and which honest share
    // (from, to) a host drops.
    let w = world(4, 1);
    /// What party 4 sends to parties 1, 2, 3, and the (from, to) share a host drops.
    type Scenario = ([Msg; 3], Option<(usize, usize)>);
    let scenarios: Vec<Scenario> = vec![
        ([Msg::Honest, Msg::Shift(1), Msg::Shift(2)], None),
        ([Msg::Shift(3), Msg::Garbage, Msg::Honest], None),
        ([Msg::Shift(1), Msg::Honest, Msg::Nothing], Some((2, 1))),
        ([Msg::Honest, Msg::Shift(7), Msg::Garbage], Some((1, 2))),
        ([Msg::Nothing, Msg::Shift(1), Msg::Honest], Some((3, 2))),
    ];
    for (i, (sends, drop)) in scenarios.into_iter().enumerate() {
        let net = InProcessNetwork::new(4);
        let s = w.session(format!("equivocation-{i}").as_bytes());
        if let Some((f, t)) = drop {
            net.set_filter(move |from, to, _, _| {
                if (from, to) == (f, t) {
                    Delivery::Drop
                } else {
                    Delivery::Deliver
                }
            });
        }
        let p4 = net.party(4);
        for (to, how) in (1..=3).zip(sends) {
            let msg = match how {
                Msg::Honest => encode_partials(&w.honest(4, &s)),
                Msg::Shift(k) => w.shifted(4, &s, k),
                Msg::Garbage => {
                    encode_partials(&vec![Share::random(&mut OsRng); w.sq.blocks.len()])
                }
                Msg::Nothing => continue,
            };
            p4.send(to, &s.id(), msg).await.unwrap();
        }
        let outs = run_honest(&w, &net, &[1, 2, 3], &s, Duration::from_millis(300)).await;
        let mut values = Vec::new();
        for (p, o) in outs.iter().enumerate() {
            match o {
                Ok(o) => {
                    assert_eq!(
                        o.plaintext.as_u128(),
                        Some(u128::from(VALUE)),
                        "scenario {i}, party {}",
                        p + 1
                    );
                    values.push(o.plaintext);
                    outputs += 1;
                }
                Err(_) => {
                    assert!(refused_missing(o).is_some(), "scenario {i}: {o:?}");
                    refusals += 1;
                }
            }
        }
        values.dedup();
        assert!(values.len() <= 1, "scenario {i}: honest parties disagree");
    }
    // n = 7, t = 2, parties 6 and 7 corrupt and coordinated: to party 1 they send shares of a
    // wrong value (a consistent shift among them), and its host drops the shares of honest
    // parties 2 to 5, leaving party 1 with t + 1 = 3 shares that interpolate to a wrong value
    // (the old rule output it). The others get honest shares from 6 and garbage from 7.
    let w = world(7, 2);
    let net = InProcessNetwork::new(7);
    let s = w.session(b"equivocation-7");
    net.set_filter(|from, to, _, _| {
        if to == 1 && (2..=5).contains(&from) {
            Delivery::Drop
        } else {
            Delivery::Deliver
        }
    });
    let delta = share::<u128, 4>(3 << w.fp.delta_log2, 2, 7, &mut OsRng).unwrap();
    for bad in [6usize, 7] {
        let t = net.party(bad);
        let wrong: Vec<Share> = w
            .honest(bad, &s)
            .iter()
            .map(|x| x.add(delta[bad - 1].value()))
            .collect();
        t.send(1, &s.id(), encode_partials(&wrong)).await.unwrap();
        for to in 2..=5 {
            let msg = if bad == 6 {
                encode_partials(&w.honest(bad, &s))
            } else {
                encode_partials(&vec![Share::random(&mut OsRng); w.sq.blocks.len()])
            };
            t.send(to, &s.id(), msg).await.unwrap();
        }
    }
    let outs = run_honest(&w, &net, &[1, 2, 3, 4, 5], &s, Duration::from_millis(400)).await;
    assert_eq!(refused_missing(&outs[0]), Some(vec![2, 3, 4, 5]));
    refusals += 1;
    for o in &outs[1..] {
        let o = o.as_ref().unwrap();
        assert_eq!(o.plaintext.as_u128(), Some(u128::from(VALUE)));
        assert_eq!(o.cheaters, vec![7]);
        outputs += 1;
    }
    assert!(
        refusals >= 3 && outputs >= 10,
        "{refusals} refusals, {outputs} outputs"
    );
}

/// Hole 4: the mask of every block is the PRSS mask of (kind, key ID, request ID, ciphertext
/// index and digest), counter = block; sessions that differ in any of these have different
/// masks. Checked on the opened partial decryptions: opened value − phase = the mask.
#[test]
fn masks_are_bound_to_key_request_and_ciphertext() {
    let w = world(4, 1);
    let bits = w.fp.mask_bits;
    let base = w.session(b"mask");
    let mut variants = vec![base.clone()];
    let mut v = base.clone();
    v.ciphertext_digest[0] ^= 1; // same request ID, another ciphertext (the replay of hole 4)
    variants.push(v);
    let mut v = base.clone();
    v.key_id = RequestId::derive("another key", b"");
    variants.push(v);
    let mut v = base.clone();
    v.request_id = RequestId::derive("another request", b"");
    variants.push(v);
    let mut v = base.clone();
    v.index = 1;
    variants.push(v);
    let mut v = base.clone();
    v.kind = DecryptionSession::USER;
    variants.push(v);
    let masks: Vec<u128> = variants
        .iter()
        .map(|s| mask_value::<u128>(&w.prss_keys, &s.id(), 0, bits))
        .collect();
    for (i, a) in masks.iter().enumerate() {
        for (j, b) in masks.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "sessions {i} and {j} share a mask");
        }
    }
    // The protocol really uses that mask: open the partial decryptions of block 0 and subtract
    // the phase b − ⟨a, s⟩ computed with the secret key.
    let nsk = w.ck.clone().into_raw_parts().3.unwrap().into_raw_parts();
    let sk = nsk.post_noise_squashing_secret_key().as_lwe_secret_key();
    let sk: &[u128] = sk.as_ref();
    let (a, b) = &w.sq.blocks[0];
    let phase = a
        .iter()
        .zip(sk)
        .fold(*b, |acc, (x, y)| acc.wrapping_sub(x.wrapping_mul(*y)));
    for (s, mask) in variants[..2].iter().zip(&masks) {
        let shares: Vec<Option<Share>> = (1..=4).map(|p| Some(w.honest(p, s)[0])).collect();
        let opened = robust_open(&shares, 1).unwrap().value.scalar();
        assert_eq!(opened.wrapping_sub(phase), *mask);
    }
}

/// Hole 4: a key share is only used for its own key.
#[test]
fn a_key_share_of_another_key_is_refused() {
    let w = world(4, 1);
    let mut s = w.session(b"wrong key");
    s.key_id = RequestId::derive("key B", b"");
    let err = partial_decrypt(&w.keys[0], &w.prss[0], &w.fp, &s, &w.sq).unwrap_err();
    assert_eq!(
        err,
        ThresholdError::WrongKey {
            share_key: w.key_id,
            request_key: s.key_id
        }
    );
}

fn parties(w: World) -> (Vec<Arc<ThresholdParty>>, tfhe::ClientKey, TypedCiphertext) {
    let n = w.keys.len();
    let keys: Vec<SnsKeyShare> = w
        .keys
        .into_iter()
        .map(|k| Arc::try_unwrap(k).unwrap())
        .collect();
    let ps = keys
        .into_iter()
        .zip(w.prss)
        .map(|(key, prss)| {
            Arc::new(ThresholdParty {
                key: HeldKey::new(KeyEpoch::default(), key),
                prss: Arc::try_unwrap(prss).unwrap(),
                flooding: w.fp,
                params: ParamSetName::TestInsecure,
                signer: SigningKey::random(&mut OsRng),
                domain: DomainConfig::default(),
                served: ServedLog::in_memory(),
            })
        })
        .collect::<Vec<_>>();
    assert_eq!(ps.len(), n);
    (ps, w.ck, w.ct)
}

/// Hole 4: a request ID is served with one content only. A host re-sends request R with another
/// ciphertext: refused before any share leaves the party. The same content again: the stored
/// result, without any network round (the other parties are gone). A key share is refused for
/// a request on another key. User decryption likewise (another client key = other content).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_served_with_one_content() {
    let w = world(4, 1);
    let key_id = w.key_id;
    let other_ct = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: serialize_public(&tfhe::FheUint8::encrypt(9u8, &w.ck)).unwrap(),
    };
    let other_sq = squash(&other_ct, ParamSetName::TestInsecure).unwrap();
    let (ps, _ck, ct) = parties(w);
    let sq = vec![(ct.clone(), squash(&ct, ParamSetName::TestInsecure).unwrap())];
    let net = InProcessNetwork::new(4);
    let request = RequestId::derive("served", b"R");
    let mut tasks = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let (p, t, sq) = (p.clone(), net.party(i + 1), sq.clone());
        tasks.push(tokio::spawn(async move {
            p.decrypt_squashed(&t, request, key_id, E0, &sq, Duration::from_secs(5))
                .await
        }));
    }
    let mut first = Vec::new();
    for t in tasks {
        first.push(t.await.unwrap().unwrap());
    }
    assert!(first
        .iter()
        .all(|r| r.signed.plaintexts[0].as_u128() == Some(u128::from(VALUE))));
    // The replay with another ciphertext.
    let t1 = net.party(1);
    let replay = vec![(other_ct.clone(), other_sq.clone())];
    assert_eq!(
        ps[0]
            .decrypt_squashed(&t1, request, key_id, E0, &replay, Duration::from_millis(50))
            .await
            .unwrap_err(),
        ThresholdError::RequestReplayed {
            key_id,
            request_id: request
        }
    );
    // The same content: the stored result, signed again.
    let again = ps[0]
        .decrypt_squashed(&t1, request, key_id, E0, &sq, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(again.signed, first[0].signed);
    // Another key.
    let wrong_key = RequestId::derive("key B", b"");
    assert!(matches!(
        ps[0]
            .decrypt_squashed(&t1, request, wrong_key, E0, &sq, Duration::from_millis(50))
            .await,
        Err(ThresholdError::WrongKey { .. })
    ));
    // User decryption: same request ID, another client key.
    let user_req = RequestId::derive("served", b"U");
    let c1 = ClientKeyPair::generate(&mut OsRng);
    let c2 = ClientKeyPair::generate(&mut OsRng);
    assert!(ps[1]
        .user_decrypt_share(user_req, key_id, E0, &sq, c1.public(), &mut OsRng)
        .is_ok());
    assert!(ps[1]
        .user_decrypt_share(user_req, key_id, E0, &sq, c1.public(), &mut OsRng)
        .is_ok());
    assert!(matches!(
        ps[1].user_decrypt_share(user_req, key_id, E0, &sq, c2.public(), &mut OsRng),
        Err(ThresholdError::RequestReplayed { .. })
    ));
    assert!(matches!(
        ps[1].user_decrypt_share(user_req, key_id, E0, &replay, c1.public(), &mut OsRng),
        Err(ThresholdError::RequestReplayed { .. })
    ));
    assert!(matches!(
        ps[1].user_decrypt_share(
            RequestId::derive("served", b"V"),
            wrong_key,
            E0,
            &sq,
            c1.public(),
            &mut OsRng
        ),
        Err(ThresholdError::WrongKey { .. })
    ));
    // A request approved under another epoch of the key's sharing (after a resharing, or
    // before one this party already took up): refused, public and user decryption alike, before
    // any share leaves the party.
    let later = KeyEpoch {
        number: 1,
        by: Some(kms_types::Reshared {
            request: RequestId::derive("reshare", b"e1"),
            verdict_digest: [1; 32],
        }),
    };
    assert!(matches!(
        ps[2]
            .decrypt_squashed(
                &net.party(3),
                RequestId::derive("served", b"W"),
                key_id,
                later,
                &sq,
                Duration::from_millis(50)
            )
            .await,
        Err(ThresholdError::WrongEpoch { held, asked }) if *held == E0 && *asked == later
    ));
    assert!(matches!(
        ps[2].user_decrypt_share(
            RequestId::derive("served", b"X"),
            key_id,
            later,
            &sq,
            c1.public(),
            &mut OsRng
        ),
        Err(ThresholdError::WrongEpoch { .. })
    ));
}

/// The epoch of the shares these tests deal.
const E0: KeyEpoch = KeyEpoch {
    number: 0,
    by: None,
};

/// Holes 6 and 15: the client combines from whatever envelopes it has. n = 4, t = 1.
#[test]
fn user_combine_decodes_from_any_agreeing_2t_plus_1() {
    let w = world(4, 1);
    let n = 4;
    let domain = DomainConfig::default();
    let client = ClientKeyPair::generate(&mut OsRng);
    let request = RequestId::derive("user combine", b"");
    let signers: Vec<SigningKey> = (0..n).map(|_| SigningKey::random(&mut OsRng)).collect();
    let cts = vec![(w.ct.digest(), w.sq.clone())];
    let meta = vec![(FheType::Uint8, w.ct.digest())];
    let envelope = |p: usize, shift: bool| -> Signcrypted {
        let mut data = cts.clone();
        if shift {
            for (_, b) in data[0].1.blocks.iter_mut() {
                *b = b.wrapping_add(1u128 << w.fp.delta_log2);
            }
        }
        user_share(
            &w.keys[p - 1],
            &w.prss[p - 1],
            &w.fp,
            &signers[p - 1],
            &domain,
            request,
            w.key_id,
            &data,
            client.public(),
            &mut OsRng,
        )
        .unwrap()
    };
    let resp = |p: usize, sc: Option<Signcrypted>| UserShareResponse {
        party: p,
        signer: signers[p - 1].address(),
        response: sc,
    };
    let combine = |rs: &[UserShareResponse]| {
        user_combine(&client, &domain, &request, &w.key_id, &meta, rs, &w.fp)
    };
    let good: Vec<Signcrypted> = (1..=n).map(|p| envelope(p, false)).collect();
    // Garbage envelope from party 1 among n: party 2's envelope presented as party 1's
    // (unverifiable), and a corrupted one. Counted as silent; the other three decode.
    let mut flipped = good[0].envelope.as_bytes().to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for garbage in [
        good[1].clone(),
        Signcrypted {
            envelope: kms_signcryption::Envelope::from_bytes(flipped).unwrap(),
            response_signature: good[0].response_signature,
        },
    ] {
        let mut rs: Vec<UserShareResponse> = (1..=n)
            .map(|p| resp(p, Some(good[p - 1].clone())))
            .collect();
        rs[0] = resp(1, Some(garbage));
        let out = combine(&rs).unwrap();
        assert_eq!(out.plaintexts[0].as_u128(), Some(u128::from(VALUE)));
        assert_eq!(out.rejected, vec![1]);
        assert!(out.cheaters.is_empty() && out.missing.is_empty());
    }
    // Exactly 2t + 1 good envelopes, given in any order, party 1 absent.
    let rs = vec![
        resp(4, Some(good[3].clone())),
        resp(2, Some(good[1].clone())),
        resp(3, Some(good[2].clone())),
    ];
    let out = combine(&rs).unwrap();
    assert_eq!(out.plaintexts[0].as_u128(), Some(u128::from(VALUE)));
    assert_eq!(out.missing, vec![1]);
    // Two good, one garbage: not enough yet; the error names who to ask next.
    let mut rs = vec![
        resp(1, Some(good[1].clone())),
        resp(2, Some(good[1].clone())),
        resp(3, Some(good[2].clone())),
    ];
    match combine(&rs) {
        Err(ThresholdError::NeedMoreShares {
            missing,
            rejected,
            need,
            ..
        }) => {
            assert_eq!((missing, rejected, need), (vec![4], vec![1], 3));
        }
        other => panic!("{other:?}"),
    }
    // The fourth envelope arrives: decodes.
    rs.push(resp(4, Some(good[3].clone())));
    let out = combine(&rs).unwrap();
    assert_eq!(out.plaintexts[0].as_u128(), Some(u128::from(VALUE)));
    // Wrong shares from party 1 with only 2t + 1 envelopes: need more; with the fourth, the
    // wrong shares are corrected and named.
    let mut rs = vec![
        resp(1, Some(envelope(1, true))),
        resp(2, Some(good[1].clone())),
        resp(3, Some(good[2].clone())),
    ];
    assert!(matches!(
        combine(&rs),
        Err(ThresholdError::NeedMoreShares { missing, .. }) if missing == vec![4]
    ));
    rs.push(resp(4, Some(good[3].clone())));
    let out = combine(&rs).unwrap();
    assert_eq!(out.plaintexts[0].as_u128(), Some(u128::from(VALUE)));
    assert_eq!(out.cheaters, vec![1]);
}

// ---------------------------------------------------------------------------------------------
// Hole 10: resharing verdicts.

const OLD_N: usize = 4;
const OLD_T: usize = 1;
const NEW_N: usize = 7;
const NEW_T: usize = 2;
const COEFS: usize = 24;

/// A key of random binary coefficients shared among the old parties (no tfhe needed).
fn old_shares(key_id: RequestId) -> (Vec<u128>, Vec<SnsKeyShare>) {
    common::shared_binary_key(key_id, OLD_N, OLD_T, COEFS)
}

/// How the corrupt new party 7 behaves in the agreement.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Corrupt7 {
    /// Honest throughout.
    Honest,
    /// Shows wrong check shares for dealer 1 to parties 1 and 2 only, then equivocates in the
    /// agreement: tells parties 3 and 4 one set, the others another.
    LiesAboutDealer1,
}

/// One new party's result: its agreed verdict (or abort) and what it holds at the end.
struct NewParty {
    agreed: Result<AgreedVerdict, ThresholdError>,
    judged: Vec<usize>,
    kept_old: bool,
    /// Whether its consistency check of the new sharing passed.
    check_ok: bool,
    new_key: Option<SnsKeyShare>,
}

/// A 4 → 7 resharing with check, agreement, consistency check and commit. New party j ≤ 4 is
/// also old party j (its old share is what commit may erase).
/// `agreement: false` is the old flow: each party combines the dealer set it judged itself.
async fn reshare(
    corrupt: Corrupt7,
    delay_echoes_to_1: bool,
    agreement: bool,
) -> (Vec<u128>, Vec<NewParty>) {
    let key_id = RequestId::derive("reshare key", b"");
    let reshare_id = RequestId::derive("reshare", format!("{corrupt:?}").as_bytes());
    let (secret, old) = old_shares(key_id);
    let outs: Vec<Vec<SubShares<u128>>> = old
        .iter()
        .map(|k| reshare_out(k, NEW_N, NEW_T, &mut OsRng).unwrap())
        .collect();
    let prss_keys = deal_keys(NEW_N, NEW_T, &mut OsRng);
    let prss: Vec<Arc<Prss<u128, 4>>> = (1..=NEW_N)
        .map(|j| Arc::new(Prss::new(j, NEW_N, NEW_T, &prss_keys).unwrap()))
        .collect();
    let sid = b"reshare/epoch-2".to_vec();
    let seed_shares: Vec<Option<Share>> = prss.iter().map(|p| Some(seed_share(p, &sid))).collect();
    let seed = robust_open(&seed_shares, NEW_T).unwrap().value;
    // Check shares, and party 7's lie about dealer 1 to parties 1 and 2.
    let checks: Vec<_> = (1..=NEW_N)
        .map(|j| {
            let received: Vec<Option<SubShares<u128>>> =
                (0..OLD_N).map(|i| Some(outs[i][j - 1].clone())).collect();
            check_shares(&prss[j - 1], &sid, &seed, &received, COEFS, OLD_T).unwrap()
        })
        .collect();
    let mut lie = checks[6].clone();
    for row in lie.iter_mut() {
        row[0] = Some(Share::random(&mut OsRng));
    }
    let judged: Vec<Vec<usize>> = (1..=6)
        .map(|j| {
            let view: Vec<Option<_>> = (1..=NEW_N)
                .map(|s| {
                    Some(
                        if s == 7 && corrupt == Corrupt7::LiesAboutDealer1 && j <= 2 {
                            lie.clone()
                        } else {
                            checks[s - 1].clone()
                        },
                    )
                })
                .collect();
            judge(&view, OLD_N, OLD_T, NEW_T).unwrap().dealers
        })
        .collect();

    // Agreement over the network.
    let net = InProcessNetwork::new(NEW_N);
    if delay_echoes_to_1 {
        // The host of party 1 holds back the echoes of parties 2, 3 and 4 past the deadline.
        net.set_filter(|from, to, session, _| {
            if to == 1 && (2..=4).contains(&from) && session.ends_with(b"/echo") {
                Delivery::Delay(Duration::from_secs(2))
            } else {
                Delivery::Deliver
            }
        });
    }
    let deadline = Duration::from_millis(300);
    let p7 = net.party(7);
    match corrupt {
        Corrupt7::Honest => {}
        Corrupt7::LiesAboutDealer1 => {
            // Equivocation in both rounds.
            let mut s1 = sid.clone();
            s1.extend_from_slice(b"/verdict");
            let mut s2 = sid.clone();
            s2.extend_from_slice(b"/echo");
            for to in 1..=6 {
                let set: &[usize] = if to == 3 || to == 4 { &[1, 2] } else { &[2, 3] };
                p7.send(to, &s1, encode_dealers(set)).await.unwrap();
                p7.send(to, &s2, encode_dealers(&[1, 2])).await.unwrap();
            }
        }
    }
    let honest_parties: Vec<usize> = match corrupt {
        Corrupt7::Honest => (1..=7).collect(),
        Corrupt7::LiesAboutDealer1 => (1..=6).collect(),
    };
    let mut tasks = Vec::new();
    for &j in &honest_parties {
        let t = net.party(j);
        let mine = if j == 7 {
            judge(
                &checks.iter().cloned().map(Some).collect::<Vec<_>>(),
                OLD_N,
                OLD_T,
                NEW_T,
            )
            .unwrap()
            .dealers
        } else {
            judged[j - 1].clone()
        };
        let sid = sid.clone();
        tasks.push(tokio::spawn(async move {
            agree_verdict(
                &t,
                &reshare_id,
                &sid,
                Some(&mine),
                OLD_N,
                OLD_T,
                NEW_T,
                deadline,
            )
            .await
        }));
    }
    let mut agreed = Vec::new();
    for t in tasks {
        agreed.push(t.await.unwrap());
    }
    net.clear_filter();
    if !agreement {
        agreed = honest_parties
            .iter()
            .map(|&j| {
                let dealers = judged.get(j - 1).cloned().unwrap_or_else(|| vec![1, 2]);
                Ok(AgreedVerdict {
                    digest: kms_threshold::reshare_check::verdict_digest(&reshare_id, &dealers),
                    dealers,
                    grade: Grade::Committed,
                })
            })
            .collect();
    }
    // Every party that agreed combines the agreed dealers and checks the new sharing.
    let mut tasks = Vec::new();
    for (&j, a) in honest_parties.iter().zip(&agreed) {
        let new_key = a.as_ref().ok().map(|a| {
            let recv: Vec<(usize, SubShares<u128>)> = a
                .dealers
                .iter()
                .map(|&i| (i, outs[i - 1][j - 1].clone()))
                .collect();
            reshare_in(j, key_id, NEW_N, NEW_T, OLD_T, &recv, 4, 4).unwrap()
        });
        let (t, prss, sid) = (net.party(j), prss[j - 1].clone(), sid.clone());
        tasks.push(tokio::spawn(async move {
            let check = match &new_key {
                Some(k) => Some(check_new_sharing(&t, &prss, &sid, &seed, k, deadline).await),
                None => None,
            };
            (new_key, check)
        }));
    }
    if corrupt == Corrupt7::LiesAboutDealer1 {
        let mut s = sid.clone();
        s.extend_from_slice(b"/consistency");
        for to in 1..=6 {
            p7.send(to, &s, encode_partials(&[Share::random(&mut OsRng)]))
                .await
                .unwrap();
        }
    }
    let mut checked = Vec::new();
    for t in tasks {
        checked.push(t.await.unwrap());
    }
    // The chain: ReshareDone from parties that committed and checked; completes on n' − t'
    // equal digests.
    let reports: Vec<[u8; 32]> = agreed
        .iter()
        .zip(&checked)
        .filter_map(|(a, (_, c))| match (a, c) {
            (Ok(a), Some(Ok(_))) if a.grade == Grade::Committed => Some(a.digest),
            _ => None,
        })
        .collect();
    let completed = reports
        .iter()
        .find(|d| reports.iter().filter(|e| e == d).count() >= NEW_N - NEW_T)
        .copied();
    // Commit: old parties 1..=4 are new parties 1..=4.
    let mut old: Vec<Option<SnsKeyShare>> = old.into_iter().map(Some).collect();
    let mut result = Vec::new();
    for ((&j, a), (new_key, check)) in honest_parties.iter().zip(agreed).zip(checked) {
        let my_old = if j <= OLD_N { old[j - 1].take() } else { None };
        let check_ok = matches!(check, Some(Ok(_)));
        let (kept_old, new_key) = match (&a, new_key, check, completed) {
            (Ok(a), Some(k), Some(Ok(c)), Some(done)) => {
                match commit_reshare(my_old, k, a, &c, &done) {
                    Ok(k) => (false, Some(k)),
                    Err(abort) => (abort.old.is_some(), None),
                }
            }
            _ => (my_old.is_some(), None),
        };
        result.push(NewParty {
            agreed: a,
            judged: judged.get(j - 1).cloned().unwrap_or_default(),
            kept_old,
            check_ok,
            new_key,
        });
    }
    (secret, result)
}

/// The new shares of the committed parties hold the key.
fn holds_key(secret: &[u128], parties: &[NewParty]) -> bool {
    let held: Vec<&SnsKeyShare> = parties.iter().filter_map(|p| p.new_key.as_ref()).collect();
    (0..COEFS).all(|c| {
        let shares: Vec<Option<Share>> = (1..=NEW_N)
            .map(|j| held.iter().find(|k| k.party == j).map(|k| k.key[c]))
            .collect();
        robust_open(&shares, NEW_T)
            .map(|o| o.value == Share::from_scalar(secret[c]))
            .unwrap_or(false)
    })
}

/// No fault: every new party commits to one verdict, the new sharing checks consistent, the
/// old shares are erased, and the new shares hold the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharing_without_faults_commits_everywhere() {
    let (secret, parties) = reshare(Corrupt7::Honest, false, true).await;
    for p in &parties {
        let a = p.agreed.as_ref().unwrap();
        assert_eq!(a.grade, Grade::Committed);
        assert_eq!(a.dealers, parties[0].agreed.as_ref().unwrap().dealers);
        assert!(p.check_ok && !p.kept_old && p.new_key.is_some());
    }
    assert!(holds_key(&secret, &parties));
}

/// Hole 10: new party 7 lies about dealer 1 to parties 1 and 2 only, so their verdicts differ
/// from parties 3..6's (without agreement they would combine different dealer sets: shares of
/// no common polynomial), then equivocates in the agreement. Honest parties end with one
/// verdict, or abort; nobody erases its old share unless all honest parties hold consistent
/// new shares of the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_new_party_cannot_split_the_verdict() {
    let (_, parties) = reshare(Corrupt7::LiesAboutDealer1, false, true).await;
    // The hole: honest judgments differ.
    assert_ne!(parties[0].judged, parties[2].judged);
    assert_eq!(parties[0].judged, parties[1].judged);
    let agreed: Vec<&AgreedVerdict> = parties
        .iter()
        .filter_map(|p| p.agreed.as_ref().ok())
        .collect();
    for a in &agreed {
        assert_eq!(a.dealers, agreed[0].dealers, "two honest verdicts");
    }
    let erased = parties.iter().filter(|p| p.new_key.is_some()).count();
    // With this lie and equivocation: parties 3 and 4 see a quorum for {1, 2} and echo it, so
    // does party 7; every honest party adopts {1, 2} (3 = t' + 1 echoes), none commits, no
    // party reports, and nobody erases.
    assert_eq!(agreed.len(), parties.len());
    assert!(agreed
        .iter()
        .all(|a| a.grade == Grade::Adopted && a.dealers == [1, 2]));
    assert_eq!(erased, 0);
    // Party 7 also sends garbage in the consistency check: with every new party's share
    // required, the check fails for every honest party (the resharing aborts, old shares
    // kept) instead of passing on n' − t' shares with party 7's missing.
    assert!(
        parties.iter().all(|p| !p.check_ok),
        "the check passed without party 7's share"
    );
    // Every old party kept its share.
    for p in &parties[..OLD_N] {
        assert!(p.kept_old);
    }
}

/// Hole 10: a host delays echoes to party 1 past the deadline. Party 1 adopts (it cannot
/// commit), the others commit; the chain completes on their digests, and party 1, holding the
/// same set, erases too. One verdict everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_does_not_split_the_verdict() {
    let (secret, parties) = reshare(Corrupt7::Honest, true, true).await;
    let a1 = parties[0].agreed.as_ref().unwrap();
    assert_eq!(a1.grade, Grade::Adopted);
    for p in &parties[1..] {
        let a = p.agreed.as_ref().unwrap();
        assert_eq!(a.grade, Grade::Committed);
        assert_eq!(a.dealers, a1.dealers);
    }
    assert!(parties.iter().all(|p| p.new_key.is_some() && !p.kept_old));
    assert!(holds_key(&secret, &parties));
}

/// The verdict digest the chain compares (`ReshareDone.verdict_digest`): its canonical
/// encoding, pinned byte by byte, independent of the order the dealers are listed in.
#[test]
fn verdict_digest_has_the_documented_encoding() {
    use kms_threshold::reshare_check::{decode_dealers, verdict_digest};
    use sha3::{Digest, Sha3_256};
    let id = RequestId::derive("reshare", b"epoch 2");
    let mut bytes = b"kms/reshare-verdict/v1".to_vec();
    bytes.extend_from_slice(&20u32.to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.extend_from_slice(&3u32.to_be_bytes());
    let want: [u8; 32] = Sha3_256::digest(&bytes).into();
    assert_eq!(verdict_digest(&id, &[1, 3]), want);
    assert_eq!(verdict_digest(&id, &[3, 1, 3]), want);
    assert_ne!(verdict_digest(&id, &[1, 2]), want);
    assert_ne!(
        verdict_digest(&RequestId::derive("reshare", b"epoch 3"), &[1, 3]),
        want
    );
    // The wire form round-trips; non-canonical forms are refused.
    assert_eq!(
        decode_dealers(&encode_dealers(&[3, 1]), 4),
        Some(vec![1, 3])
    );
    let mut unsorted = 2u32.to_be_bytes().to_vec();
    unsorted.extend_from_slice(&3u32.to_be_bytes());
    unsorted.extend_from_slice(&1u32.to_be_bytes());
    assert_eq!(decode_dealers(&unsorted, 4), None);
    assert_eq!(decode_dealers(&encode_dealers(&[1, 5]), 4), None); // no dealer 5
    assert_eq!(decode_dealers(&[0, 0, 0, 1, 0, 0], 4), None); // truncated
}

/// Hole 10 on the old flow (no agreement): parties 1 and 2 combine {2, 3}, parties 3..6 combine
/// {1, 2}; their new shares lie on no common polynomial. The consistency check catches it, so
/// nobody reports, the chain does not complete and every old share is kept (the old code
/// erased them and lost the key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consistency_check_catches_a_split_dealer_set() {
    let (_, parties) = reshare(Corrupt7::LiesAboutDealer1, false, false).await;
    assert_ne!(parties[0].judged, parties[2].judged);
    for p in &parties {
        assert!(!p.check_ok, "a split sharing checked consistent");
        assert!(p.new_key.is_none());
    }
    for p in &parties[..OLD_N] {
        assert!(p.kept_old);
    }
}

/// Round logic: a round opens as soon as 2t + 1 agreeing shares are in (a silent party no longer
/// costs the whole deadline), but waits when what arrived disagrees: n = 4, t = 1, party 4
/// silent, deadline 20 s: done in well under it; then party 4 sends a wrong share first and
/// party 3's share is held back by its host for 1 s: the round waits for it (no early opening
/// on own + 2 + 4's wrong share), corrects party 4, and names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_opens_on_2t_plus_1_agreeing_shares_and_waits_on_disagreement() {
    let w = world(4, 1);
    let net = InProcessNetwork::new(4);
    let s = w.session(b"early");
    let t0 = std::time::Instant::now();
    let outs = run_honest(&w, &net, &[1, 2, 3], &s, Duration::from_secs(20)).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    for o in outs {
        let o = o.unwrap();
        assert_eq!(o.plaintext.as_u128(), Some(u128::from(VALUE)));
        assert_eq!(o.absent, vec![4]);
    }
    let net = InProcessNetwork::new(4);
    let s = w.session(b"wait");
    net.set_filter(|from, to, _, _| {
        if from == 3 && to == 1 {
            Delivery::Delay(Duration::from_secs(1))
        } else {
            Delivery::Deliver
        }
    });
    net.party(4)
        .send(1, &s.id(), w.shifted(4, &s, 1))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let outs = run_honest(&w, &net, &[1, 2, 3], &s, Duration::from_secs(20)).await;
    assert!(t0.elapsed() >= Duration::from_secs(1));
    let o = outs[0].as_ref().unwrap();
    assert_eq!(o.plaintext.as_u128(), Some(u128::from(VALUE)));
    assert_eq!(o.cheaters, vec![4]);
}
