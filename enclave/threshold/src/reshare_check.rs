//! Verification of a resharing by the new parties: no old party can make the new shares hold
//! another key.
//!
//! After the dealing (every old party `i` reshares each coefficient `s_i^c` of its key share with
//! a degree-`t'` polynomial `g_i^c`), the new parties check the dealers without learning
//! anything about the key:
//!
//! 1. They open a common random seed (a PRSS random element, opened robustly), and derive from it
//!    `K` challenge vectors `r_k` of uniformly random ring elements, one weight per coefficient.
//!    The dealing is fixed before the seed exists.
//! 2. For each challenge `k` and dealer `i`, new party `j` computes
//!    `[y_{k,i}]_j = Σ_c r_{k,c}·g_i^c(β_j) + Σ_m [μ_{k,m}]_j·α_i^m`, where the `μ_{k,m}` are PRSS
//!    random elements: a random degree-`t` polynomial `M_k` nobody knows, evaluated at dealer
//!    `i`'s point. The shares are opened robustly (degree `t'`).
//! 3. For honest dealers `y_{k,i} = F_k(α_i) + M_k(α_i)` with `F_k = Σ_c r_{k,c}·f^c` the old
//!    sharing polynomial: `(y_{k,1}, …, y_{k,n})` is a codeword masked by a uniformly random
//!    codeword `M_k`, so it reveals nothing about the key. A dealer who dealt another value for
//!    any coefficient shows up as an error in that codeword (except with probability `2^−d` per
//!    challenge over `GR(·, d)`, so `K = 32` challenges give `2^−128`), and robust decoding over
//!    the old points names it.
//! 4. A dealer is excluded if it is named, or if the opening of any of its `y_{k,i}` failed or
//!    named a new party that is not a proven liar (a new party named for more than `t` dealers
//!    cannot have been framed by the at most `t` corrupt dealers). Everybody then combines the
//!    sub-shares of the same `t + 1` remaining dealers.
//!
//! Privacy of the openings: all `n'` check shares of `y_{k,i}` are broadcast, so the whole
//! opened polynomial `P(β) = D(β) + R(β)` is public (`D = Σ_c r_{k,c}·g_i^c`, `R` the PRSS
//! sharing of `M_k(α_i)`). The corrupt new parties know `D` at their own `t'` points, so what
//! they miss of `D` is `D(0)·L(β)`, `L` the degree-`t'` polynomial vanishing at their points with
//! `L(0) = 1`; what they miss of `R` is the term of the one PRSS set they are all outside of,
//! `X·f_A(β)` with `f_A = L`. They learn `P`, hence only `D(0) + X`, and `X` is uniform: nothing
//! about the dealer's value beyond the masked codeword entry.
//!
//! Safety is unconditional: a dealer whose sub-shares are wrong or inconsistent is never used.
//! Every opening here follows the opening rule (`2t' + 1` agreeing check shares per dealer
//! value, `2t + 1` agreeing dealer values per challenge).
//!
//! Honest new parties may still reach different verdicts: each judges from the check shares *it*
//! received, and a malicious new party can show different check shares to different parties (or
//! a host can delay one message). The verdicts are therefore agreed on before anyone combines
//! ([`crate::reshare_agree`]), and each party's [`ReshareVerdict::digest`] goes on chain with
//! `ReshareDone`, which completes only when all `n'` digests match. Liveness needs `t + 1`
//! dealers left and agreeing verdicts: a new party that lies about some dealers to some parties
//! can make the resharing abort (old shares kept), never a wrong or split key; resolving that
//! needs a complaint round (open: see the threshold issue).

use crate::SubShares;
use kms_algebra::prss::Prss;
use kms_algebra::shamir::robust_open;
use kms_algebra::{GaloisRing, Z2k};
use kms_types::RequestId;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::Digest;

/// One new party's check shares: `[k][i − 1]` for challenge `k` and dealer `i` (`None` where the
/// dealer sent nothing usable).
pub type CheckShares<Z> = Vec<Vec<Option<GaloisRing<Z, 4>>>>;

/// Number of challenges (soundness `2^−4` each over `GR(·, 4)`).
pub const RESHARE_CHALLENGES: usize = 32;

