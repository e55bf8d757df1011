//! PRSS key setup without a dealer (issue 12): the parties agree each set's key among its
//! members over the party transport. Checked against the PRSS itself (masks from the agreed keys
//! open, by robust opening of every party's share, to the value the keys define; zero sharings
//! open to zero), by what travels (a party receives only the contributions of the sets it is in),
//! and against an adversary: a member that sends different contributions to different members,
//! lies in its check, stays silent, or blocks its sets with false complaints; a host that drops
//! or truncates a message. Each makes exactly the sets involved fail, with disputes that pair
//! the honest reporter with the faulty party, and yields no key.

use kms_algebra::prss::{mask_value, maximal_sets, Prss, PrssKeys};
use kms_algebra::shamir::robust_open;
use kms_algebra::GaloisRing;
use kms_party_net::{Delivery, InProcessNetwork};
use kms_threshold::prss_setup::{setup_prss, PrssSetupError};
use std::time::Duration;

type GR128 = GaloisRing<u128, 4>;

const DEADLINE: Duration = Duration::from_secs(2);

/// Runs the setup at every party of `net` in session `sid`; party `p`'s result at `p − 1`.
async fn run(
    net: &InProcessNetwork,
    n: usize,
    t: usize,
    sid: &[u8],
) -> Vec<Result<PrssKeys, PrssSetupError>> {
    let runs = (1..=n).map(|p| {
        let party = net.party(p);
        let sid = sid.to_vec();
        async move { setup_prss(&party, t, &sid, DEADLINE, &mut rand_core::OsRng).await }
    });
    futures::future::join_all(runs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_agree_on_every_set_key_and_the_prss_from_them_works() {
    for (n, t) in [(4usize, 1usize), (7, 2)] {
        let net = InProcessNetwork::new(n);
        let keys: Vec<PrssKeys> = run(&net, n, t, b"setup-1")
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Every set's members hold one key; a party outside a set holds nothing for it.
        let mut all = PrssKeys::new();
        for set in maximal_sets(n, t) {
            let held: Vec<_> = (1..=n)
                .filter_map(|p| keys[p - 1].get(&set).map(|k| (p, k)))
                .collect();
            assert_eq!(
                held.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
                set,
                "exactly the members of {set:?} hold its key"
            );
            assert!(held.windows(2).all(|w| w[0].1 == w[1].1));
            all.insert(set, held[0].1.clone());
        }
        // Distinct keys per set.
        let distinct: std::collections::BTreeSet<[u8; 32]> =
            all.values().map(|k| *k.sealing_bytes()).collect();
        assert_eq!(distinct.len(), all.len());

        // The PRSS built from each party's agreed keys: every party's mask share opens, with
        // no cheater, to the value all the keys define; zero sharings open to zero.
        let parties: Vec<Prss<u128, 4>> = (1..=n)
            .map(|p| Prss::new(p, n, t, &keys[p - 1]).unwrap())
            .collect();
        for ctr in 0..5u64 {
            let shares: Vec<Option<GR128>> = parties
                .iter()
                .map(|p| Some(p.mask(b"use", ctr, 64)))
                .collect();
            let opened = robust_open(&shares, t).unwrap();
            assert!(opened.cheaters.is_empty());
            let want: u128 = mask_value(&all, b"use", ctr, 64);
            assert_eq!(opened.value, GR128::from_scalar(want));
            let zeros: Vec<(usize, GR128)> = parties
                .iter()
                .enumerate()
                .map(|(i, p)| (i + 1, p.zero_share(b"zero", ctr)))
                .collect();
            let at0 = kms_algebra::shamir::interpolate_at(&zeros, &GR128::ZERO).unwrap();
            assert_eq!(at0, GR128::ZERO);
        }

        // Another session gives other keys.
        let again: Vec<PrssKeys> = run(&net, n, t, b"setup-2")
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for (set, k) in &all {
            assert_ne!(again[set[0] - 1].get(set).unwrap(), k);
        }
    }
}

/// The sets of `n`, `t` containing all of `members`.
fn sets_with(n: usize, t: usize, members: &[usize]) -> Vec<Vec<usize>> {
    maximal_sets(n, t)
        .into_iter()
        .filter(|s| members.iter().all(|m| s.contains(m)))
        .collect()
}

/// Party `p`'s failure: its failed sets and disputes.
fn failure(
    out: &[Result<PrssKeys, PrssSetupError>],
    p: usize,
) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
    match &out[p - 1] {
        Err(PrssSetupError::Failed { failed, disputes }) => (failed.clone(), disputes.clone()),
        other => panic!("party {p} did not fail: {other:?}"),
    }
}

const ROUND1: &[u8] = b"kms/prss-setup/v1/contributions/";
const ROUND2: &[u8] = b"kms/prss-setup/v1/checks/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_receives_only_the_contributions_of_the_sets_it_is_in() {
    let (n, t) = (7, 2);
    let net = InProcessNetwork::new(n);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    net.set_filter(move |from, to, session, payload| {
        if session.starts_with(ROUND1) {
            log.lock().unwrap().push((from, to, payload.len()));
        }
        Delivery::Deliver
    });
    assert!(run(&net, n, t, b"sizes").await.iter().all(Result::is_ok));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n * (n - 1));
    for (from, to, len) in seen.iter() {
        // 32 bytes per set containing both: nothing of a set the receiver is not in.
        assert_eq!(*len, 32 * sets_with(n, t, &[*from, *to]).len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_member_makes_its_set_fail_at_every_member() {
    let (n, t) = (4, 1);
    let net = InProcessNetwork::new(n);
    // Party 3 sends party 1 another contribution to {1,2,3} (the first set they share) than it
    // sent party 2.
    net.set_filter(|from, to, session, payload| {
        if from == 3 && to == 1 && session.starts_with(ROUND1) {
            let mut other = payload.to_vec();
            other[0] ^= 1;
            return Delivery::Replace(other);
        }
        Delivery::Deliver
    });
    let out = run(&net, n, t, b"equivocation").await;
    // Party 1's key for {1,2,3} differs from parties 2 and 3's: all three fail that set and
    // accept no keys; each is in dispute with the members whose check differs from its own
    // (nobody can tell from its own view whether 2 or 3 misled party 1).
    assert_eq!(
        failure(&out, 1),
        (vec![vec![1, 2, 3]], vec![(1, 2), (1, 3)])
    );
    assert_eq!(failure(&out, 2), (vec![vec![1, 2, 3]], vec![(1, 2)]));
    assert_eq!(failure(&out, 3), (vec![vec![1, 2, 3]], vec![(1, 3)]));
    // Party 4 is not in {1,2,3}: its own sets were set up consistently (the caller uses keys
    // only once all n parties succeeded, which they did not).
    assert!(out[3].is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_check_a_silent_party_a_dropped_message_and_a_false_complaint_fail_their_sets() {
    let (n, t) = (7, 2);
    // A member that lies in its check to party 5 (byte 31 is in the first item's check value).
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, to, session, payload| {
        if from == 6 && to == 5 && session.starts_with(ROUND2) {
            let mut other = payload.to_vec();
            other[31] ^= 0x80;
            return Delivery::Replace(other);
        }
        Delivery::Deliver
    });
    let out = run(&net, n, t, b"lying-check").await;
    assert_eq!(
        failure(&out, 5),
        (vec![sets_with(n, t, &[5, 6])[0].clone()], vec![(5, 6)])
    );
    for p in [1, 2, 3, 4, 6, 7] {
        assert!(out[p - 1].is_ok(), "party {p}: {:?}", out[p - 1]);
    }

    // A silent party: every set it is in fails at every other member, and every dispute
    // names it (the others' complaints name it as the member they lack).
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, _, _, _| {
        if from == 7 {
            Delivery::Drop
        } else {
            Delivery::Deliver
        }
    });
    let out = run(&net, n, t, b"silent").await;
    for p in 1..=6 {
        let (failed, disputes) = failure(&out, p);
        assert_eq!(failed, sets_with(n, t, &[p, 7]), "party {p}");
        assert!(disputes.contains(&(p, 7)), "party {p}: {disputes:?}");
        assert!(disputes.iter().all(|d| d.1 == 7), "party {p}: {disputes:?}");
    }

    // One dropped contribution (a hostile host): the receiver fails the shared sets and
    // disputes the sender; the sender, told by the receiver's complaint, fails them too and
    // records the same dispute. A fresh session without the fault succeeds everywhere.
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, to, session, _| {
        if from == 2 && to == 4 && session.starts_with(ROUND1) {
            Delivery::Drop
        } else {
            Delivery::Deliver
        }
    });
    let out = run(&net, n, t, b"dropped").await;
    assert_eq!(failure(&out, 4), (sets_with(n, t, &[2, 4]), vec![(2, 4)]));
    assert_eq!(failure(&out, 2), (sets_with(n, t, &[2, 4]), vec![(2, 4)]));
    net.clear_filter();
    assert!(run(&net, n, t, b"retry").await.iter().all(Result::is_ok));

    // A corrupt member that blocks its sets with complaints must name someone: every dispute
    // its complaints cause includes it.
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, _, session, payload| {
        if from == 3 && session.starts_with(ROUND2) {
            // Every item a complaint naming party 1.
            let mut other = payload.to_vec();
            for item in other.chunks_mut(33) {
                item.fill(0);
                item[0] = 1;
                item[4] = 1;
            }
            return Delivery::Replace(other);
        }
        Delivery::Deliver
    });
    let out = run(&net, n, t, b"false-complaint").await;
    let (failed, disputes) = failure(&out, 2);
    assert_eq!(failed, sets_with(n, t, &[2, 3]));
    // (1, 3) from the complaints naming party 1; (2, 3) where party 1 is not even in the set.
    assert_eq!(disputes, vec![(1, 3), (2, 3)]);

    // A malformed (truncated) contribution is a dispute with its sender.
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, to, session, payload| {
        if from == 2 && to == 1 && session.starts_with(ROUND1) {
            return Delivery::Replace(payload[..payload.len() - 1].to_vec());
        }
        Delivery::Deliver
    });
    let out = run(&net, n, t, b"truncated").await;
    assert_eq!(failure(&out, 1), (sets_with(n, t, &[1, 2]), vec![(1, 2)]));

    // Parameters that allow no PRSS, and a session ID the transport could not carry, are
    // refused.
    let net = InProcessNetwork::new(3);
    assert!(matches!(
        setup_prss(&net.party(1), 1, b"x", DEADLINE, &mut rand_core::OsRng).await,
        Err(PrssSetupError::Params { .. })
    ));
    let net = InProcessNetwork::new(4);
    assert!(matches!(
        setup_prss(&net.party(1), 1, &[7; 300], DEADLINE, &mut rand_core::OsRng).await,
        Err(PrssSetupError::Params { .. })
    ));
}
