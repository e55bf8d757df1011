//! Shamir sharing over the Galois ring, reconstruction, and robust opening.
//!
//! A degree-`t` sharing of `s` gives party `i` the value `P(α_i)` of a random polynomial `P`
//! with `P(0) = s` (embedded as a constant). Any `t + 1` shares determine `s`; `t` reveal
//! nothing (each share is masked by `t` uniformly random coefficients).
//!
//! # The opening rule
//!
//! **A value is output only if at least `2t + 1` of the received shares agree with one
//! polynomial of degree `≤ t`.** With fewer (parties silent, messages dropped or delayed by a
//! host, or too many wrong shares), the opening refuses with
//! [`ShamirError::InsufficientAgreement`], naming the parties whose shares are missing and those
//! whose shares were found wrong. Protocol rounds wait for every share until their deadline
//! before applying the rule, so a refusal means "not enough agreeing shares by the deadline".
//!
//! *Why it is sound.* At most `t` parties are corrupt. If a polynomial `Q` of degree `≤ t`
//! agrees with `2t + 1` received shares, at least `t + 1` of them come from honest parties, and
//! `t + 1` honest shares lie on the true sharing polynomial `P`; two polynomials of degree `≤ t`
//! that agree on `t + 1` exceptional points are equal (their difference is `2^m·q` with `q` of
//! degree `≤ t` non-zero mod 2, which has at most `t` roots among points whose differences are
//! units), so `Q = P` and the output is the shared value. The weaker rule "`t + 1` shares
//! interpolate" is *not* sound: with `n = 4, t = 1`, a host that drops two honest shares leaves a
//! party with its own share and a corrupt party's, which interpolate to whatever the corrupt
//! party chose. Every honest party applying the rule outputs either the true value or nothing,
//! so two honest parties never output different values, whatever a corrupt party sends to
//! whom (equivocation).
//!
//! *When it succeeds.* With `k` shares received of which `e` are wrong, error correction
//! (Berlekamp–Welch, below) finds `P` when `k ≥ t + 1 + 2e`; the agreement count is then
//! `k − e`, and the rule asks `k − e ≥ 2t + 1`. With all `n ≥ 3t + 1` shares and up to `t`
//! corrupt, both hold (`k − e ≥ n − t ≥ 2t + 1`), so honest parties always output when the
//! network delivers the honest shares in time. For `k ≤ 3t + 1`, any polynomial with
//! `≥ 2t + 1` agreements is within the decoder's radius, so the decoder never misses one.
//!
//! For a sharing of degree `d` other than `t` (e.g. `2t` for products or PRZS), the same
//! argument needs `d + t + 1` agreeing shares ([`robust_open_degree`]).
//!
//! # Decoding
//!
//! [`robust_open`] first checks whether all shares lie on one polynomial (the honest case,
//! `O(N·t)`); otherwise it decodes bit by bit: mod 2 the shares form a Reed–Solomon codeword over
//! `GF(2^d)` with at most `e` errors, decoded with Berlekamp–Welch; subtracting the polynomial
//! found so far and looking at the next bit gives the next codeword, `k` times in all. The result
//! is then checked against the rule above over the whole ring.
//!
//! # Secrets
//!
//! Shares produced by dealing ([`share`], [`share_element`], [`reshare_deal`]) are
//! [`SecretShare`]s: not `Copy`, `Debug` without the value, zeroized on drop. The ring element
//! itself ([`GaloisRing`]) stays `Copy` for arithmetic; values copied out of a share for
//! computation are the caller's to keep in zeroizing containers.

use crate::gf2d::{div_exact, eval as gf_eval, solve};
use crate::{GaloisRing, Gf2d, RingError, Z2k};

/// Sharing and opening failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// Parameters out of range.
    #[error("bad parameters: {0}")]
    BadParams(String),
    /// Fewer shares than needed (trusted reconstruction and resharing combination).
    #[error("{have} shares, at least {need} needed")]
    NotEnoughShares {
        /// Received.
        have: usize,
        /// Needed.
        need: usize,
    },
    /// The opening rule is not met: fewer than `need` received shares agree with one polynomial
    /// of the sharing's degree. Nothing is output.
    #[error(
        "{agreeing} of {received} received shares agree with one polynomial, {need} needed \
         (missing: parties {missing:?}; wrong shares from {cheaters:?})"
    )]
    InsufficientAgreement {
        /// Shares received.
        received: usize,
        /// The largest agreement found (0 if decoding found no candidate).
        agreeing: usize,
        /// Agreement required (`2t + 1` for a degree-`t` sharing).
        need: usize,
        /// Parties (1-based) whose shares did not arrive (or did not parse).
        missing: Vec<usize>,
        /// Parties (1-based) whose shares disagree with the best candidate found.
        cheaters: Vec<usize>,
    },
    /// Ring arithmetic failed.
    #[error("ring: {0}")]
    Ring(#[from] RingError),
}