/// The weights of challenge `k` for `coefs` coefficients, from the opened seed.
pub fn challenge_weights<Z: Z2k>(
    seed: &GaloisRing<Z, 4>,
    k: usize,
    coefs: usize,
) -> Vec<GaloisRing<Z, 4>> {
    let mut h = sha3::Shake256::default();
    h.update(b"kms/reshare-challenge/v1");
    for c in seed.coefs {
        h.update(&c.to_u128().to_le_bytes());
    }
    h.update(&(k as u64).to_be_bytes());
    let mut r = h.finalize_xof();
    (0..coefs)
        .map(|_| {
            let mut g = GaloisRing::<Z, 4>::ZERO;
            for c in g.coefs.iter_mut() {
                let mut b = [0u8; 16];
                r.read(&mut b);
                *c = Z::from_u128_trunc(u128::from_le_bytes(b));
            }
            g
        })
        .collect()
}

/// New party's share of the seed sharing (round 1).
pub fn seed_share<Z: Z2k>(prss: &Prss<Z, 4>, sid: &[u8]) -> GaloisRing<Z, 4> {
    prss.random_share(sid, 0)
}

/// New party's check shares (round 2): `out[k][i − 1]` for challenge `k`, dealer `i`.
/// `received[i − 1]` are the sub-shares from dealer `i` (`None` if it sent nothing usable).
pub fn check_shares<Z: Z2k>(
    prss: &Prss<Z, 4>,
    sid: &[u8],
    seed: &GaloisRing<Z, 4>,
    received: &[Option<SubShares<Z>>],
    coefs: usize,
    old_t: usize,
) -> Result<CheckShares<Z>, kms_algebra::RingError> {
    let mut out = Vec::with_capacity(RESHARE_CHALLENGES);
    for k in 0..RESHARE_CHALLENGES {
        let r = challenge_weights(seed, k, coefs);
        // This party's shares of M_k's coefficients.
        let mu: Vec<GaloisRing<Z, 4>> = (0..=old_t)
            .map(|m| prss.random_share(sid, 1 + (k * (old_t + 1) + m) as u64))
            .collect();
        let mut row = Vec::with_capacity(received.len());
        for (i, subs) in received.iter().enumerate() {
            let Some(subs) = subs.as_ref().filter(|s| s.len() == coefs) else {
                row.push(None);
                continue;
            };
            let alpha = GaloisRing::<Z, 4>::point(i + 1)?;
            let dealt = subs
                .values()
                .iter()
                .zip(&r)
                .fold(GaloisRing::ZERO, |acc, (v, w)| acc.add(&v.mul(w)));
            let mask = mu
                .iter()
                .rev()
                .fold(GaloisRing::ZERO, |acc, m| acc.mul(&alpha).add(m));
            row.push(Some(dealt.add(&mask)));
        }
        out.push(row);
    }
    Ok(out)
}

/// The outcome of the check as one new party sees it. Honest parties' verdicts can differ (see
/// the module docs): they are agreed on with [`crate::reshare_agree::agree_verdict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshareVerdict {
    /// Dealers whose sub-shares are used (the first `old_t + 1` honest ones), ascending.
    pub dealers: Vec<usize>,
    /// Dealers excluded, ascending.
    pub excluded: Vec<usize>,
    /// New parties proven to have lied about their check shares.
    pub lying_new_parties: Vec<usize>,
}

impl ReshareVerdict {
    /// [`verdict_digest`] of this verdict's dealer set.
    pub fn digest(&self, reshare_id: &RequestId) -> [u8; 32] {
        verdict_digest(reshare_id, &self.dealers)
    }
}

/// The canonical encoding of a dealer set (what the new parties broadcast to agree, and what
/// [`verdict_digest`] hashes): `u32 count ‖ u32 dealer…`, big-endian, dealers strictly
/// ascending (the input is sorted and de-duplicated first).
pub fn encode_dealers(dealers: &[usize]) -> Vec<u8> {
    let mut d: Vec<usize> = dealers.to_vec();
    d.sort_unstable();
    d.dedup();
    let mut out = Vec::with_capacity(4 + 4 * d.len());
    out.extend_from_slice(&(d.len() as u32).to_be_bytes());
    for x in d {
        out.extend_from_slice(&(x as u32).to_be_bytes());
    }
    out
}

