//! One party's whole part in a proactive refresh of its key share over the party network: the
//! same `n` parties and threshold before and after, the same secret key, shares on a fresh
//! polynomial. This is what the party runtime runs when the ASC asks for a resharing.
//!
//! Rounds (every message bound to the resharing's session, see [`refresh_session`], and to the
//! run):
//!
//! 0. **Run** (`/run`): every party broadcasts 32 fresh random bytes; the run ID is the hash of
//!    all of them ([`run_id`]), and every later session, PRSS value and the reported verdict
//!    digest ([`run_verdict_digest`]) are bound to it. A resharing can be handed over again (a
//!    restarted enclave, a host rewinding); without the run ID a second run would reuse the
//!    first run's challenge seed and masks, and a corrupt dealer that learnt the challenges in
//!    the first run could deal another key whose checks all pass. Honest parties that saw
//!    different run bytes derive different sessions and abort (the openings fail), never mix
//!    runs; and two runs of one resharing report different digests, so the chain never
//!    completes with shares of two runs.
//! 1. **Deal** (`/deal`, point to point over the attested channels): the party reshares each
//!    coefficient of its share ([`crate::reshare_out`]) and sends party `j` its sub-shares.
//! 2. **Seed** (`/seed`): a PRSS random element is opened robustly; the dealing is fixed before
//!    it exists.
//! 3. **Check** (`/check`): every party broadcasts its masked check shares of every dealer
//!    ([`crate::reshare_check::check_shares`]) and judges the dealers from all of them
//!    ([`crate::reshare_check::judge`]).
//! 4. **Agree** (`/verdict`, `/echo`): the graded agreement on the dealer set
//!    ([`crate::reshare_agree::agree_verdict`]).
//! 5. **Combine and check** (`/consistency`): the agreed dealers' sub-shares are combined
//!    ([`crate::reshare_in`]) and the new sharing is checked complete and consistent across all
//!    `n` parties ([`crate::reshare_agree::check_new_sharing`]).
//!
//! A party silent in the run round makes the refresh abort at once (the final check needs all
//! `n` parties), so a party that is down costs one round deadline, not six.
//!
//! The result is a new share that the party must not use, and must not let replace its old
//! share, until the chain completed the resharing with this party's verdict digest (all `n`
//! parties reported the same one): [`crate::reshare_agree::commit_reshare`]'s rule. Every
//! round waits at most `deadline`; a silent or cheating party makes the refresh abort (old
//! shares kept), never yields a share of another key.

use crate::reshare_agree::{agree_verdict, check_new_sharing, AgreedVerdict, ConsistencyCheck};
use crate::reshare_check::{check_shares, judge, seed_share, CheckShares, RESHARE_CHALLENGES};
use crate::wire::{decode_partials, encode_partials};
use crate::{reshare_in, reshare_out, Share, SnsKeyShare, SubShares, ThresholdError};
use kms_algebra::prss::Prss;
use kms_algebra::shamir::robust_open;
use kms_party_net::{broadcast, gather, Transport};
use kms_types::RequestId;
use sha3::Digest;
use std::time::Duration;
use zeroize::Zeroize;

/// The run ID of a refresh from the run bytes each party broadcast (`None` where a party sent
/// nothing usable): `SHA3-256("kms/refresh-run/v1" ‖ (1 ‖ bytes | 0) for party 1..=n)`.
pub fn run_id(contributions: &[Option<[u8; 32]>]) -> [u8; 32] {
    let mut h = sha3::Sha3_256::new();
    h.update(b"kms/refresh-run/v1");
    for c in contributions {
        match c {
            Some(b) => {
                h.update([1u8]);
                h.update(b);
            }
            None => h.update([0u8]),
        }
    }
    h.finalize().into()
}

/// The verdict digest a party reports with `ReshareDone` after a refresh: the agreed dealer
/// set bound to the resharing and to the run,
/// `SHA3-256("kms/refresh-verdict/v1" ‖ u32 len(reshare_id) ‖ reshare_id ‖ run ‖
/// encode_dealers(dealers))` (big-endian `u32`; [`crate::reshare_check::encode_dealers`]).
pub fn run_verdict_digest(reshare_id: &RequestId, run: &[u8; 32], dealers: &[usize]) -> [u8; 32] {
    let mut h = sha3::Sha3_256::new();
    h.update(b"kms/refresh-verdict/v1");
    let id = reshare_id.as_bytes();
    h.update((id.len() as u32).to_be_bytes());
    h.update(id);
    h.update(run);
    h.update(crate::reshare_check::encode_dealers(dealers));
    h.finalize().into()
}

