//! Pseudo-random secret sharing (PRSS) of bounded random values.
//!
//! For every set `A` of `n − t` parties (the complement of each possible corrupt set) the
//! members of `A` share a key `k_A`. For a session ID `sid` and counter `c`, party `i` computes
//!
//! ```text
//! [r]_i = Σ_{A ∋ i} PRF(k_A, sid, c) · f_A(α_i),   f_A of degree t, f_A(0) = 1, f_A(α_j) = 0 for j ∉ A
//! ```
//!
//! which is a degree-`t` Shamir sharing of `r = Σ_A PRF(k_A, sid, c)` obtained without any
//! interaction. The `t` corrupt parties miss the key of the set that excludes them, so `r` is
//! uniform to them. With PRF outputs drawn from `[−2^(b−1), 2^(b−1))`, `|r| ≤ C(n, t)·2^(b−1)`:
//! bounded masks for noise flooding.
//!
//! PRZS (pseudo-random zero sharing) uses the same keys: party `i` computes
//!
//! ```text
//! [0]_i = Σ_{A ∋ i} f_A(α_i) · Σ_{j=1..t} PRF'(k_A, sid, c, j) · α_i^j
//! ```
//!
//! the value at `α_i` of `Σ_A f_A(x)·Σ_j r_{A,j}·x^j`, a polynomial of degree `2t` that vanishes
//! at 0 and whose other coefficients are unknown to any `t` parties: a fresh random degree-`2t`
//! sharing of zero, used to re-randomize degree-`2t` values (e.g. products of two sharings)
//! before they are opened, so the opening reveals only the value.
//!
//! The PRF is SHAKE-256 over `key ‖ sid ‖ counter` (domain-separated). Key setup here is a
//! trusted dealer ([`deal_keys`]), documented as insecure like the key dealer; the DKG issue
//! replaces it with a setup where each set's key is agreed among its members.

use crate::{GaloisRing, RingError, Z2k};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use std::collections::BTreeMap;

/// A set of parties (1-based, sorted).
pub type PartySet = Vec<usize>;

/// All subsets of `{1..=n}` of size `n − t`.
pub fn maximal_sets(n: usize, t: usize) -> Vec<PartySet> {
    fn rec(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<PartySet>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for p in start..=n {
            cur.push(p);
            rec(p + 1, n, k, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if t <= n {
        rec(1, n, n - t, &mut Vec::new(), &mut out);
    }
    out
}

/// `C(n, t)`, the number of PRSS sets.
pub fn binomial(n: usize, t: usize) -> u128 {
    if t > n {
        return 0;
    }
    (0..t).fold(1u128, |acc, i| acc * (n - i) as u128 / (i + 1) as u128)
}

/// The PRF key of one PRSS set: not `Copy`, `Debug` without the key, zeroized on drop.
#[derive(Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct PrssKey([u8; 32]);

impl PrssKey {
    /// A key from its bytes (key setup).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for sealing it (the caller zeroizes what it makes of them).
    pub fn sealing_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A uniformly random key.
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }
}

impl std::fmt::Debug for PrssKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrssKey(<redacted>)")
    }
}

/// The PRSS keys, by set.
pub type PrssKeys = BTreeMap<PartySet, PrssKey>;

/// **Insecure** trusted-dealer setup: one random key per set. For tests and developer mode:
/// only in `insecure-dev` builds.
#[cfg(feature = "insecure-dev")]
pub fn deal_keys(n: usize, t: usize, rng: &mut impl rand_core::CryptoRngCore) -> PrssKeys {
    maximal_sets(n, t)
        .into_iter()
        .map(|s| (s, PrssKey::random(rng)))
        .collect()
}

fn prf<Z: Z2k>(key: &PrssKey, sid: &[u8], counter: u64, bits: u32) -> Z {
    let mut h = sha3::Shake256::default();
    h.update(b"kms/prss/v1");
    h.update(&key.0);
    h.update(&(sid.len() as u64).to_be_bytes());
    h.update(sid);
    h.update(&counter.to_be_bytes());
    let mut out = [0u8; 16];
    h.finalize_xof().read(&mut out);
    // Uniform in [−2^(bits−1), 2^(bits−1)) as a two's-complement value of Z/2^k.
    let raw = u128::from_le_bytes(out);
    let (v, half) = match bits {
        0 => (0, 0),
        1..=127 => (raw & ((1u128 << bits) - 1), 1u128 << (bits - 1)),
        _ => (raw, 0),
    };
    Z::from_u128_trunc(v).sub(Z::from_u128_trunc(half))
}

