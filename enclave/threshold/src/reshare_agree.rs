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
//! 2. **Consistency check** ([`check_new_sharing`]): the new parties open 32 random combinations
//!    of their new key shares, each masked by a PRSS random sharing (so the opened values are
//!    uniform and say nothing about the key), with weights from the seed opened by the resharing
//!    check (fixed after the dealing). It passes only if **all** `n'` shares are present and
//!    agree in every opening.
//! 3. **Report and erasure**: a party reports `ReshareDone` with its
//!    [`crate::reshare_check::verdict_digest`] once it holds the agreed set (committed or
//!    adopted) and its complete consistency check passed. The
//!    chain completes the resharing only on **all `n'`** matching digests: every new party then
//!    committed to the same set and holds a share on the one new polynomial, so erasing the old
//!    shares leaves a complete sharing. (Completing on `n' − t'`, as first built, let a corrupt
//!    party and a host dropping a few messages get the old shares erased while only `t' + 1`
//!    honest parties held correct new shares: the key would be hostage to the corrupt party.) A
//!    corrupt party can therefore stop a resharing (liveness; a complaint round is open), never
//!    weaken the sharing. [`commit_reshare`] erases the old share (dropping it zeroizes it) only
//!    if the chain completed with this party's agreed digest and its own check passed;
//!    otherwise the old share is handed back.

use crate::reshare_check::{challenge_weights, decode_dealers, encode_dealers, verdict_digest};
use crate::wire::{decode_partials, encode_partials};
use crate::{Share, SnsKeyShare, ThresholdError};
use kms_algebra::prss::Prss;
use kms_algebra::shamir::robust_open;
use kms_party_net::{broadcast, gather, Transport};
use kms_types::RequestId;
use std::time::Duration;

/// How firmly a party holds the agreed verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grade {
    /// `n' − t'` echoes: every honest party holds the same set (at least adopted).
    Committed,
    /// `t' + 1` echoes: the set is the only one any honest party can commit to. Either grade
    /// combines the set, runs the complete consistency check and, if it passed, reports
    /// `ReshareDone`; the chain completes only on all `n'` equal digests, so a party whose
    /// messages were delayed does not stall the resharing, and nobody erases unless every
    /// party holds a checked share of the one new sharing.
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

/// Checks that the new key shares lie on one degree-`t'` polynomial per coefficient: opens, for
/// each of [`crate::reshare_check::RESHARE_CHALLENGES`] independent challenges `j`,
/// `Σ_c w_{j,c}·[s'_c] + [ρ_j]` (weights from `seed`, the resharing check's opened seed, at
/// challenge indices after the dealer checks'; `[ρ_j]` a PRSS random sharing at counter `j`), and
/// passes only if **every** new party's share is present and agrees in every opening. One
/// opening catches an inconsistent share only with probability 15/16 (an error `2^127·u` vanishes
/// under a weight that is 0 mod 2), so 32 of them give 2^-128. Requiring all `n'` shares (not
/// `n' − t'`) is what makes erasing the old shares safe: with `n' − t'` a corrupt party plus a
/// host that drops a few messages could leave only `t' + 1` honest parties with a correct new
/// share, and the key hostage to the corrupt one. A corrupt party can make this check fail (the
/// resharing aborts, old shares kept), never pass with a bad sharing.
pub async fn check_new_sharing(
    net: &dyn Transport,
    prss: &Prss<u128, 4>,
    base_session: &[u8],
    seed: &Share,
    new_key: &SnsKeyShare,
    deadline: Duration,
) -> Result<ConsistencyCheck, ThresholdError> {
    use crate::reshare_check::RESHARE_CHALLENGES;
    let n = net.n();
    let me = net.me();
    let t = new_key.t;
    let s = session(base_session, b"/consistency");
    let combos: Vec<Share> = (0..RESHARE_CHALLENGES)
        .map(|j| {
            // Indices RESHARE_CHALLENGES.. are not used by the dealer checks.
            let weights = challenge_weights(seed, RESHARE_CHALLENGES + j, new_key.key.len());
            new_key
                .key
                .iter()
                .zip(&weights)
                .fold(prss.random_share(&s, j as u64), |acc, (k, w)| {
                    acc.add(&k.mul(w))
                })
        })
        .collect();
    let mine = encode_partials(&combos);
    broadcast(net, &s, &mine).await;
    let mut got = gather(net, &s, deadline).await;
    if let Some(slot) = got.get_mut(me.wrapping_sub(1)) {
        *slot = Some(mine);
    }
    let received: Vec<Option<Vec<Share>>> = got
        .iter()
        .map(|m| {
            m.as_ref()
                .and_then(|b| decode_partials(b, RESHARE_CHALLENGES))
        })
        .collect();
    let missing: Vec<usize> = (1..=n)
        .filter(|p| received.get(p - 1).is_none_or(Option::is_none))
        .collect();
    let mut agreeing = n;
    let mut cheaters: Vec<usize> = Vec::new();
    for j in 0..RESHARE_CHALLENGES {
        let shares: Vec<Option<Share>> = received
            .iter()
            .map(|r| r.as_ref().and_then(|v| v.get(j).copied()))
            .collect();
        let opened = robust_open(&shares, t).map_err(|e| {
            ThresholdError::ReshareAborted(format!("the new sharing does not open: {e}"))
        })?;
        agreeing = agreeing.min(opened.agreeing);
        for c in opened.cheaters {
            if !cheaters.contains(&c) {
                cheaters.push(c);
            }
        }
    }
    cheaters.sort_unstable();
    if agreeing < n || !missing.is_empty() || !cheaters.is_empty() {
        return Err(ThresholdError::ReshareAborted(format!(
            "the new sharing is not complete and consistent: {agreeing} of {n} shares agree \
             in every opening, missing: {missing:?}, wrong: {cheaters:?}"
        )));
    }
    Ok(ConsistencyCheck {
        agreeing,
        cheaters,
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
    } else if check.agreeing < new.n || !check.missing.is_empty() || !check.cheaters.is_empty() {
        Some("the new sharing was not checked complete and consistent".to_string())
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