/// What a party's refresh produced: its new share (not yet in use) and what it saw.
pub struct Refreshed {
    /// The new share: a secret, to be sealed and adopted only after the chain completed the
    /// resharing with [`AgreedVerdict::digest`].
    pub share: SnsKeyShare,
    /// The agreed dealer set, with its run-bound digest ([`run_verdict_digest`]: what goes on
    /// chain with `ReshareDone`).
    pub agreed: AgreedVerdict,
    /// The run ID.
    pub run: [u8; 32],
    /// The consistency check of the new sharing (passed: every share present and agreeing).
    pub check: ConsistencyCheck,
    /// Dealers this party's own judgment excluded.
    pub excluded: Vec<usize>,
}

impl std::fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshed")
            .field("agreed", &self.agreed)
            .field("run", &self.run)
            .field("check", &self.check)
            .field("excluded", &self.excluded)
            .finish_non_exhaustive()
    }
}

/// The session prefix of resharing `reshare_id` of key `key_id`:
/// `"kms/refresh/v1/" ‖ reshare ID (20 bytes) ‖ key ID (20 bytes)`.
pub fn refresh_session(reshare_id: &RequestId, key_id: &RequestId) -> Vec<u8> {
    let mut s = b"kms/refresh/v1/".to_vec();
    s.extend_from_slice(reshare_id.as_bytes());
    s.extend_from_slice(key_id.as_bytes());
    s
}

fn step(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut s = base.to_vec();
    s.extend_from_slice(name);
    s
}

/// Check shares on the wire: for each challenge, for each dealer, a presence byte (0 or 1) and,
/// if present, the 64-byte element.
fn encode_checks(c: &CheckShares<u128>) -> Vec<u8> {
    let mut out = Vec::new();
    for row in c {
        for v in row {
            match v {
                None => out.push(0),
                Some(s) => {
                    out.push(1);
                    out.extend_from_slice(&encode_partials(std::slice::from_ref(s)));
                }
            }
        }
    }
    out
}

/// Reads [`encode_checks`] for `dealers` dealers; `None` unless exactly that shape.
fn decode_checks(mut b: &[u8], dealers: usize) -> Option<CheckShares<u128>> {
    let mut out = Vec::with_capacity(RESHARE_CHALLENGES);
    for _ in 0..RESHARE_CHALLENGES {
        let mut row = Vec::with_capacity(dealers);
        for _ in 0..dealers {
            let (flag, rest) = b.split_first()?;
            match flag {
                0 => {
                    row.push(None);
                    b = rest;
                }
                1 => {
                    let (elem, rest) = rest.split_at_checked(64)?;
                    row.push(Some(*decode_partials(elem, 1)?.first()?));
                    b = rest;
                }
                _ => return None,
            }
        }
        out.push(row);
    }
    b.is_empty().then_some(out)
}

