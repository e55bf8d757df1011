//! Agreement on the resharing verdict, the consistency check of the new sharing, and the rule
//! for erasing old shares.
//!
//! Each new party judges the dealers from the check shares *it* received
//! ([`crate::reshare_check::judge`]); a malicious new party that shows different check shares to
//! different honest parties, or a host that delays a message, can make honest verdicts differ.
//! Combining different dealer sets would leave the honest parties with shares of no common
//! polynomial, and erasing the old shares then would lose the key. So:
//!
//! 1. **Agreement** ([`agree_verdict`]): a two-round graded agreement for `t' < n'/3` in the
//!    synchronous model (every honest message arrives before the round's deadline):
//!    * round 1, every new party broadcasts its dealer set (canonical encoding,
//!      [`crate::reshare_check::encode_dealers`]);
//!    * round 2, a party that received the same set `X` from at least `n' − t'` parties
//!      (itself included) echoes `X`, otherwise it echoes "none";
//!    * a party that receives `n' − t'` echoes of `X` **commits** to `X`; one that receives
//!      `t' + 1` echoes of `X` **adopts** `X` (and combines it, but may not erase anything);
//!      with fewer, it aborts.
//!
//!    Honest echoes all name the same set: two sets each reported by `n' − t'` parties in two
//!    honest views would have `n' − 2t' ≥ t' + 1` honest reporters each, `2(n' − 2t') > n' − t'`
//!    honest parties in all, so some honest party reported both, which it does not (it sends
//!    one message to all). Hence at most one set gets `t' + 1` echoes in any view (`t'` corrupt
//!    echoes are not enough), and if an honest party commits to `X` (`n' − t'` echoes, `≥ t' + 1`
//!    of them honest, sent to everyone), every honest party adopts `X`. When all honest
//!    verdicts are equal, every honest party commits.
//! 2. **Consistency check** ([`check_new_sharing`]): the new parties open a random combination
//!    of their new key shares, masked by a PRSS random sharing (so the opened value is uniform
//!    and says nothing about the key), with weights from the seed opened by the resharing check
//!    (fixed after the dealing). It passes only if at least `n' − t'` shares agree and this
//!    party's own share is among them.
//! 3. **Report and erasure**: a party reports `ReshareDone` with its
//!    [`crate::reshare_check::verdict_digest`] only if it *committed* and the check passed. The
//!    chain completes the resharing on `n' − t'` matching digests: then at least
//!    `n' − 2t' ≥ t' + 1` honest parties committed, so every honest party adopted the same set
//!    and holds a consistent new share. [`commit_reshare`] erases the old share (dropping it
//!    zeroizes it) only if the chain completed with this party's agreed digest and its own check
//!    passed (whether it committed or adopted); otherwise the old share is handed back.

use crate::reshare_check::{challenge_weights, decode_dealers, encode_dealers, verdict_digest};
use crate::wire::{decode_partials, encode_partials};
use crate::{Share, SnsKeyShare, ThresholdError};
use kms_algebra::prss::Prss;
use kms_algebra::shamir::robust_open;
use kms_transport::{broadcast, gather, Transport};
use kms_types::RequestId;
use std::time::Duration;

/// How firmly a party holds the agreed verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grade {
    /// `n' − t'` echoes: every honest party holds the same set (at least adopted); report
    /// `ReshareDone` (after the consistency check).
    Committed,
    /// `t' + 1` echoes: the set is the only one any honest party can commit to; combine it and
    /// check it, but do not report; erase the old share only once the chain completed.
    Adopted,
}

/// The agreed verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgreedVerdict {
    /// The dealers to combine, ascending.
    pub dealers: Vec<usize>,
    /// [`verdict_digest`] of the set (what goes on chain with `ReshareDone`).
    pub digest: [u8; 32],
    /// Committed or adopted.
    pub grade: Grade,
}

const NONE: &[u8] = b"\x00none";

fn session(base: &[u8], step: &[u8]) -> Vec<u8> {
    let mut s = base.to_vec();
    s.extend_from_slice(step);
    s
}

/// The set that at least `quorum` of `msgs` name (decoded canonically), if exactly one does.
fn quorum_set(msgs: &[Option<Vec<u8>>], old_n: usize, quorum: usize) -> Option<Vec<usize>> {
    let mut counts: Vec<(Vec<usize>, usize)> = Vec::new();
    for m in msgs.iter().flatten() {
        let Some(d) = decode_dealers(m, old_n) else {
            continue;
        };
        match counts.iter_mut().find(|(s, _)| *s == d) {
            Some((_, c)) => *c += 1,
            None => counts.push((d, 1)),
        }
    }
    let mut over = counts.into_iter().filter(|(_, c)| *c >= quorum);
    let first = over.next()?;
    // Two sets over the quorum cannot both be honest: refuse rather than pick one.
    over.next().is_none().then_some(first.0)
}

