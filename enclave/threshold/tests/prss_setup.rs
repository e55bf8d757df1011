//! PRSS key setup without a dealer (issue 12): the parties agree each set's key among its
//! members over the party transport. Checked against the PRSS itself (masks from the agreed keys
//! open, by robust opening of every party's share, to the value the keys define; zero sharings
//! open to zero) and against an adversary: a member that sends different contributions to
//! different members, a member that lies in its check, a silent member, a host that drops one
//! message. Each makes exactly the sets involved fail, names the party, and yields no key.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_member_makes_its_sets_fail_and_is_named() {
    let (n, t) = (4, 1);
    let net = InProcessNetwork::new(n);
    // Party 3 sends party 1 other contributions than it sent party 2 (its host or its code).
    net.set_filter(|from, to, session, payload| {
        if from == 3 && to == 1 && session.starts_with(b"kms/prss-setup/v1/contributions/") {
            let mut other = payload.to_vec();
            other[0] ^= 1;
            return Delivery::Replace(other);
        }
        Delivery::Deliver
    });
    let out = run(&net, n, t, b"equivocation").await;
    // The flipped byte is party 3's contribution to {1,2,3}, the first set it shares with
    // party 1: party 1's key for it differs from parties 2 and 3's. All three members see the
    // disagreement and none accepts keys; each names the members whose check differs from its
    // own (party 1 cannot tell whether 2 or 3 misled it, and 2 and 3 see only that 1 differs).
    let failed_at = |p: usize| match &out[p - 1] {
        Err(PrssSetupError::Failed { failed, suspects }) => (failed.clone(), suspects.clone()),
        other => panic!("party {p} accepted keys: {other:?}"),
    };
    assert_eq!(failed_at(1), (vec![vec![1, 2, 3]], vec![2, 3]));
    assert_eq!(failed_at(2), (vec![vec![1, 2, 3]], vec![1]));
    assert_eq!(failed_at(3), (vec![vec![1, 2, 3]], vec![1]));
    // Party 4 is not in {1,2,3}: its sets were set up consistently.
    assert!(out[3].is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_check_a_silent_party_and_a_dropped_message_each_fail_the_sets_involved() {
    let (n, t) = (7, 2);
    // A member that lies in its check to party 5.
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, to, session, payload| {
        if from == 6 && to == 5 && session.starts_with(b"kms/prss-setup/v1/checks/") {
            let mut other = payload.to_vec();
            other[31] ^= 0x80;
            return Delivery::Replace(other);
        }
        Delivery::Deliver
    });
    let out = run(&net, n, t, b"lying-check").await;
    match &out[4] {
        Err(PrssSetupError::Failed { failed, suspects }) => {
            assert_eq!(suspects, &vec![6]);
            // Only the first set it shares with party 6 (where the flipped byte is).
            assert_eq!(failed, &vec![sets_with(n, t, &[5, 6])[0].clone()]);
        }
        other => panic!("party 5: {other:?}"),
    }
    for p in [1, 2, 3, 4, 6, 7] {
        assert!(out[p - 1].is_ok(), "party {p}: {:?}", out[p - 1]);
    }

    // A silent party: every set it belongs to fails at every other member, which names it.
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
        match &out[p - 1] {
            Err(PrssSetupError::Failed { failed, suspects }) => {
                assert_eq!(suspects, &vec![7], "party {p}");
                assert_eq!(failed, &sets_with(n, t, &[p, 7]), "party {p}");
            }
            other => panic!("party {p}: {other:?}"),
        }
    }

    // One dropped contribution (a hostile host): the receiver fails the shared sets and names
    // the sender; with the filter cleared, a fresh session succeeds everywhere.
    let net = InProcessNetwork::new(n);
    net.set_filter(|from, to, session, _| {
        if from == 2 && to == 4 && session.starts_with(b"kms/prss-setup/v1/contributions/") {
            Delivery::Drop
        } else {
            Delivery::Deliver
        }
    });
    let out = run(&net, n, t, b"dropped").await;
    match &out[3] {
        Err(PrssSetupError::Failed { failed, suspects }) => {
            assert_eq!(suspects, &vec![2]);
            assert_eq!(failed, &sets_with(n, t, &[2, 4]));
        }
        other => panic!("party 4: {other:?}"),
    }
    // The other members of those sets fail them too (party 4's check says it has no key), and
    // blame nobody: party 4 is the victim, not the cause.
    match &out[1] {
        Err(PrssSetupError::Failed { failed, suspects }) => {
            assert!(suspects.is_empty(), "{suspects:?}");
            assert_eq!(failed, &sets_with(n, t, &[2, 4]));
        }
        other => panic!("party 2: {other:?}"),
    }
    net.clear_filter();
    assert!(run(&net, n, t, b"retry").await.iter().all(Result::is_ok));

    // Parameters that allow no PRSS are refused.
    let net = InProcessNetwork::new(3);
    assert!(matches!(
        setup_prss(&net.party(1), 1, b"x", DEADLINE, &mut rand_core::OsRng).await,
        Err(PrssSetupError::Params { .. })
    ));
}
