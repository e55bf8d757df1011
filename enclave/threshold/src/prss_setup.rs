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
//!    k_A)` (which says nothing about `k_A` beyond equality), or, for a set it could not key, a
//!    complaint naming the member whose contribution it lacks. A member accepts `k_A` only if
//!    every other member's check equals its own.
//!
//! **Secrecy.** Every honest member's contribution is in `k_A`, chosen at random and sent only to
//! members, so `k_A` is uniform to anyone outside `A`; the `t` corrupt parties are outside at
//! least one set, which is what PRSS needs.
//!
//! **Agreement.** If the setup succeeds at an honest party, every member of every set sent it a
//! check equal to its own, so all honest members of a set hold the same key (a corrupt member
//! that sent different contributions to different members makes their keys differ, and then
//! their checks). This is agreement *per set*, not on the outcome: a corrupt member can make
//! the setup fail at some honest parties and succeed at others (a wrong check sent to one of
//! them). So a caller must use the keys only once **all n parties reported success** for the
//! session (on the KMS chain, as a resharing completes only on all n verdicts); a party whose
//! setup failed returns no key at all, not even of its agreed sets.
//!
//! The setup is *detecting*, not robust. A failure comes with **disputes**: pairs of parties at
//! least one of which (or its host) is faulty. This party is in a dispute with every party whose
//! message was missing or malformed or whose check differs from its own; a member that could not
//! key a set names, in its complaint, the member it is missing a contribution from, and that
//! pair is a dispute too (so a corrupt member cannot block a set anonymously: it must name
//! someone, and the pair includes itself). A single party is never blamed: when two members'
//! keys differ, neither can tell which of them an equivocator misled. What to do then (retry in
//! a new session, exclude the party in many disputes) is the caller's.

