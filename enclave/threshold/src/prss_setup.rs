//! PRSS key setup without a dealer: each set's key is agreed by its members alone.
//!
//! PRSS needs, for every set `A` of `n − t` parties, a key `k_A` that exactly the members of `A`
//! hold ([`kms_algebra::prss`]). Here the members make it themselves, in two rounds over the
//! party transport (attested TLS between enclaves in production: the hosts relay ciphertext):
//!
//! 1. **Contributions.** Every party `i` samples, for every set `A ∋ i`, 32 random bytes
//!    `r_{A,i}`, and sends to each other party `j` only the contributions of the sets that
//!    contain both `i` and `j` (a fixed-length message in the canonical set order). A party
//!    outside `A` never receives anything about `k_A`.
//! 2. **Key and check.** Each member computes
//!    `k_A = SHA3-256("kms/prss-setup/v1/key" ‖ session ‖ A ‖ (m ‖ r_{A,m}) for m ∈ A)` and sends
//!    the other members of `A` the check value `SHA3-256("kms/prss-setup/v1/check" ‖ session ‖ A ‖
//!    k_A)` (which says nothing about `k_A` beyond equality). A member accepts `k_A` only if
//!    every other member's check equals its own.
//!
//! **Secrecy.** Every honest member's contribution is in `k_A`, chosen at random and sent only to
//! members, so `k_A` is uniform to anyone outside `A`; the `t` corrupt parties are outside at
//! least one set, which is what PRSS needs.
//!
//! **Agreement.** If the setup succeeds at an honest party, every member of every set sent it a
//! check equal to its own, so all honest members of a set hold the same key (a corrupt member
//! that sent different contributions to different members makes their keys differ, and then
//! their checks). The setup is *detecting*, not robust: a corrupt or silent member makes the
//! sets it belongs to fail, and the outcome names the parties whose contribution or check was
//! missing, malformed or different from this party's. Blame is a suspicion, not a proof: when two
//! members' keys differ neither can tell which of them the equivocator misled, so each names the
//! other (and the equivocator only where it is the one that disagrees). Deciding what to do then
//! (retry in a new session, exclude an operator) is the caller's; no key is accepted from a
//! failed set.

use kms_algebra::prss::{maximal_sets, PartySet, PrssKey, PrssKeys};
use kms_party_net::{gather, Transport};
use rand_core::CryptoRngCore;
use sha3::{Digest, Sha3_256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use zeroize::Zeroizing;

/// Bytes of one contribution and of one check value.
const ITEM: usize = 32;

/// The check a member sends for a set it could not key (a contribution never reached it).
const NO_KEY: [u8; ITEM] = [0; ITEM];

/// Why the setup produced no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrssSetupError {
    /// `n`, `t` or this party's index do not allow a PRSS (`n > 3t`, index in `1..=n`).
    #[error("PRSS setup for n = {n}, t = {t}, party {me}: need n > 3t and 1 ≤ party ≤ n")]
    Params {
        /// Parties.
        n: usize,
        /// Threshold.
        t: usize,
        /// This party.
        me: usize,
    },
    /// Some sets' members do not hold the same key (or could not be checked): the sets, and
    /// the parties whose message was missing, malformed or disagreed.
    #[error("PRSS setup failed for {} set(s); parties at fault or unreachable: {suspects:?}", failed.len())]
    Failed {
        /// The sets whose key was not agreed.
        failed: Vec<PartySet>,
        /// Parties whose contribution or check was missing, malformed, or not equal to this
        /// party's.
        suspects: Vec<usize>,
    },
}

/// The sets that contain both `a` and `b`, in the canonical order.
fn shared(sets: &[PartySet], a: usize, b: usize) -> impl Iterator<Item = &PartySet> {
    sets.iter()
        .filter(move |s| s.contains(&a) && s.contains(&b))
}

fn session(base: &[u8], step: &[u8]) -> Vec<u8> {
    let mut s = b"kms/prss-setup/v1/".to_vec();
    s.extend_from_slice(step);
    s.push(b'/');
    s.extend_from_slice(base);
    s
}

fn set_bytes(set: &PartySet) -> Vec<u8> {
    let mut out = (set.len() as u32).to_be_bytes().to_vec();
    for m in set {
        out.extend_from_slice(&(*m as u32).to_be_bytes());
    }
    out
}

fn derive_key(sid: &[u8], set: &PartySet, contributions: &BTreeMap<usize, [u8; ITEM]>) -> PrssKey {
    let mut h = Sha3_256::new();
    h.update(b"kms/prss-setup/v1/key");
    h.update((sid.len() as u32).to_be_bytes());
    h.update(sid);
    h.update(set_bytes(set));
    for (m, r) in contributions {
        h.update((*m as u32).to_be_bytes());
        h.update(r);
    }
    let mut k: [u8; ITEM] = h.finalize().into();
    let key = PrssKey::from_bytes(k);
    zeroize::Zeroize::zeroize(&mut k);
    key
}

fn check_value(sid: &[u8], set: &PartySet, key: &PrssKey) -> [u8; ITEM] {
    let mut h = Sha3_256::new();
    h.update(b"kms/prss-setup/v1/check");
    h.update((sid.len() as u32).to_be_bytes());
    h.update(sid);
    h.update(set_bytes(set));
    h.update(key.sealing_bytes());
    h.finalize().into()
}

/// Splits a message into the `count` fixed-size items it must hold exactly.
fn items(msg: &[u8], count: usize) -> Option<Vec<[u8; ITEM]>> {
    if msg.len() != count.checked_mul(ITEM)? {
        return None;
    }
    msg.chunks_exact(ITEM)
        .map(|c| <[u8; ITEM]>::try_from(c).ok())
        .collect()
}