fn prf_element<Z: Z2k, const D: usize>(
    key: &PrssKey,
    sid: &[u8],
    counter: u64,
    j: u64,
) -> GaloisRing<Z, D> {
    let mut h = sha3::Shake256::default();
    // j = 0: a random element (PRSS); j ≥ 1: the j-th coefficient of a PRZS polynomial.
    h.update(b"kms/przs/v1");
    h.update(&key.0);
    h.update(&(sid.len() as u64).to_be_bytes());
    h.update(sid);
    h.update(&counter.to_be_bytes());
    h.update(&j.to_be_bytes());
    let mut reader = h.finalize_xof();
    let mut coefs = [Z::ZERO; D];
    for c in coefs.iter_mut() {
        let mut b = [0u8; 16];
        reader.read(&mut b);
        *c = Z::from_u128_trunc(u128::from_le_bytes(b));
    }
    GaloisRing { coefs }
}

/// One party's PRSS state. Its keys zeroize on drop ([`PrssKey`]); `Debug` shows no key.
#[derive(Clone)]
pub struct Prss<Z: Z2k, const D: usize> {
    party: usize,
    t: usize,
    alpha: GaloisRing<Z, D>,
    /// (set, key, f_A(α_party)) for each set containing the party.
    sets: Vec<(PartySet, PrssKey, GaloisRing<Z, D>)>,
}

impl<Z: Z2k, const D: usize> std::fmt::Debug for Prss<Z, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prss(party {}, {} sets)", self.party, self.sets.len())
    }
}

impl<Z: Z2k, const D: usize> Prss<Z, D> {
    /// Party `party`'s state from the keys of the sets it belongs to.
    pub fn new(party: usize, n: usize, t: usize, keys: &PrssKeys) -> Result<Self, RingError> {
        let alpha = GaloisRing::<Z, D>::point(party)?;
        let mut sets = Vec::new();
        for set in maximal_sets(n, t) {
            if !set.contains(&party) {
                continue;
            }
            let key = keys.get(&set).ok_or(RingError::BadIndex(party))?.clone();
            // f_A(x) = Π_{j ∉ A} (x − α_j) / (0 − α_j)
            let mut v = GaloisRing::one();
            for j in (1..=n).filter(|j| !set.contains(j)) {
                let aj = GaloisRing::<Z, D>::point(j)?;
                v = v.mul(&alpha.sub(&aj)).mul(&aj.neg().inv()?);
            }
            sets.push((set, key, v));
        }
        Ok(Self {
            party,
            t,
            alpha,
            sets,
        })
    }

    /// The party (1-based).
    pub fn party(&self) -> usize {
        self.party
    }

    /// The PRSS sets whose keys this party holds (those it belongs to).
    pub fn sets(&self) -> impl Iterator<Item = &PartySet> {
        self.sets.iter().map(|(s, _, _)| s)
    }

    /// This party's share of a random value bounded by `C(n, t)·2^(bits−1)` in absolute value.
    pub fn mask(&self, sid: &[u8], counter: u64, bits: u32) -> GaloisRing<Z, D> {
        self.sets.iter().fold(GaloisRing::ZERO, |acc, (_, k, f)| {
            acc.add(&f.scale(prf::<Z>(k, sid, counter, bits)))
        })
    }

    /// This party's share of a uniformly random ring element (degree `t`), e.g. the coefficients
    /// of a random polynomial nobody knows, or a common random seed once opened.
    pub fn random_share(&self, sid: &[u8], counter: u64) -> GaloisRing<Z, D> {
        self.sets.iter().fold(GaloisRing::ZERO, |acc, (_, k, f)| {
            acc.add(&f.mul(&prf_element::<Z, D>(k, sid, counter, 0)))
        })
    }

    /// This party's share of a pseudo-random degree-`2t` sharing of zero (PRZS).
    pub fn zero_share(&self, sid: &[u8], counter: u64) -> GaloisRing<Z, D> {
        self.sets.iter().fold(GaloisRing::ZERO, |acc, (_, k, f)| {
            // Σ_{j=1..t} r_j·α^j, Horner from the top: ((r_t·α + r_{t−1})·α + …)·α.
            let mut inner = GaloisRing::ZERO;
            for j in (1..=self.t as u64).rev() {
                inner = inner
                    .add(&prf_element::<Z, D>(k, sid, counter, j))
                    .mul(&self.alpha);
            }
            acc.add(&f.mul(&inner))
        })
    }
}

/// The value a PRSS mask opens to, computed from all keys (for tests).
pub fn mask_value<Z: Z2k>(keys: &PrssKeys, sid: &[u8], counter: u64, bits: u32) -> Z {
    keys.values()
        .fold(Z::ZERO, |acc, k| acc.add(prf::<Z>(k, sid, counter, bits)))
}
