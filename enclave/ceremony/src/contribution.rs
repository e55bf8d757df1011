//! One contribution: the re-randomized powers, its proof of knowledge, and the checks every
//! party runs on it.

use crate::{CeremonyError, CrsShape, CrsState};
use bincode::Options;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};
use tfhe_zk_pok::curve_api::bls12_446::{G1Affine, G2Affine, Gt, ZeroizeZp, Zp, G1, G2};
use tfhe_zk_pok::curve_api::{CurveGroupOps, PairingGroupOps};

/// Proof of knowledge of the contribution's secret `τ`: a Schnorr proof that the new first G1
/// element is the previous one raised to `τ`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeProof {
    /// `R = B^r` for the previous first element `B` and a fresh `r`.
    pub commitment: G1Affine,
    /// `s = r + c·τ`, `c` the challenge hashed from the session, the transcript, the
    /// contributor, `B`, `B^τ` and `R`.
    pub response: Zp,
}

impl std::fmt::Debug for KnowledgeProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeProof").finish_non_exhaustive()
    }
}

/// A party's contribution: the powers after its secret, and the proof. What travels between the
/// parties (as [`Contribution::to_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The contributing party.
    pub contributor: u32,
    /// The `2n` G1 powers.
    pub g1: Vec<G1Affine>,
    /// The `n` G2 powers.
    pub g2: Vec<G2Affine>,
    /// The proof of knowledge of the secret.
    pub proof: KnowledgeProof,
}

/// Upper bounds on one serialized element (uncompressed, bincode varints), with margin.
const G1_BYTES_MAX: usize = 160;
const G2_BYTES_MAX: usize = 320;

fn codec() -> impl Options {
    bincode::DefaultOptions::new()
}

impl Contribution {
    /// The canonical encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CeremonyError> {
        codec()
            .serialize(self)
            .map_err(|e| CeremonyError::Malformed(e.to_string()))
    }

    /// Decodes a contribution for `shape`, refusing input larger than such a contribution can
    /// be. Decoding does not check the points: [`verify_contribution`] does.
    pub fn from_bytes(bytes: &[u8], shape: &CrsShape) -> Result<Self, CeremonyError> {
        let limit = Self::max_len(shape);
        if bytes.len() > limit {
            return Err(CeremonyError::Malformed(format!(
                "{} bytes, at most {limit} for this shape",
                bytes.len()
            )));
        }
        codec()
            .with_limit(limit as u64)
            .deserialize(bytes)
            .map_err(|e| CeremonyError::Malformed(e.to_string()))
    }

    /// The largest encoding a contribution for `shape` can have.
    pub fn max_len(shape: &CrsShape) -> usize {
        256 + 2 * shape.n * G1_BYTES_MAX + shape.n * G2_BYTES_MAX
    }
}

fn g1(p: &G1Affine) -> G1 {
    <G1 as CurveGroupOps<Zp>>::projective(*p)
}

fn g2(p: &G2Affine) -> G2 {
    <G2 as CurveGroupOps<Zp>>::projective(*p)
}

fn pairing(a: G1, b: G2) -> Gt {
    <Gt as PairingGroupOps<Zp, G1, G2>>::pairing(a, b)
}

fn challenge(prev: &CrsState, contributor: u32, base: G1, new: G1, commitment: G1) -> Zp {
    let mut c = [Zp::ZERO];
    Zp::hash(
        &mut c,
        &[
            b"kms-crs-ceremony/v1/knowledge-proof",
            prev.session.as_bytes(),
            &prev.digest,
            &contributor.to_be_bytes(),
            base.to_le_bytes().as_ref(),
            new.to_le_bytes().as_ref(),
            commitment.to_le_bytes().as_ref(),
        ],
    );
    let [c] = c;
    c
}

/// A nonzero secret scalar, zeroized on drop (tfhe-zk-pok's `ZeroizeZp`: its arithmetic and its
/// point multiplication zeroize their intermediate copies too).
fn nonzero(rng: &mut (impl RngCore + CryptoRng)) -> ZeroizeZp {
    let mut v = ZeroizeZp::ZERO;
    loop {
        v.rand_in_place(rng);
        if v != ZeroizeZp::ZERO {
            return v;
        }
    }
}

