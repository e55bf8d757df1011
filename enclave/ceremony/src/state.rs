//! The ceremony's running state: the current powers and the transcript digest.

use crate::{CeremonyError, CrsShape};
use kms_types::RequestId;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::{Digest, Sha3_256, Shake256};
use tfhe::zk::CompactPkeCrs;
use tfhe_zk_pok::curve_api::bls12_446::{G1Affine, G2Affine, G1, G2};
use tfhe_zk_pok::curve_api::CurveGroupOps;
use tfhe_zk_pok::proofs::pke_v2::PublicParams;
use tfhe_zk_pok::proofs::HASH_DS_LEN_BYTES;

/// One accepted contribution as the transcript records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The contributing party.
    pub contributor: u32,
    /// SHA3-256 of the contribution's canonical encoding.
    pub digest: [u8; 32],
}

/// The powers after the contributions accepted so far, and the digest of the transcript that
/// led to them (the session, the shape, and every accepted contribution in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrsState {
    pub(crate) shape: CrsShape,
    pub(crate) session: RequestId,
    pub(crate) g1: Vec<G1Affine>,
    pub(crate) g2: Vec<G2Affine>,
    pub(crate) digest: [u8; 32],
}

impl CrsState {
    /// The publicly known start: `α = 1`, every element a generator (the (n+1)-th G1 element
    /// the identity).
    pub fn initial(shape: CrsShape, session: RequestId) -> Self {
        let g = <G1 as CurveGroupOps<_>>::GENERATOR.normalize();
        let zero = <G1 as CurveGroupOps<_>>::ZERO.normalize();
        let h = <G2 as CurveGroupOps<_>>::GENERATOR.normalize();
        let g1 = (0..2 * shape.n)
            .map(|i| if i == shape.n { zero } else { g })
            .collect();
        let g2 = vec![h; shape.n];
        let mut d = Sha3_256::new();
        Digest::update(&mut d, b"kms-crs-ceremony/v1/initial");
        Digest::update(&mut d, session.as_bytes());
        Digest::update(&mut d, shape.transcript_bytes());
        Self {
            shape,
            session,
            g1,
            g2,
            digest: d.finalize().into(),
        }
    }

    /// The state after the contributions `accepted` (in order), the last of which has the
    /// encoding `last`: what a party resumes from when it trusts an agreement on which
    /// contributions were accepted (on the KMS chain: `2t + 1` parties, so at least `t + 1`
    /// honest ones, each checked the contribution on top of the one before). The transcript
    /// digest is recomputed from the list; the powers are `last`'s, whose SHA3-256 must be the
    /// last accepted digest and which must be the canonical encoding of a contribution by the
    /// last accepted contributor with this shape's lengths. The powers themselves are not
    /// re-checked here ([`Self::check_powers`] does that, at the cost of a verification).
    pub fn resume(
        shape: CrsShape,
        session: RequestId,
        accepted: &[Accepted],
        last: Option<&[u8]>,
    ) -> Result<Self, CeremonyError> {
        let mut state = Self::initial(shape, session);
        for a in accepted {
            state.digest =
                crate::contribution::next_digest(&state.digest, a.contributor, &a.digest);
        }
        match (accepted.last(), last) {
            (None, None) => Ok(state),
            (Some(a), Some(bytes)) => {
                if <[u8; 32]>::from(Sha3_256::digest(bytes)) != a.digest {
                    return Err(CeremonyError::Malformed(
                        "the bytes are not the last accepted contribution".into(),
                    ));
                }
                let c = crate::Contribution::from_bytes(bytes, &shape)?;
                if c.contributor != a.contributor {
                    return Err(CeremonyError::WrongContributor {
                        got: c.contributor,
                        expected: a.contributor,
                    });
                }
                if c.g1.len() != 2 * shape.n || c.g2.len() != shape.n {
                    return Err(CeremonyError::WrongLength {
                        g1: c.g1.len(),
                        g2: c.g2.len(),
                        want_g1: 2 * shape.n,
                        want_g2: shape.n,
                    });
                }
                state.g1 = c.g1;
                state.g2 = c.g2;
                Ok(state)
            }
            (None, Some(_)) => Err(CeremonyError::Malformed(
                "contribution bytes given, none accepted".into(),
            )),
            (Some(_), None) => Err(CeremonyError::Malformed(
                "the last accepted contribution's bytes are missing".into(),
            )),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &CrsShape {
        &self.shape
    }

    /// The session (the CRS generation request's ID).
    pub fn session(&self) -> RequestId {
        self.session
    }

    /// The transcript digest so far.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The first G1 power, `g^α`.
    pub fn first_g1(&self) -> Option<G1Affine> {
        self.g1.first().copied()
    }

    /// Checks the powers themselves (group membership, the left-out power, and the pairing
    /// equations, batched with weights from `rng`): what a party restoring a stored state, or an
    /// auditor holding only the end state, can check without the transcript.
    pub fn check_powers(
        &self,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> Result<(), CeremonyError> {
        crate::contribution::check_elements(&self.g1, &self.g2, self.shape.n)?;
        crate::contribution::check_pairings(&self.g1, &self.g2, self.shape.n, rng)
    }

    /// Assembles tfhe's CRS from the current powers, with a session ID and domain separators
    /// derived from the transcript digest, and checks it with tfhe's own `is_usable`.
    pub fn to_crs(&self) -> Result<CompactPkeCrs, CeremonyError> {
        let mut xof = Shake256::default();
        xof.update(b"kms-crs-ceremony/v1/domain-separators");
        xof.update(&self.digest);
        let mut reader = xof.finalize_xof();
        let mut sid = [0u8; 16];
        reader.read(&mut sid);
        let mut ds = [[0u8; HASH_DS_LEN_BYTES]; 11];
        for d in &mut ds {
            reader.read(d);
        }
        let [hash, hash_r, hash_t, hash_w, hash_agg, hash_lmap, hash_phi, hash_xi, hash_z, hash_chi, hash_gamma] =
            ds;
        let s = &self.shape;
        // tfhe's size computation asserts these; a shape not from `for_request` gets an error.
        let b_squared = crate::shape::euclidean_bound_squared(s.b_inf, s.d, s.k);
        if s.k > s.d || b_squared.is_none() || s.t >> s.msbs_zero_padding_bit_count.min(63) == 0 {
            return Err(CeremonyError::Unusable);
        }
        let pp = PublicParams::<tfhe_zk_pok::curve_api::Bls12_446>::from_vec(
            self.g1.clone(),
            self.g2.clone(),
            s.d,
            s.k,
            s.b_inf,
            s.q,
            s.t,
            s.msbs_zero_padding_bit_count,
            s.bound.into(),
            u128::from_be_bytes(sid),
            hash,
            hash_r,
            hash_t,
            hash_w,
            hash_agg,
            hash_lmap,
            hash_phi,
            hash_xi,
            hash_z,
            hash_chi,
            hash_gamma,
        );
        if pp.n != s.n || !pp.is_usable() {
            return Err(CeremonyError::Unusable);
        }
        Ok(CompactPkeCrs::PkeV2(pp))
    }
}