use kms_algebra::prss::{binomial, maximal_sets, PartySet, PrssKey, PrssKeys};
use kms_party_net::{gather, Transport, MAX_SESSION_BYTES};
use rand_core::CryptoRngCore;
use sha3::{Digest, Sha3_256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of one contribution.
const ITEM: usize = 32;
/// Bytes of one round-2 item: a tag, then a check value or the missing member's index.
const CHECK_ITEM: usize = 1 + ITEM;
/// Tag of a check value.
const TAG_CHECK: u8 = 0;
/// Tag of a complaint: this member could not key the set (the index of the member whose
/// contribution it lacks follows, 4 bytes big-endian).
const TAG_MISSING: u8 = 1;
/// Most PRSS sets a setup handles (`C(n, t)`; 13 parties with t = 4 have 715).
pub const MAX_SETS: u128 = 1 << 16;
/// Longest session ID (the transport's session limit, minus this protocol's prefix).
pub const MAX_SID_BYTES: usize = MAX_SESSION_BYTES - 64;

/// Why the setup produced no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrssSetupError {
    /// `n`, `t`, this party's index or the session ID do not allow a setup (`n > 3t`, index in
    /// `1..=n`, at most [`MAX_SETS`] sets, a session ID of at most [`MAX_SID_BYTES`]).
    #[error("PRSS setup for n = {n}, t = {t}, party {me}: need n > 3t, 1 ≤ party ≤ n, C(n, t) ≤ {MAX_SETS} and a session ID of at most {MAX_SID_BYTES} bytes")]
    Params {
        /// Parties.
        n: usize,
        /// Threshold.
        t: usize,
        /// This party.
        me: usize,
    },
    /// Some sets' members do not hold the same key (or could not be checked).
    #[error("PRSS setup failed for {} set(s); disputes: {disputes:?}", failed.len())]
    Failed {
        /// The sets of this party whose key was not agreed.
        failed: Vec<PartySet>,
        /// Pairs `(a, b)`, `a < b`, of parties at least one of which (or its host) is faulty.
        disputes: Vec<(usize, usize)>,
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

fn derive_key(
    sid: &[u8],
    set: &PartySet,
    contributions: &BTreeMap<usize, Zeroizing<[u8; ITEM]>>,
) -> PrssKey {
    let mut h = Sha3_256::new();
    h.update(b"kms/prss-setup/v1/key");
    h.update((sid.len() as u32).to_be_bytes());
    h.update(sid);
    h.update(set_bytes(set));
    for (m, r) in contributions {
        h.update((*m as u32).to_be_bytes());
        h.update(&r[..]);
    }
    let mut k: [u8; ITEM] = h.finalize().into();
    let key = PrssKey::from_bytes(k);
    k.zeroize();
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

/// Splits a message into the `count` items of `size` bytes it must hold exactly.
fn items(msg: &[u8], count: usize, size: usize) -> Option<std::slice::ChunksExact<'_, u8>> {
    (msg.len() == count.checked_mul(size)?).then(|| msg.chunks_exact(size))
}

fn dispute(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// Runs this party's side of the setup for `n` parties and threshold `t` in session `sid` (a
/// request ID: every run needs its own), each round waiting at most `deadline`. Returns the
/// keys of the sets this party belongs to, each agreed by all its members; use them only once
/// every party reported success (module docs).
pub async fn setup_prss(
    net: &dyn Transport,
    t: usize,
    sid: &[u8],
    deadline: Duration,
    rng: &mut impl CryptoRngCore,
) -> Result<PrssKeys, PrssSetupError> {
    let (n, me) = (net.n(), net.me());
    if me == 0
        || me > n
        || t.saturating_mul(3) >= n
        || binomial(n, t) > MAX_SETS
        || sid.len() > MAX_SID_BYTES
    {
        return Err(PrssSetupError::Params { n, t, me });
    }
    let sets: Vec<PartySet> = maximal_sets(n, t)
        .into_iter()
        .filter(|s| s.contains(&me))
        .collect();
    let mut disputes = BTreeSet::new();

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
        let mut msg = Vec::with_capacity(shared(&sets, me, j).count() * ITEM);
        for (set, r) in sets.iter().zip(&mine) {
            if set.contains(&j) {
                msg.extend_from_slice(r.as_ref());
            }
        }
        let s1 = &s1;
        async move {
            // The transport takes the buffer (its copies are the transport's to wipe).
            if let Err(e) = net.send(j, s1, msg).await {
                tracing::warn!(to = j, error = %e, "PRSS setup: contribution not sent");
            }
        }
    });
    futures::future::join_all(sends).await;
    let received: Vec<Zeroizing<Vec<u8>>> = gather(net, &s1, deadline)
        .await
        .into_iter()
        .map(|m| Zeroizing::new(m.unwrap_or_default()))
        .collect();
    // contributions[set index][member] = r
    let mut contributions: Vec<BTreeMap<usize, Zeroizing<[u8; ITEM]>>> = mine
        .into_iter()
        .map(|r| BTreeMap::from([(me, r)]))
        .collect();
    for (j, msg) in (1..=n).zip(&received) {
        if j == me {
            continue;
        }
        let Some(mut parsed) = items(msg, shared(&sets, me, j).count(), ITEM) else {
            disputes.insert(dispute(me, j));
            continue;
        };
        for (idx, set) in sets.iter().enumerate() {
            if set.contains(&j) {
                let r = parsed.next().and_then(|c| <[u8; ITEM]>::try_from(c).ok());
                if let (Some(r), Some(c)) = (r, contributions.get_mut(idx)) {
                    c.insert(j, Zeroizing::new(r));
                }
            }
        }
    }
    drop(received);

    // Round 2: keys of the sets whose every contribution arrived, their check values, and a
    // complaint naming the first missing member for each set that could not be keyed.
    let keys: Vec<Option<PrssKey>> = sets
        .iter()
        .zip(&contributions)
        .map(|(set, c)| (c.len() == set.len()).then(|| derive_key(sid, set, c)))
        .collect();
    let round2: Vec<[u8; CHECK_ITEM]> = sets
        .iter()
        .zip(&keys)
        .zip(&contributions)
        .map(|((set, k), c)| {
            let mut item = [0u8; CHECK_ITEM];
            let (tag, body) = item.split_at_mut(1);
            match k {
                Some(k) => {
                    tag.fill(TAG_CHECK);
                    body.copy_from_slice(&check_value(sid, set, k));
                }
                None => {
                    let missing = set
                        .iter()
                        .find(|m| !c.contains_key(m))
                        .copied()
                        .unwrap_or(0);
                    tag.fill(TAG_MISSING);
                    if let Some(b) = body.get_mut(..4) {
                        b.copy_from_slice(&(missing as u32).to_be_bytes());
                    }
                }
            }
            item
        })
        .collect();
    drop(contributions);
    let s2 = session(sid, b"checks");
    let sends = (1..=n).filter(|&j| j != me).map(|j| {
        let mut msg = Vec::new();
        for (set, item) in sets.iter().zip(&round2) {
            if set.contains(&j) {
                msg.extend_from_slice(item);
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
        let count = shared(&sets, me, j).count();
        let Some(mut theirs) = msg.as_deref().and_then(|m| items(m, count, CHECK_ITEM)) else {
            disputes.insert(dispute(me, j));
            for (idx, set) in sets.iter().enumerate() {
                if set.contains(&j) {
                    if let Some(a) = agreed.get_mut(idx) {
                        *a = false;
                    }
                }
            }
            continue;
        };
        for (idx, set) in sets.iter().enumerate() {
            if !set.contains(&j) {
                continue;
            }
            let item = theirs.next().unwrap_or_default();
            let (tag, body) = item.split_at(1.min(item.len()));
            let complaint = tag == [TAG_MISSING];
            if complaint {
                // j says it lacks member m's contribution: j or m (or a host) is faulty.
                let m = body
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(|b| u32::from_be_bytes(b) as usize);
                match m {
                    Some(m) if m != j && set.contains(&m) => {
                        disputes.insert(dispute(j, m));
                    }
                    _ => {
                        disputes.insert(dispute(me, j));
                    }
                }
            }
            // A set this party could not key has failed already (its dispute is recorded).
            let mine = round2
                .get(idx)
                .filter(|_| keys.get(idx).is_some_and(Option::is_some));
            let Some(mine) = mine else {
                continue;
            };
            if item == mine.as_slice() {
                continue;
            }
            if !complaint {
                disputes.insert(dispute(me, j));
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
            disputes: disputes.into_iter().collect(),
        });
    }
    Ok(sets
        .into_iter()
        .zip(keys)
        .filter_map(|(s, k)| k.map(|k| (s, k)))
        .collect())
}