/// One party's share of a secret (a dealt Shamir share, a resharing sub-share): not `Copy`,
/// `Debug` without the value, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretShare<Z: Z2k, const D: usize> {
    party: usize,
    value: GaloisRing<Z, D>,
}

impl<Z: Z2k, const D: usize> SecretShare<Z, D> {
    /// Party `party`'s (1-based) share `value`.
    pub fn new(party: usize, value: GaloisRing<Z, D>) -> Self {
        Self { party, value }
    }

    /// The party (1-based) the share belongs to.
    pub fn party(&self) -> usize {
        self.party
    }

    /// The share's value (a copy taken from it is the caller's to protect).
    pub fn value(&self) -> &GaloisRing<Z, D> {
        &self.value
    }
}

impl<Z: Z2k, const D: usize> std::fmt::Debug for SecretShare<Z, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretShare(party {}, <redacted>)", self.party)
    }
}

impl<Z: Z2k, const D: usize> zeroize::Zeroize for SecretShare<Z, D> {
    fn zeroize(&mut self) {
        self.value.zeroize();
    }
}

impl<Z: Z2k, const D: usize> Drop for SecretShare<Z, D> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

impl<Z: Z2k, const D: usize> zeroize::ZeroizeOnDrop for SecretShare<Z, D> {}

/// Evaluates `Σ coefs[k]·x^k`.
pub fn eval_poly<Z: Z2k, const D: usize>(
    coefs: &[GaloisRing<Z, D>],
    x: &GaloisRing<Z, D>,
) -> GaloisRing<Z, D> {
    coefs
        .iter()
        .rev()
        .fold(GaloisRing::ZERO, |acc, c| acc.mul(x).add(c))
}

fn check_params<const D: usize>(t: usize, n: usize) -> Result<(), ShamirError> {
    if n == 0 || t >= n || n >= (1usize << D) {
        return Err(ShamirError::BadParams(format!(
            "need t < n < 2^{D} = {}, got t = {t}, n = {n}",
            1usize << D
        )));
    }
    Ok(())
}