/// Contributes on top of `prev`: samples a secret `τ`, raises the i-th power to `τ^i`, proves
/// knowledge of `τ`, and forgets `τ` and its powers (zeroized on drop, as are the copies the
/// scalar arithmetic makes). The point multiplications by secrets are tfhe-zk-pok's
/// double-and-add, not constant time, as in tfhe's own CRS generation.
pub fn contribute(
    prev: &CrsState,
    contributor: u32,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Contribution, CeremonyError> {
    let tau = nonzero(rng);
    let r = nonzero(rng);
    contribute_with(prev, contributor, &tau, &r)
}

/// [`contribute`] with the secret `τ` and the proof's nonce `r` given.
fn contribute_with(
    prev: &CrsState,
    contributor: u32,
    tau: &ZeroizeZp,
    r: &ZeroizeZp,
) -> Result<Contribution, CeremonyError> {
    let n = prev.shape.n;
    let mut powers: Vec<ZeroizeZp> = Vec::with_capacity(2 * n);
    let mut cur = tau.clone();
    for _ in 0..2 * n {
        let next = &cur * tau;
        powers.push(std::mem::replace(&mut cur, next));
    }
    let (new_g1, new_g2): (Vec<G1Affine>, Vec<G2Affine>) = rayon::join(
        || {
            prev.g1
                .par_iter()
                .zip(powers.par_iter())
                .map(|(p, s)| g1(p).mul_scalar_zeroize(s).normalize())
                .collect()
        },
        || {
            prev.g2
                .par_iter()
                .zip(powers.par_iter())
                .map(|(p, s)| g2(p).mul_scalar_zeroize(s).normalize())
                .collect()
        },
    );
    drop(powers);
    let (Some(base), Some(new)) = (prev.g1.first(), new_g1.first()) else {
        return Err(CeremonyError::Degenerate("empty CRS"));
    };
    let (base, new) = (g1(base), g1(new));
    let commitment = base.mul_scalar_zeroize(r);
    let c = challenge(prev, contributor, base, new, commitment);
    let response = (c * tau) + r;
    Ok(Contribution {
        contributor,
        g1: new_g1,
        g2: new_g2,
        proof: KnowledgeProof {
            commitment: commitment.normalize(),
            response,
        },
    })
}

/// Checks `c` against the state it claims to build on and returns the state after it: lengths,
/// group membership of every element, the left-out element, the proof of knowledge, and the
/// powers structure (pairings batched with weights from `rng`, the verifier's own randomness).
pub fn verify_contribution(
    prev: &CrsState,
    c: &Contribution,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<CrsState, CeremonyError> {
    // The proof of knowledge first (two scalar multiplications): B^s = R · (B^τ)^c. It needs
    // only the new first element and the commitment checked; a contribution failing it costs
    // the verifier nothing more.
    let (Some(base), Some(new)) = (prev.g1.first(), c.g1.first()) else {
        return Err(CeremonyError::Degenerate("empty CRS"));
    };
    if !<G1 as CurveGroupOps<Zp>>::validate_affine(new) {
        return Err(CeremonyError::InvalidPoint {
            group: "G1",
            index: 0,
        });
    }
    if !<G1 as CurveGroupOps<Zp>>::validate_affine(&c.proof.commitment) {
        return Err(CeremonyError::BadProof);
    }
    let (base, new) = (g1(base), g1(new));
    let commitment = g1(&c.proof.commitment);
    let ch = challenge(prev, c.contributor, base, new, commitment);
    if base.mul_scalar(c.proof.response) != commitment + new.mul_scalar(ch) {
        return Err(CeremonyError::BadProof);
    }
    check_elements(&c.g1, &c.g2, prev.shape.n)?;
    check_pairings(&c.g1, &c.g2, prev.shape.n, rng)?;

    let bytes = c.to_bytes()?;
    Ok(CrsState {
        shape: prev.shape,
        session: prev.session,
        g1: c.g1.clone(),
        g2: c.g2.clone(),
        digest: next_digest(
            &prev.digest,
            c.contributor,
            &Sha3_256::digest(&bytes).into(),
        ),
    })
}

/// The transcript digest after a contribution by `contributor` whose canonical encoding has
/// SHA3-256 `contribution`, on top of a transcript with digest `prev`.
pub(crate) fn next_digest(prev: &[u8; 32], contributor: u32, contribution: &[u8; 32]) -> [u8; 32] {
    let mut d = Sha3_256::new();
    d.update(b"kms-crs-ceremony/v1/contribution");
    d.update(prev);
    d.update(contributor.to_be_bytes());
    d.update(contribution);
    d.finalize().into()
}

/// Checks the bytes a party received as party `from`'s contribution on top of `prev`: they
/// decode for the shape, are the canonical encoding (so their SHA3-256, which the KMS chain
/// orders, is the digest the transcript records), name `from` as the contributor, and pass
/// [`verify_contribution`]. Returns the state after it.
pub fn verify_contribution_bytes(
    prev: &CrsState,
    from: u32,
    bytes: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<CrsState, CeremonyError> {
    let c = Contribution::from_bytes(bytes, &prev.shape)?;
    if c.contributor != from {
        return Err(CeremonyError::WrongContributor {
            got: c.contributor,
            expected: from,
        });
    }
    if c.to_bytes()? != bytes {
        return Err(CeremonyError::Malformed(
            "not the canonical encoding".into(),
        ));
    }
    verify_contribution(prev, &c, rng)
}

/// Lengths, group membership of every element, and the identity exactly at the left-out power.
pub(crate) fn check_elements(
    g1s: &[G1Affine],
    g2s: &[G2Affine],
    n: usize,
) -> Result<(), CeremonyError> {
    if g1s.len() != 2 * n || g2s.len() != n || n == 0 {
        return Err(CeremonyError::WrongLength {
            g1: g1s.len(),
            g2: g2s.len(),
            want_g1: 2 * n,
            want_g2: n,
        });
    }
    // Group membership (on the curve, in the prime-order subgroup) of every element: the
    // costliest check, so in parallel; the first failure by position is reported.
    let zero = <G1 as CurveGroupOps<Zp>>::ZERO;
    let g1_fault = g1s.par_iter().enumerate().find_first(|(index, p)| {
        !<G1 as CurveGroupOps<Zp>>::validate_affine(p) || ((*index == n) != (g1(p) == zero))
    });
    if let Some((index, p)) = g1_fault {
        if !<G1 as CurveGroupOps<Zp>>::validate_affine(p) {
            return Err(CeremonyError::InvalidPoint { group: "G1", index });
        }
        // Only the (n+1)-th power is the identity, and it must be.
        return Err(CeremonyError::Degenerate(if index == n {
            "the left-out power is not the identity"
        } else {
            "a power is the identity"
        }));
    }
    let g2_fault = g2s.par_iter().enumerate().find_first(|(_, p)| {
        !<G2 as CurveGroupOps<Zp>>::validate_affine(p) || g2(p) == <G2 as CurveGroupOps<Zp>>::ZERO
    });
    if let Some((index, p)) = g2_fault {
        if !<G2 as CurveGroupOps<Zp>>::validate_affine(p) {
            return Err(CeremonyError::InvalidPoint { group: "G2", index });
        }
        return Err(CeremonyError::Degenerate("a power is the identity"));
    }
    Ok(())
}

/// The powers structure, by pairings batched with weights from `rng` (the verifier's own
/// randomness): the lists are the successive powers of one secret in both groups.
pub(crate) fn check_pairings(
    g1s: &[G1Affine],
    g2s: &[G2Affine],
    n: usize,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(), CeremonyError> {
    let (Some(new), Some(new_h)) = (g1s.first(), g2s.first()) else {
        return Err(CeremonyError::Degenerate("empty CRS"));
    };
    let (new, new_h) = (g1(new), g2(new_h));
    // The powers structure.
    let g = <G1 as CurveGroupOps<Zp>>::GENERATOR;
    let h = <G2 as CurveGroupOps<Zp>>::GENERATOR;
    if pairing(new, h) != pairing(g, new_h) {
        return Err(CeremonyError::NotPowers("first G1 and G2 powers differ"));
    }
    // Successive G1 powers, below and above the gap: e(g1[i+1], h) = e(g1[i], g2[0]).
    let (low, high) = g1s.split_at(n.min(g1s.len()));
    let high = high.get(1..).unwrap_or_default();
    let pairs: Vec<(&G1Affine, &G1Affine)> = low
        .iter()
        .zip(low.iter().skip(1))
        .chain(high.iter().zip(high.iter().skip(1)))
        .collect();
    if !pairs.is_empty() {
        let weights: Vec<Zp> = pairs.iter().map(|_| Zp::rand(rng)).collect();
        let lower: Vec<G1Affine> = pairs.iter().map(|(a, _)| **a).collect();
        let upper: Vec<G1Affine> = pairs.iter().map(|(_, b)| **b).collect();
        let lhs = <G1 as CurveGroupOps<Zp>>::multi_mul_scalar(&upper, &weights);
        let rhs = <G1 as CurveGroupOps<Zp>>::multi_mul_scalar(&lower, &weights);
        if pairing(lhs, h) != pairing(rhs, new_h) {
            return Err(CeremonyError::NotPowers("successive G1 powers"));
        }
    }
    // Across the gap: e(g1[n+1], h) = e(g1[n-1], g2[1]).
    if n >= 2 {
        let (Some(below), Some(above), Some(h2)) = (low.last(), high.first(), g2s.get(1)) else {
            return Err(CeremonyError::Degenerate("short CRS"));
        };
        if pairing(g1(above), h) != pairing(g1(below), g2(h2)) {
            return Err(CeremonyError::NotPowers("the powers across the gap"));
        }
    }
    // Successive G2 powers: e(g, g2[i+1]) = e(g1[0], g2[i]).
    if n >= 2 {
        let weights: Vec<Zp> = (1..n).map(|_| Zp::rand(rng)).collect();
        let lower: Vec<G2Affine> = g2s.iter().take(n - 1).copied().collect();
        let upper: Vec<G2Affine> = g2s.iter().skip(1).copied().collect();
        let lhs = <G2 as CurveGroupOps<Zp>>::multi_mul_scalar(&upper, &weights);
        let rhs = <G2 as CurveGroupOps<Zp>>::multi_mul_scalar(&lower, &weights);
        if pairing(g, lhs) != pairing(new, rhs) {
            return Err(CeremonyError::NotPowers("successive G2 powers"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CrsShape;
    use kms_types::{ParamSetName, RequestId};
    use rand_core::OsRng;

    /// Two contributions with known secrets: every power is the generator raised to the power
    /// of the product, computed here directly from the generator.
    #[test]
    fn the_secret_after_two_contributions_is_the_product_of_theirs() {
        // The protocol, not the size, is under test: a CRS of 12 powers.
        let shape = CrsShape {
            n: 12,
            ..CrsShape::for_request(ParamSetName::TestInsecure, 16).unwrap()
        };
        let start = CrsState::initial(shape, RequestId::derive("unit", b"product"));
        let (t1, t2, r) = (
            nonzero(&mut OsRng),
            nonzero(&mut OsRng),
            nonzero(&mut OsRng),
        );
        let c1 = contribute_with(&start, 1, &t1, &r).unwrap();
        let s1 = verify_contribution(&start, &c1, &mut OsRng).unwrap();
        let c2 = contribute_with(&s1, 2, &t2, &r).unwrap();
        let s2 = verify_contribution(&s1, &c2, &mut OsRng).unwrap();
        // The secrets' values, through tfhe-zk-pok's Zp · ZeroizeZp.
        let alpha = Zp::ONE * &t1 * &t2;
        let g = <G1 as CurveGroupOps<Zp>>::GENERATOR;
        let h = <G2 as CurveGroupOps<Zp>>::GENERATOR;
        let mut power = Zp::ONE;
        for i in 0..2 * shape.n {
            power = power * alpha;
            let want = if i == shape.n {
                <G1 as CurveGroupOps<Zp>>::ZERO
            } else {
                g.mul_scalar(power)
            };
            assert!(g1(&s2.g1[i]) == want, "G1 power {}", i + 1);
            if i < shape.n {
                assert!(g2(&s2.g2[i]) == h.mul_scalar(power), "G2 power {}", i + 1);
            }
        }
        assert_ne!(s1.digest, s2.digest);
    }
}