/// Runs the two-round graded agreement on the dealer set (module docs). `mine` is this party's
/// own verdict (`None` if its judgment failed); `old_t + 1` dealers are expected. Errors with
/// [`ThresholdError::ReshareAborted`] when no set gets `t' + 1` echoes by the deadline.
#[allow(clippy::too_many_arguments)]
pub async fn agree_verdict(
    net: &dyn Transport,
    reshare_id: &RequestId,
    base_session: &[u8],
    mine: Option<&[usize]>,
    old_n: usize,
    old_t: usize,
    new_t: usize,
    deadline: Duration,
) -> Result<AgreedVerdict, ThresholdError> {
    let n = net.n();
    let me = net.me();
    if n < 3 * new_t + 1 {
        return Err(ThresholdError::Params(format!(
            "agreement needs n' ≥ 3t' + 1, got {n}, {new_t}"
        )));
    }
    let own = match mine {
        Some(d) if d.len() == old_t + 1 => encode_dealers(d),
        _ => NONE.to_vec(),
    };
    // Round 1: verdicts.
    let s1 = session(base_session, b"/verdict");
    broadcast(net, &s1, &own).await;
    let mut got = gather(net, &s1, deadline).await;
    if let Some(slot) = got.get_mut(me.wrapping_sub(1)) {
        *slot = Some(own);
    }
    let echo = match quorum_set(&got, old_n, n - new_t) {
        Some(x) if x.len() == old_t + 1 => encode_dealers(&x),
        _ => NONE.to_vec(),
    };
    // Round 2: echoes.
    let s2 = session(base_session, b"/echo");
    broadcast(net, &s2, &echo).await;
    let mut echoes = gather(net, &s2, deadline).await;
    if let Some(slot) = echoes.get_mut(me.wrapping_sub(1)) {
        *slot = Some(echo);
    }
    let (dealers, grade) = if let Some(x) = quorum_set(&echoes, old_n, n - new_t) {
        (x, Grade::Committed)
    } else if let Some(x) = quorum_set(&echoes, old_n, new_t + 1) {
        (x, Grade::Adopted)
    } else {
        return Err(ThresholdError::ReshareAborted(
            "no dealer set was echoed by t' + 1 new parties".into(),
        ));
    };
    if dealers.len() != old_t + 1 {
        return Err(ThresholdError::ReshareAborted(format!(
            "agreed set has {} dealers, {} expected",
            dealers.len(),
            old_t + 1
        )));
    }
    Ok(AgreedVerdict {
        digest: verdict_digest(reshare_id, &dealers),
        dealers,
        grade,
    })
}

/// The result of the consistency check of the new sharing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyCheck {
    /// Shares on the opened polynomial.
    pub agreeing: usize,
    /// Parties whose shares were off it.
    pub cheaters: Vec<usize>,
    /// Parties whose shares did not arrive.
    pub missing: Vec<usize>,
}

/// Checks that the new key shares lie on one degree-`t'` polynomial per coefficient: opens
/// `Σ_c w_c·[s'_c] + [ρ]` (weights from `seed`, the resharing check's opened seed; `[ρ]` a PRSS
/// random sharing) and requires at least `n' − t'` agreeing shares, this party's among them.
pub async fn check_new_sharing(
    net: &dyn Transport,
    prss: &Prss<u128, 4>,
    base_session: &[u8],
    seed: &Share,
    new_key: &SnsKeyShare,
    deadline: Duration,
) -> Result<ConsistencyCheck, ThresholdError> {
    let n = net.n();
    let me = net.me();
    let t = new_key.t;
    let weights = challenge_weights(
        seed,
        crate::reshare_check::RESHARE_CHALLENGES,
        new_key.key.len(),
    );
    let s = session(base_session, b"/consistency");
    let combo = new_key
        .key
        .iter()
        .zip(&weights)
        .fold(prss.random_share(&s, 0), |acc, (k, w)| acc.add(&k.mul(w)));
    let mine = encode_partials(&[combo]);
    broadcast(net, &s, &mine).await;
    let mut got = gather(net, &s, deadline).await;
    if let Some(slot) = got.get_mut(me.wrapping_sub(1)) {
        *slot = Some(mine);
    }
    let shares: Vec<Option<Share>> = got
        .iter()
        .map(|m| {
            m.as_ref()
                .and_then(|b| decode_partials(b, 1))
                .and_then(|v| v.first().copied())
        })
        .collect();
    let missing: Vec<usize> = (1..=n)
        .filter(|p| shares.get(p - 1).is_none_or(Option::is_none))
        .collect();
    let opened = robust_open(&shares, t).map_err(|e| {
        ThresholdError::ReshareAborted(format!("the new sharing does not open: {e}"))
    })?;
    if opened.agreeing < n - t || opened.cheaters.contains(&me) {
        return Err(ThresholdError::ReshareAborted(format!(
            "the new sharing is not consistent: {} of {n} shares agree (need {}), wrong: {:?}",
            opened.agreeing,
            n - t,
            opened.cheaters
        )));
    }
    Ok(ConsistencyCheck {
        agreeing: opened.agreeing,
        cheaters: opened.cheaters,
        missing,
    })
}

/// A resharing that did not complete: the old share (if this party had one) is handed back
/// intact, the new one was discarded (zeroized).
#[derive(Debug)]
pub struct ReshareAbort {
    /// The old key share, not erased.
    pub old: Option<SnsKeyShare>,
    /// Why.
    pub reason: ThresholdError,
}

/// Adopts the new key share and erases the old one (dropping it zeroizes it), only if the chain
/// completed the resharing with this party's agreed digest (`chain_digest`) and the new sharing
/// checked consistent from this party's view. Otherwise returns the old share.
pub fn commit_reshare(
    old: Option<SnsKeyShare>,
    new: SnsKeyShare,
    agreed: &AgreedVerdict,
    check: &ConsistencyCheck,
    chain_digest: &[u8; 32],
) -> Result<SnsKeyShare, Box<ReshareAbort>> {
    let reason = if *chain_digest != agreed.digest {
        Some("the chain completed the resharing with another verdict".to_string())
    } else if check.agreeing < new.n.saturating_sub(new.t) {
        Some("the new sharing was not checked consistent".to_string())
    } else {
        None
    };
    match reason {
        Some(r) => Err(Box::new(ReshareAbort {
            old,
            reason: ThresholdError::ReshareAborted(r),
        })),
        None => {
            drop(old);
            Ok(new)
        }
    }
}
