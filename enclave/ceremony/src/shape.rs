//! The public sizes of a CRS: what every party recomputes from the request before the ceremony.

use crate::CeremonyError;
use kms_types::ParamSetName;
use tfhe::core_crypto::prelude::LweCiphertextCount;
use tfhe::shortint::parameters::SupportedCompactPkeZkScheme;
use tfhe::zk::{CompactPkeCrs, CompactPkeZkScheme};
use tfhe_zk_pok::proofs::pke_v2::{compute_crs_params, Bound};

/// The public sizes of a PKE-v2 CRS, exactly as tfhe computes them for a parameter set and a
/// maximum number of proven bits. Two parties with the same request get the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrsShape {
    /// Number of powers: the CRS holds `2n` G1 and `n` G2 elements.
    pub n: usize,
    /// LWE dimension of the compact public key.
    pub d: usize,
    /// Maximum number of messages in one proven list.
    pub k: usize,
    /// Noise bound (infinity norm).
    pub b_inf: u64,
    /// Ciphertext modulus (0 for 2^64).
    pub q: u64,
    /// Plaintext modulus.
    pub t: u64,
    /// Most significant bits proven zero.
    pub msbs_zero_padding_bit_count: u64,
    /// The bound tfhe proves against.
    pub bound: ProofBound,
}

/// Which norm bound tfhe's proof uses (tfhe's `Bound`, which is not `Eq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofBound {
    /// The heuristic bound of the paper's lemma 2.
    Ghl,
    /// The Cauchy–Schwarz bound (what tfhe generates).
    Cs,
}

impl From<ProofBound> for Bound {
    fn from(b: ProofBound) -> Self {
        match b {
            ProofBound::Ghl => Bound::GHL,
            ProofBound::Cs => Bound::CS,
        }
    }
}

impl CrsShape {
    /// The shape of the CRS tfhe generates for `params` and `max_num_bits`: the same
    /// derivation as tfhe's `CompactPkeCrs::from_config` (through its public
    /// `prepare_crs_parameters` and `compute_crs_params`), without generating one. The tests
    /// compare it with a CRS tfhe generated.
    pub fn for_request(params: ParamSetName, max_num_bits: u32) -> Result<Self, CeremonyError> {
        let unsupported = |m: String| CeremonyError::Unsupported(m);
        if max_num_bits == 0 || max_num_bits > kms_engine::MAX_CRS_BITS {
            return Err(unsupported(format!(
                "max_num_bits must be in 1..={}, got {max_num_bits}",
                kms_engine::MAX_CRS_BITS
            )));
        }
        kms_engine::require_available(params).map_err(|e| unsupported(e.to_string()))?;
        let pke = kms_engine::compact_pke_params(params);
        if pke.zk_scheme != SupportedCompactPkeZkScheme::V2 {
            return Err(unsupported(
                "the parameters do not use PKE v2 proofs".into(),
            ));
        }
        let message_and_carry = pke.message_modulus.0 * pke.carry_modulus.0;
        if pke.carry_modulus.0 < pke.message_modulus.0 || message_and_carry < 2 {
            return Err(unsupported(
                "packing needs carry modulus ≥ message modulus".into(),
            ));
        }
        let bits_per_message = message_and_carry.ilog2() as usize;
        let max_num_message = (max_num_bits as usize).div_ceil(bits_per_message);
        // One padding bit on top of message and carry; one most significant bit proven zero.
        let (d, k, b_inf, q, t) = CompactPkeCrs::prepare_crs_parameters(
            pke.encryption_lwe_dimension,
            LweCiphertextCount(max_num_message),
            pke.encryption_noise_distribution,
            pke.ciphertext_modulus,
            message_and_carry * 2,
            CompactPkeZkScheme::V2,
        )
        .map_err(|e| unsupported(e.to_string()))?;
        let msbs_zero_padding_bit_count = 1;
        let (d, k) = (d.0, k.0);
        let b_squared = euclidean_bound_squared(b_inf, d, k)
            .ok_or_else(|| unsupported("noise bound overflows".into()))?;
        let (n, _, _, _) =
            compute_crs_params(d, k, b_squared, t, msbs_zero_padding_bit_count, Bound::CS);
        Ok(Self {
            n,
            d,
            k,
            b_inf,
            q,
            t,
            msbs_zero_padding_bit_count,
            bound: ProofBound::Cs,
        })
    }

    /// Bytes that identify the shape in the transcript.
    pub(crate) fn transcript_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for v in [self.n as u64, self.d as u64, self.k as u64] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.b_inf, self.q, self.t, self.msbs_zero_padding_bit_count] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.push(match self.bound {
            ProofBound::Ghl => 0,
            ProofBound::Cs => 1,
        });
        out
    }
}

/// The squared Euclidean bound tfhe derives from the infinity-norm bound over `d + k`
/// coefficients (`B_inf² · (d + k)`), or `None` where it overflows (tfhe would panic).
pub(crate) fn euclidean_bound_squared(b_inf: u64, d: usize, k: usize) -> Option<u128> {
    u128::from(b_inf)
        .checked_mul(u128::from(b_inf))
        .and_then(|s| s.checked_mul((d as u128).checked_add(k as u128)?))
}