/// Runs this party's part in resharing `reshare_id` of its share `old` among the same parties
/// (module docs). `prss` is the party's PRSS state for the set; `deadline` bounds each round.
pub async fn refresh(
    net: &dyn Transport,
    prss: &Prss<u128, 4>,
    reshare_id: &RequestId,
    old: &SnsKeyShare,
    deadline: Duration,
) -> Result<Refreshed, ThresholdError> {
    let (n, me, t) = (net.n(), net.me(), old.t);
    if old.n != n || old.party != me {
        return Err(ThresholdError::Params(format!(
            "share of party {} of {} on a network of party {me} of {n}",
            old.party, old.n
        )));
    }
    let coefs = old.key.len();
    let base = refresh_session(reshare_id, &old.key_id);

    // 0. The run: fresh bytes from everyone, before anything is dealt.
    let mut mine_run = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut mine_run);
    let run_step = step(&base, b"/run");
    broadcast(net, &run_step, &mine_run).await;
    let runs: Vec<Option<[u8; 32]>> = gather(net, &run_step, deadline)
        .await
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i + 1 == me {
                return Some(mine_run);
            }
            m.as_deref().and_then(|b| <[u8; 32]>::try_from(b).ok())
        })
        .collect();
    // The consistency check at the end needs every party: one silent now (down, or its host
    // withholding) makes the refresh abort anyway, so abort at once instead of waiting out
    // every later round's deadline. (Parties that did hear from everyone go on and abort at
    // their next round without this one: abort everywhere, never a split.)
    let silent: Vec<usize> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i + 1)
        .collect();
    if !silent.is_empty() {
        return Err(ThresholdError::ReshareAborted(format!(
            "parties {silent:?} silent in the run round; a resharing needs all {n} (missing: {silent:?})"
        )));
    }
    let run = run_id(&runs);
    let sid = step(&base, &run);

    // 1. Deal: party j gets its sub-shares of every coefficient, privately.
    let dealt = reshare_out(old, n, t, &mut rand_core::OsRng)?;
    let deal = step(&sid, b"/deal");
    let sends = dealt
        .iter()
        .enumerate()
        .filter(|(i, _)| i + 1 != me)
        .map(|(i, subs)| {
            let (to, deal) = (i + 1, &deal);
            let payload = encode_partials(subs.values());
            async move {
                if let Err(e) = net.send(to, deal, payload).await {
                    tracing::warn!(to, error = %e, "sub-shares not sent");
                }
            }
        });
    futures::future::join_all(sends).await;
    let mut mine = dealt.get(me.wrapping_sub(1)).cloned();
    drop(dealt);
    let mut raw = gather(net, &deal, deadline).await;
    let received: Vec<Option<SubShares<u128>>> = raw
        .iter_mut()
        .enumerate()
        .map(|(i, m)| {
            if i + 1 == me {
                return mine.take();
            }
            let out = m
                .as_ref()
                .and_then(|b| decode_partials(b, coefs))
                .map(SubShares::new);
            if let Some(b) = m.as_mut() {
                b.zeroize();
            }
            out
        })
        .collect();

    // 2. The challenge seed, opened after the dealing.
    let seed_step = step(&sid, b"/seed");
    let own_seed = seed_share(prss, &sid);
    let own_seed_bytes = encode_partials(&[own_seed]);
    broadcast(net, &seed_step, &own_seed_bytes).await;
    let seeds: Vec<Option<Share>> = gather(net, &seed_step, deadline)
        .await
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i + 1 == me {
                return Some(own_seed);
            }
            m.as_ref()
                .and_then(|b| decode_partials(b, 1))
                .and_then(|v| v.first().copied())
        })
        .collect();
    let seed = robust_open(&seeds, t)
        .map_err(|e| ThresholdError::ReshareAborted(format!("the seed does not open: {e}")))?
        .value;

    // 3. Check shares of every dealer, and this party's judgment.
    let checks = check_shares(prss, &sid, &seed, &received, coefs, t)
        .map_err(|e| ThresholdError::Params(e.to_string()))?;
    let check_step = step(&sid, b"/check");
    broadcast(net, &check_step, &encode_checks(&checks)).await;
    let all: Vec<Option<CheckShares<u128>>> = gather(net, &check_step, deadline)
        .await
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i + 1 == me {
                return Some(checks.clone());
            }
            m.as_ref().and_then(|b| decode_checks(b, n))
        })
        .collect();
    let (verdict, excluded) = match judge(&all, n, t, t) {
        Ok(v) => {
            if !v.excluded.is_empty() {
                tracing::warn!(reshare = %reshare_id, excluded = ?v.excluded, liars = ?v.lying_new_parties, "dealers excluded");
            }
            (Some(v.dealers), v.excluded)
        }
        Err(e) => {
            tracing::warn!(reshare = %reshare_id, "no verdict: {e}");
            (None, Vec::new())
        }
    };

    // 4. Agreement on the dealer set.
    let mut agreed =
        agree_verdict(net, reshare_id, &sid, verdict.as_deref(), n, t, t, deadline).await?;
    agreed.digest = run_verdict_digest(reshare_id, &run, &agreed.dealers);

    // 5. Combine the agreed dealers, check the new sharing.
    let mut chosen = Vec::with_capacity(agreed.dealers.len());
    for &d in &agreed.dealers {
        let subs = received
            .get(d.wrapping_sub(1))
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                ThresholdError::ReshareAborted(format!(
                    "no usable sub-shares from agreed dealer {d}"
                ))
            })?;
        chosen.push((d, subs.clone()));
    }
    drop(received);
    let share = reshare_in(
        me,
        old.key_id,
        n,
        t,
        t,
        &chosen,
        old.message_modulus,
        old.carry_modulus,
    )?;
    drop(chosen);
    let check = check_new_sharing(net, prss, &sid, &seed, &share, deadline).await?;
    Ok(Refreshed {
        share,
        agreed,
        run,
        check,
        excluded,
    })
}