/// Runs this party's side of the setup for `n` parties and threshold `t` in session `sid` (a
/// request ID: every run needs its own), each round waiting at most `deadline`. Returns the
/// keys of the sets this party belongs to, each agreed by all its members.
pub async fn setup_prss(
    net: &dyn Transport,
    t: usize,
    sid: &[u8],
    deadline: Duration,
    rng: &mut impl CryptoRngCore,
) -> Result<PrssKeys, PrssSetupError> {
    let (n, me) = (net.n(), net.me());
    if me == 0 || me > n || t.saturating_mul(3) >= n {
        return Err(PrssSetupError::Params { n, t, me });
    }
    let sets: Vec<PartySet> = maximal_sets(n, t)
        .into_iter()
        .filter(|s| s.contains(&me))
        .collect();
    let mut suspects = BTreeSet::new();

    // Round 1: my contribution to each of my sets, to each fellow member.
    let mine: Vec<Zeroizing<[u8; ITEM]>> = sets
        .iter()
        .map(|_| {
            let mut r = Zeroizing::new([0u8; ITEM]);
            rng.fill_bytes(r.as_mut());
            r
        })
        .collect();
    let s1 = session(sid, b"contributions");
    let sends = (1..=n).filter(|&j| j != me).map(|j| {
        let mut msg = Zeroizing::new(Vec::new());
        for (set, r) in sets.iter().zip(&mine) {
            if set.contains(&j) {
                msg.extend_from_slice(r.as_ref());
            }
        }
        let s1 = &s1;
        async move {
            if let Err(e) = net.send(j, s1, msg.to_vec()).await {
                tracing::warn!(to = j, error = %e, "PRSS setup: contribution not sent");
            }
        }
    });
    futures::future::join_all(sends).await;
    let received = gather(net, &s1, deadline).await;
    // contributions[set index][member] = r
    let mut contributions: Vec<BTreeMap<usize, [u8; ITEM]>> = sets
        .iter()
        .zip(&mine)
        .map(|(_, r)| BTreeMap::from([(me, **r)]))
        .collect();
    for (j, msg) in (1..=n).zip(received) {
        if j == me {
            continue;
        }
        let expected = shared(&sets, me, j).count();
        let parsed = msg.as_deref().and_then(|m| items(m, expected));
        let Some(parsed) = parsed else {
            suspects.insert(j);
            continue;
        };
        let mut parsed = parsed.into_iter();
        for (idx, set) in sets.iter().enumerate() {
            if set.contains(&j) {
                if let (Some(r), Some(c)) = (parsed.next(), contributions.get_mut(idx)) {
                    c.insert(j, r);
                }
            }
        }
    }

    // Round 2: keys of the sets whose every contribution arrived, and their check values.
    let keys: Vec<Option<PrssKey>> = sets
        .iter()
        .zip(&contributions)
        .map(|(set, c)| (c.len() == set.len()).then(|| derive_key(sid, set, c)))
        .collect();
    for c in &mut contributions {
        for r in c.values_mut() {
            zeroize::Zeroize::zeroize(r);
        }
    }
    let checks: Vec<Option<[u8; ITEM]>> = sets
        .iter()
        .zip(&keys)
        .map(|(set, k)| k.as_ref().map(|k| check_value(sid, set, k)))
        .collect();
    let s2 = session(sid, b"checks");
    let sends = (1..=n).filter(|&j| j != me).map(|j| {
        let mut msg = Vec::new();
        for (set, c) in sets.iter().zip(&checks) {
            if set.contains(&j) {
                msg.extend_from_slice(&c.unwrap_or(NO_KEY));
            }
        }
        let s2 = &s2;
        async move {
            if let Err(e) = net.send(j, s2, msg).await {
                tracing::warn!(to = j, error = %e, "PRSS setup: check not sent");
            }
        }
    });
    futures::future::join_all(sends).await;
    let received = gather(net, &s2, deadline).await;
    let mut agreed: Vec<bool> = keys.iter().map(Option::is_some).collect();
    for (j, msg) in (1..=n).zip(received) {
        if j == me {
            continue;
        }
        let expected = shared(&sets, me, j).count();
        let Some(theirs) = msg.as_deref().and_then(|m| items(m, expected)) else {
            suspects.insert(j);
            for (idx, set) in sets.iter().enumerate() {
                if set.contains(&j) {
                    if let Some(a) = agreed.get_mut(idx) {
                        *a = false;
                    }
                }
            }
            continue;
        };
        let mut theirs = theirs.into_iter();
        for (idx, set) in sets.iter().enumerate() {
            if !set.contains(&j) {
                continue;
            }
            let theirs = theirs.next();
            // A set this party could not key has failed already (its missing contributor is
            // named); a member that could not key it says so with the all-zero check, which
            // fails the set without naming that member (it may be the victim).
            let Some(Some(mine)) = checks.get(idx) else {
                continue;
            };
            if theirs.as_ref() == Some(mine) {
                continue;
            }
            if theirs != Some(NO_KEY) {
                suspects.insert(j);
            }
            if let Some(a) = agreed.get_mut(idx) {
                *a = false;
            }
        }
    }
    let failed: Vec<PartySet> = sets
        .iter()
        .zip(&agreed)
        .filter(|(_, ok)| !**ok)
        .map(|(s, _)| s.clone())
        .collect();
    if !failed.is_empty() {
        return Err(PrssSetupError::Failed {
            failed,
            suspects: suspects.into_iter().collect(),
        });
    }
    Ok(sets
        .into_iter()
        .zip(keys)
        .filter_map(|(s, k)| k.map(|k| (s, k)))
        .collect())
}
