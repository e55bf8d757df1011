//! The networked proactive refresh (`kms_threshold::refresh`), as the party runtime runs it: four
//! parties over the in-process transport. The truth each test checks against is the secret the
//! test shared itself, reconstructed from the new shares by robust opening.

mod common;

use kms_algebra::prss::{deal_keys, Prss};
use kms_algebra::shamir::robust_open;
use kms_party_net::InProcessNetwork;
use kms_threshold::reshare_agree::Grade;
use kms_threshold::{refresh, Refreshed, Share, SnsKeyShare, ThresholdError};
use kms_types::RequestId;
use rand_core::OsRng;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 4;
const T: usize = 1;
const COEFS: usize = 24;

/// A random binary key shared among `N` parties, and their PRSS states.
fn world() -> (Vec<u128>, Vec<SnsKeyShare>, Vec<Arc<Prss<u128, 4>>>) {
    let (secret, shares) =
        common::shared_binary_key(RequestId::derive("refresh key", b""), N, T, COEFS);
    let keys = deal_keys(N, T, &mut OsRng);
    let prss = (1..=N)
        .map(|j| Arc::new(Prss::new(j, N, T, &keys).unwrap()))
        .collect();
    (secret, shares, prss)
}

/// Runs the refresh on `parties` (the others stay silent).
async fn run(
    shares: Vec<SnsKeyShare>,
    prss: &[Arc<Prss<u128, 4>>],
    parties: &[usize],
) -> Vec<Result<Refreshed, ThresholdError>> {
    let net = InProcessNetwork::new(N);
    let reshare_id = RequestId::derive("reshare", b"epoch 1");
    let mut tasks = Vec::new();
    for (i, old) in shares.into_iter().enumerate() {
        if !parties.contains(&(i + 1)) {
            continue;
        }
        let (t, prss) = (net.party(i + 1), prss[i].clone());
        tasks.push(tokio::spawn(async move {
            refresh(&t, &prss, &reshare_id, &old, Duration::from_millis(500)).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The secret the new shares hold, coefficient by coefficient (all four must agree).
fn opened(new: &[&SnsKeyShare]) -> Vec<u128> {
    (0..COEFS)
        .map(|c| {
            let col: Vec<Option<Share>> = new.iter().map(|k| Some(k.key[c])).collect();
            let o = robust_open(&col, T).unwrap();
            assert_eq!(o.agreeing, N, "every new share on the one polynomial");
            o.value.coefs[0]
        })
        .collect()
}

#[tokio::test]
async fn a_refresh_keeps_the_key_and_replaces_every_share() {
    let (secret, old, prss) = world();
    let old_bytes: Vec<Vec<Share>> = old.iter().map(|k| k.key.clone()).collect();
    let out = run(old, &prss, &[1, 2, 3, 4]).await;
    let done: Vec<&Refreshed> = out.iter().map(|r| r.as_ref().unwrap()).collect();
    let digest = done[0].agreed.digest;
    for (i, r) in done.iter().enumerate() {
        assert_eq!(r.agreed.digest, digest, "one verdict everywhere");
        assert_eq!(r.agreed.grade, Grade::Committed);
        assert_eq!(r.share.party, i + 1);
        assert!(r.excluded.is_empty());
        assert_ne!(
            r.share.key,
            old_bytes[i],
            "party {} still holds its old share",
            i + 1
        );
    }
    let new: Vec<&SnsKeyShare> = done.iter().map(|r| &r.share).collect();
    assert_eq!(opened(&new), secret);
}

#[tokio::test]
async fn a_dealer_that_reshares_another_value_is_excluded_and_the_key_survives() {
    let (secret, mut old, prss) = world();
    // Party 1 deals a sharing of another key: every sub-share it sends is consistent with a
    // polynomial, but not with the old sharing. (Party 1: the first t + 1 dealers kept are
    // combined, so an undetected cheat would be used.)
    old[0].key[5] = old[0].key[5].add(&Share::one());
    let out = run(old, &prss, &[1, 2, 3, 4]).await;
    let done: Vec<&Refreshed> = out.iter().map(|r| r.as_ref().unwrap()).collect();
    for r in &done {
        assert_eq!(r.agreed.dealers, vec![2, 3], "{:?}", r.agreed);
        assert_eq!(r.excluded, vec![1]);
    }
    let new: Vec<&SnsKeyShare> = done.iter().map(|r| &r.share).collect();
    assert_eq!(opened(&new), secret);
}

/// A resharing handed over again runs with other challenges and masks and reports another
/// digest: a dealer that learnt the first run's challenges cannot use them, and the chain
/// never completes with shares of two runs.
#[tokio::test]
async fn each_run_of_one_resharing_is_bound_to_its_own_run_id() {
    let (secret, old, prss) = world();
    let copy = |v: &[SnsKeyShare]| -> Vec<SnsKeyShare> {
        v.iter()
            .map(|k| SnsKeyShare::from_sealing_bytes(&k.to_sealing_bytes()).unwrap())
            .collect()
    };
    let first = run(copy(&old), &prss, &[1, 2, 3, 4]).await;
    let second = run(old, &prss, &[1, 2, 3, 4]).await;
    let (a, b) = (first[0].as_ref().unwrap(), second[0].as_ref().unwrap());
    assert_eq!(a.agreed.dealers, b.agreed.dealers);
    assert_ne!(a.run, b.run);
    assert_ne!(a.agreed.digest, b.agreed.digest);
    for (x, y) in first.iter().zip(&second) {
        let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
        assert_eq!(x.run, a.run, "one run ID per run everywhere");
        assert_eq!(y.agreed.digest, b.agreed.digest);
    }
    for out in [&first, &second] {
        let new: Vec<&SnsKeyShare> = out.iter().map(|r| &r.as_ref().unwrap().share).collect();
        assert_eq!(opened(&new), secret);
    }
}

#[tokio::test]
async fn a_silent_party_makes_every_honest_party_abort() {
    let (_, old, prss) = world();
    let out = run(old, &prss, &[1, 2, 3]).await;
    for r in out {
        match r {
            // At once, in the run round (not after waiting out every round).
            Err(ThresholdError::ReshareAborted(why)) => {
                assert!(why.contains("silent in the run round"), "{why}");
                assert!(why.contains("[4]"), "{why}");
            }
            other => panic!("expected an abort, got {other:?}"),
        }
    }
}