/// Shares `secret` among `n` parties with threshold `t`; element `i` goes to party `i + 1`.
pub fn share<Z: Z2k, const D: usize>(
    secret: Z,
    t: usize,
    n: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SecretShare<Z, D>>, ShamirError> {
    let mut s = GaloisRing::from_scalar(secret);
    let out = share_element(&s, t, n, rng);
    zeroize::Zeroize::zeroize(&mut s);
    out
}

/// Shares a ring element (used by resharing, where the secret is itself a share).
pub fn share_element<Z: Z2k, const D: usize>(
    secret: &GaloisRing<Z, D>,
    t: usize,
    n: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SecretShare<Z, D>>, ShamirError> {
    check_params::<D>(t, n)?;
    let mut coefs = zeroize::Zeroizing::new(Vec::with_capacity(t + 1));
    coefs.push(*secret);
    for _ in 0..t {
        coefs.push(GaloisRing::random(rng));
    }
    (1..=n)
        .map(|i| {
            Ok(SecretShare::new(
                i,
                eval_poly(&coefs, &GaloisRing::point(i)?),
            ))
        })
        .collect()
}

/// Lagrange coefficients `λ_i(x) = Π_{j≠i} (x − α_j)/(α_i − α_j)` for the given parties.
pub fn lagrange_at<Z: Z2k, const D: usize>(
    parties: &[usize],
    x: &GaloisRing<Z, D>,
) -> Result<Vec<GaloisRing<Z, D>>, ShamirError> {
    let pts = parties
        .iter()
        .map(|&p| GaloisRing::point(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(pts.len());
    for (i, ai) in pts.iter().enumerate() {
        let mut num = GaloisRing::one();
        let mut den = GaloisRing::one();
        for (j, aj) in pts.iter().enumerate() {
            if i != j {
                num = num.mul(&x.sub(aj));
                den = den.mul(&ai.sub(aj));
            }
        }
        out.push(num.mul(&den.inv()?));
    }
    Ok(out)
}

/// The value at `x` of the polynomial through `shares` (party, value); the parties must be
/// distinct, and the polynomial has degree below `shares.len()`. Not an opening: no check.
pub fn interpolate_at<Z: Z2k, const D: usize>(
    shares: &[(usize, GaloisRing<Z, D>)],
    x: &GaloisRing<Z, D>,
) -> Result<GaloisRing<Z, D>, ShamirError> {
    let parties: Vec<usize> = shares.iter().map(|(p, _)| *p).collect();
    let lambdas = lagrange_at(&parties, x)?;
    Ok(lambdas
        .iter()
        .zip(shares)
        .fold(GaloisRing::ZERO, |acc, (l, (_, v))| acc.add(&l.mul(v))))
}

/// Reconstructs from the first `t + 1` shares, **trusting them** (no error detection): for
/// shares the caller holds itself (tests, a dealer's own check). Shares received from other
/// parties are opened with [`robust_open`], which applies the opening rule.
pub fn reconstruct<Z: Z2k, const D: usize>(
    shares: &[(usize, GaloisRing<Z, D>)],
    t: usize,
) -> Result<GaloisRing<Z, D>, ShamirError> {
    let first = shares.get(..=t).ok_or(ShamirError::NotEnoughShares {
        have: shares.len(),
        need: t + 1,
    })?;
    interpolate_at(first, &GaloisRing::ZERO)
}

/// The result of a robust opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<Z: Z2k, const D: usize> {
    /// The shared value (`P(0)`).
    pub value: GaloisRing<Z, D>,
    /// Parties (1-based) whose shares were wrong.
    pub cheaters: Vec<usize>,
    /// Number of received shares on the opened polynomial (at least the rule's threshold).
    pub agreeing: usize,
}

/// Berlekamp–Welch over GF(2^D): the polynomial of degree ≤ `t` through all but at most `e`
/// of the points.
fn berlekamp_welch<const D: usize>(
    xs: &[Gf2d<D>],
    zs: &[Gf2d<D>],
    t: usize,
    e: usize,
) -> Option<Vec<Gf2d<D>>> {
    let nq = t + e + 1;
    let cols = nq + e;
    let mut a = Vec::with_capacity(xs.len());
    let mut b = Vec::with_capacity(xs.len());
    for (&x, &z) in xs.iter().zip(zs) {
        let mut row = Vec::with_capacity(cols);
        let mut p = Gf2d::ONE;
        for _ in 0..nq {
            row.push(p);
            p = p.mul(x);
        }
        let mut p = Gf2d::ONE;
        for _ in 0..e {
            row.push(z.mul(p)); // −z·x^k = z·x^k in characteristic 2
            p = p.mul(x);
        }
        a.push(row);
        b.push(z.mul(p)); // z·x^e (E is monic)
    }
    let sol = solve(a, b, cols)?;
    let q = sol.get(..nq)?;
    let mut ep = sol.get(nq..)?.to_vec();
    ep.push(Gf2d::ONE);
    let mut f = div_exact(q, &ep)?;
    if f.len() > t + 1 {
        return None;
    }
    f.resize(t + 1, Gf2d::ZERO);
    // Accept only if at most e points disagree.
    let wrong = xs
        .iter()
        .zip(zs)
        .filter(|(x, z)| gf_eval(&f, **x) != **z)
        .count();
    (wrong <= e).then_some(f)
}

/// Opens a degree-`t` sharing with at most `t` corrupt parties from the shares received
/// (`shares[i]` from party `i + 1`, `None` if it sent nothing or something unparsable),
/// correcting wrong shares and naming their senders, under the opening rule (module docs):
/// the value is output only if at least `2t + 1` received shares agree with it.
pub fn robust_open<Z: Z2k, const D: usize>(
    shares: &[Option<GaloisRing<Z, D>>],
    t: usize,
) -> Result<Opened<Z, D>, ShamirError> {
    robust_open_degree(shares, t, t)
}

/// Opens a sharing of degree `degree` when at most `corrupt` parties are corrupt: the value is
/// output only if at least `degree + corrupt + 1` received shares agree with one polynomial of
/// degree `≤ degree` (so `degree + 1` honest shares fix it).
pub fn robust_open_degree<Z: Z2k, const D: usize>(
    shares: &[Option<GaloisRing<Z, D>>],
    degree: usize,
    corrupt: usize,
) -> Result<Opened<Z, D>, ShamirError> {
    check_params::<D>(degree, shares.len())?;
    let need = degree + corrupt + 1;
    if need > shares.len() {
        return Err(ShamirError::BadParams(format!(
            "{need} agreeing shares needed but only {} parties",
            shares.len()
        )));
    }
    let present: Vec<(usize, GaloisRing<Z, D>)> = shares
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i + 1, s)))
        .collect();
    let missing: Vec<usize> = shares
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| i + 1)
        .collect();
    let k = present.len();
    let refuse = |agreeing: usize, cheaters: Vec<usize>| ShamirError::InsufficientAgreement {
        received: k,
        agreeing,
        need,
        missing: missing.clone(),
        cheaters,
    };
    if k < need {
        return Err(refuse(0, Vec::new()));
    }

    // Honest case: everything lies on the polynomial through the first degree + 1 shares.
    let base = present
        .get(..=degree)
        .ok_or_else(|| refuse(0, Vec::new()))?;
    let mut consistent = true;
    for (p, v) in present.iter().skip(degree + 1) {
        if interpolate_at(base, &GaloisRing::point(*p)?)? != *v {
            consistent = false;
            break;
        }
    }
    if consistent {
        return Ok(Opened {
            value: interpolate_at(base, &GaloisRing::ZERO)?,
            cheaters: vec![],
            agreeing: k,
        });
    }

    // Decode bit by bit, correcting up to e errors: e ≤ corrupt, k ≥ degree + 1 + 2e for
    // unique decoding, and e ≤ k − need (more errors would break the rule anyway).
    let e = corrupt.min((k - degree - 1) / 2).min(k - need);
    let points: Vec<GaloisRing<Z, D>> = present
        .iter()
        .map(|(p, _)| GaloisRing::point(*p))
        .collect::<Result<_, _>>()?;
    let xs: Vec<Gf2d<D>> = points.iter().map(GaloisRing::residue).collect();
    let mut poly = vec![GaloisRing::<Z, D>::ZERO; degree + 1];
    for j in 0..Z::BITS {
        let zs: Vec<Gf2d<D>> = present
            .iter()
            .zip(&points)
            .map(|((_, y), x)| y.sub(&eval_poly(&poly, x)).bit_slice(j))
            .collect();
        let g = berlekamp_welch(&xs, &zs, degree, e).ok_or_else(|| refuse(0, Vec::new()))?;
        for (c, gc) in poly.iter_mut().zip(g) {
            *c = c.add(&GaloisRing::lift_shifted(gc, j));
        }
    }
    let cheaters: Vec<usize> = present
        .iter()
        .zip(&points)
        .filter(|((_, y), x)| eval_poly(&poly, x) != *y)
        .map(|((p, _), _)| *p)
        .collect();
    let agreeing = k - cheaters.len();
    if agreeing < need {
        return Err(refuse(agreeing, cheaters));
    }
    Ok(Opened {
        value: poly.first().copied().unwrap_or(GaloisRing::ZERO),
        cheaters,
        agreeing,
    })
}

/// Resharing, dealer side: old party's share → a fresh degree-`new_t` sharing of it for `new_n`
/// parties (element `j` goes to new party `j + 1`).
pub fn reshare_deal<Z: Z2k, const D: usize>(
    my_share: &GaloisRing<Z, D>,
    new_t: usize,
    new_n: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SecretShare<Z, D>>, ShamirError> {
    share_element(my_share, new_t, new_n, rng)
}

/// Resharing, receiver side: from the sub-shares `(old party, sub-share)` of `old_t + 1` old
/// parties, this new party's share of the same secret: `Σ λ_i(0)·σ_i`. The result is a
/// degree-`new_t` sharing with fresh randomness: old shares and new shares do not combine.
/// The dealers must have been checked first (`kms-threshold`'s `reshare_check`).
pub fn reshare_combine<Z: Z2k, const D: usize>(
    subshares: &[(usize, GaloisRing<Z, D>)],
    old_t: usize,
) -> Result<GaloisRing<Z, D>, ShamirError> {
    reconstruct(subshares, old_t)
}