/// Parses [`encode_dealers`]' encoding: `None` unless canonical (strictly ascending dealers in
/// `1..=old_n`, exactly `count` of them, `count ≤ old_n`).
pub fn decode_dealers(b: &[u8], old_n: usize) -> Option<Vec<usize>> {
    let (count, rest) = b.split_first_chunk::<4>()?;
    let count = u32::from_be_bytes(*count) as usize;
    if count > old_n || rest.len() != 4 * count {
        return None;
    }
    let dealers: Vec<usize> = rest
        .chunks_exact(4)
        .filter_map(|c| {
            c.try_into()
                .ok()
                .map(|a: [u8; 4]| u32::from_be_bytes(a) as usize)
        })
        .collect();
    let canonical = dealers.len() == count
        && dealers.iter().all(|&d| (1..=old_n).contains(&d))
        && dealers.windows(2).all(|w| matches!(w, [a, b] if a < b));
    canonical.then_some(dealers)
}

/// The verdict digest a new party reports on chain with `ReshareDone` (the chain completes the
/// resharing only when all `n'` digests are equal):
///
/// ```text
/// SHA3-256( "kms/reshare-verdict/v1" ‖ u32 len(reshare_id) ‖ reshare_id ‖ encode_dealers(dealers) )
/// ```
///
/// with big-endian `u32`s, `reshare_id` the 20 bytes of the resharing request's ID, and
/// [`encode_dealers`] the canonical dealer list (count, then the dealers ascending). Only the
/// dealer set enters: it alone determines the new shares.
pub fn verdict_digest(reshare_id: &RequestId, dealers: &[usize]) -> [u8; 32] {
    let mut h = sha3::Sha3_256::new();
    Digest::update(&mut h, b"kms/reshare-verdict/v1");
    let id = reshare_id.as_bytes();
    Digest::update(&mut h, (id.len() as u32).to_be_bytes());
    Digest::update(&mut h, id);
    Digest::update(&mut h, encode_dealers(dealers));
    h.finalize().into()
}

/// Judges the dealers from every new party's check shares (`shares[j − 1]` from new party `j`,
/// `None` if absent).
pub fn judge<Z: Z2k>(
    shares: &[Option<CheckShares<Z>>],
    old_n: usize,
    old_t: usize,
    new_t: usize,
) -> Result<ReshareVerdict, String> {
    // Per dealer: new parties named for it, whether an opening failed, whether flagged.
    let mut named_for: Vec<Vec<usize>> = vec![Vec::new(); old_n];
    let mut failed = vec![false; old_n];
    let mut flagged = vec![false; old_n];
    for k in 0..RESHARE_CHALLENGES {
        let mut y: Vec<Option<GaloisRing<Z, 4>>> = Vec::with_capacity(old_n);
        for (i, (named, fail)) in named_for.iter_mut().zip(failed.iter_mut()).enumerate() {
            let column: Vec<Option<GaloisRing<Z, 4>>> = shares
                .iter()
                .map(|s| {
                    s.as_ref()
                        .and_then(|m| m.get(k))
                        .and_then(|row| row.get(i).copied().flatten())
                })
                .collect();
            match robust_open(&column, new_t) {
                Ok(o) => {
                    for c in o.cheaters {
                        if !named.contains(&c) {
                            named.push(c);
                        }
                    }
                    y.push(Some(o.value));
                }
                Err(_) => {
                    *fail = true;
                    y.push(None);
                }
            }
        }
        match robust_open(&y, old_t) {
            Ok(o) => {
                for d in o.cheaters {
                    if let Some(f) = flagged.get_mut(d.wrapping_sub(1)) {
                        *f = true;
                    }
                }
            }
            Err(e) => return Err(format!("challenge {k}: too many bad dealers: {e}")),
        }
    }
    // A new party named for more than old_t dealers lied (at most old_t dealers are corrupt).
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    for named in &named_for {
        for &j in named {
            *counts.entry(j).or_default() += 1;
        }
    }
    let liars: Vec<usize> = counts
        .into_iter()
        .filter(|(_, c)| *c > old_t)
        .map(|(j, _)| j)
        .collect();
    let mut dealers = Vec::new();
    let mut excluded = Vec::new();
    for (i, ((named, fail), flag)) in named_for.iter().zip(&failed).zip(&flagged).enumerate() {
        let framed_or_inconsistent = named.iter().any(|j| !liars.contains(j));
        if *flag || *fail || framed_or_inconsistent {
            excluded.push(i + 1);
        } else {
            dealers.push(i + 1);
        }
    }
    if dealers.len() < old_t + 1 {
        return Err(format!(
            "only {} dealers left, {} needed (excluded {excluded:?})",
            dealers.len(),
            old_t + 1
        ));
    }
    dealers.truncate(old_t + 1);
    Ok(ReshareVerdict {
        dealers,
        excluded,
        lying_new_parties: liars,
    })
}
