//! Squashing, partial decryption with flooding, and robust combination.

use crate::{Share, SnsKeyShare};
use kms_algebra::prss::{binomial, Prss};
use kms_algebra::shamir::robust_open;
use kms_engine::{deserialize_checked, ParamSetExt, Plaintext};
use kms_types::{FheType, ParamSetName, TypedCiphertext};
use tfhe::conformance::ParameterSetConformant;
use tfhe::prelude::*;

/// Statistical security of the flooding, in bits.
pub const STAT_SECURITY: u32 = 40;

/// `log2` of the bound `B_sns` on the noise of a squashed ciphertext for the default parameters
/// (`NOISE_SQUASHING_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`).
///
/// **Provisional**: set from measurement (`squashed_noise_is_within_the_bound` measures the
/// largest |e| over fresh squashed ciphertexts, observed below 2^67) plus a margin of 2^8 for
/// the tail, not from tfhe-rs's noise formulas. Replacing it with the analytic bound of the
/// squashing parameters is tracked in the threshold issue.
pub const B_SNS_LOG2: u32 = 75;

/// Why threshold decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// Parameters violate a protocol constraint.
    #[error("parameters: {0}")]
    Params(String),
    /// The ciphertext is malformed or of another type.
    #[error("ciphertext: {0}")]
    Ciphertext(String),
    /// Opening failed (too many wrong or missing shares).
    #[error("opening block {block}: {reason}")]
    Open {
        /// Block index.
        block: usize,
        /// Why.
        reason: String,
    },
}

/// Noise-flooding parameters for `n` parties, threshold `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodingParams {
    /// Each PRF output is uniform in `[−2^(mask_bits−1), 2^(mask_bits−1))`.
    pub mask_bits: u32,
    /// `log2 Δ`.
    pub delta_log2: u32,
    /// Cleartext space of a squashed block (message × carry).
    pub cleartext_space: u64,
    /// Message modulus of the original blocks.
    pub message_modulus: u64,
    /// Threshold.
    pub t: usize,
}

impl FloodingParams {
    /// Checks `2·C(n,t)·2^stat·B_sns < Δ/2` and derives the mask width `2^stat·B_sns`.
    pub fn new(
        n: usize,
        t: usize,
        message_modulus: u64,
        carry_modulus: u64,
    ) -> Result<Self, ThresholdError> {
        let space = message_modulus * carry_modulus;
        if !space.is_power_of_two() || space < 2 {
            return Err(ThresholdError::Params(
                "cleartext space must be a power of two".into(),
            ));
        }
        // One padding bit.
        let delta_log2 = 128 - 1 - space.ilog2();
        let c = binomial(n, t);
        let c_log2 = 128 - (c.max(1) - 1).leading_zeros(); // ceil(log2 C)
        let lhs_log2 = 1 + c_log2 + STAT_SECURITY + B_SNS_LOG2;
        if lhs_log2 >= delta_log2 - 1 {
            return Err(ThresholdError::Params(format!(
                "flooding does not fit: 2·C({n},{t})·2^{STAT_SECURITY}·2^{B_SNS_LOG2} = 2^{lhs_log2} ≥ Δ/2 = 2^{}",
                delta_log2 - 1
            )));
        }
        Ok(Self {
            mask_bits: STAT_SECURITY + B_SNS_LOG2,
            delta_log2,
            cleartext_space: space,
            message_modulus,
            t,
        })
    }
}

/// How a ciphertext's squashed blocks recompose into its value; known from its type alone, so a
/// user-decryption client can combine shares without the ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// The type.
    pub fhe_type: FheType,
    /// Packed blocks.
    pub blocks: usize,
    /// Plaintext bits of each packed block.
    pub bits_per_block: u32,
    /// Plaintext bits of the value.
    pub value_bits: u32,
}

impl BlockLayout {
    /// The layout tfhe-rs's squashing produces for `fhe_type` with blocks of `message_modulus`
    /// (two original blocks packed into one squashed block).
    pub fn for_type(fhe_type: FheType, message_modulus: u64) -> Self {
        if fhe_type == FheType::Bool {
            return Self {
                fhe_type,
                blocks: 1,
                bits_per_block: 1,
                value_bits: 1,
            };
        }
        let per_block = message_modulus.max(2).ilog2();
        let original = fhe_type.bits().div_ceil(per_block) as usize;
        Self {
            fhe_type,
            blocks: original.div_ceil(2),
            bits_per_block: 2 * per_block,
            value_bits: fhe_type.bits(),
        }
    }
}

/// The session ID of ciphertext `index` of a request: PRSS masks are never reused across
/// requests, kinds or ciphertexts.
pub fn session_id(kind: &str, request_id: &kms_types::RequestId, index: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(kind.len() + 28);
    s.extend_from_slice(kind.as_bytes());
    s.extend_from_slice(request_id.as_bytes());
    s.extend_from_slice(&(index as u64).to_be_bytes());
    s
}

/// A noise-squashed ciphertext: 128-bit LWE blocks and how to recompose them.
#[derive(Clone, Debug)]
pub struct SquashedCiphertext {
    /// The type.
    pub fhe_type: FheType,
    /// `(mask, body)` of each packed block.
    pub blocks: Vec<(Vec<u128>, u128)>,
    /// Plaintext bits of each packed block.
    pub bits_per_block: u32,
    /// Plaintext bits of the value.
    pub value_bits: u32,
    /// Message modulus of the blocks.
    pub message_modulus: u64,
    /// Carry modulus of the blocks.
    pub carry_modulus: u64,
}

impl SquashedCiphertext {
    /// Its layout.
    pub fn layout(&self) -> BlockLayout {
        BlockLayout {
            fhe_type: self.fhe_type,
            blocks: self.blocks.len(),
            bits_per_block: self.bits_per_block,
            value_bits: self.value_bits,
        }
    }
}

fn blocks_of(bs: &[tfhe::shortint::ciphertext::SquashedNoiseCiphertext]) -> Vec<(Vec<u128>, u128)> {
    bs.iter()
        .map(|b| {
            let lwe = b.lwe_ciphertext();
            (lwe.get_mask().as_ref().to_vec(), *lwe.get_body().data)
        })
        .collect()
}

macro_rules! squash_radix {
    ($ty:ty, $bytes:expr, $params:expr, $ft:expr) => {{
        let conf = <$ty as ParameterSetConformant>::ParameterSet::from($params.block_params());
        let ct: $ty = deserialize_checked($bytes, &conf).map_err(ThresholdError::Ciphertext)?;
        let sq = ct
            .squash_noise()
            .map_err(|e| ThresholdError::Ciphertext(e.to_string()))?;
        let inner = sq.underlying_squashed_noise_ciphertext();
        let pb = inner.packed_blocks();
        let (mm, cm) = pb
            .first()
            .map(|b| (b.message_modulus().0, b.carry_modulus().0))
            .ok_or_else(|| ThresholdError::Ciphertext("no blocks".into()))?;
        SquashedCiphertext {
            fhe_type: $ft,
            blocks: blocks_of(pb),
            bits_per_block: (mm * mm).ilog2(),
            value_bits: mm.ilog2() * inner.original_block_count() as u32,
            message_modulus: mm,
            carry_modulus: cm,
        }
    }};
}

/// Deserializes (strictly) and squashes a ciphertext. Needs the server key (with its
/// noise-squashing key) set with `tfhe::set_server_key` on this thread. Deterministic: every
/// party gets the same blocks.
pub fn squash(
    ct: &TypedCiphertext,
    params: ParamSetName,
) -> Result<SquashedCiphertext, ThresholdError> {
    let b = ct.bytes.as_slice();
    let t = ct.fhe_type;
    Ok(match t {
        FheType::Bool => {
            let conf = tfhe::FheBoolConformanceParams::from(params.block_params());
            let c: tfhe::FheBool =
                deserialize_checked(b, &conf).map_err(ThresholdError::Ciphertext)?;
            let sq = c
                .squash_noise()
                .map_err(|e| ThresholdError::Ciphertext(e.to_string()))?;
            let inner = sq.underlying_squashed_noise_ciphertext();
            let blk = inner.packed_blocks();
            SquashedCiphertext {
                fhe_type: t,
                blocks: blocks_of(std::slice::from_ref(blk)),
                bits_per_block: 1,
                value_bits: 1,
                message_modulus: blk.message_modulus().0,
                carry_modulus: blk.carry_modulus().0,
            }
        }
        FheType::Uint4 => squash_radix!(tfhe::FheUint4, b, params, t),
        FheType::Uint8 => squash_radix!(tfhe::FheUint8, b, params, t),
        FheType::Uint16 => squash_radix!(tfhe::FheUint16, b, params, t),
        FheType::Uint32 => squash_radix!(tfhe::FheUint32, b, params, t),
        FheType::Uint64 => squash_radix!(tfhe::FheUint64, b, params, t),
        FheType::Uint128 => squash_radix!(tfhe::FheUint128, b, params, t),
        FheType::Uint160 => squash_radix!(tfhe::FheUint160, b, params, t),
        FheType::Uint256 => squash_radix!(tfhe::FheUint256, b, params, t),
        FheType::Int8 => squash_radix!(tfhe::FheInt8, b, params, t),
        FheType::Int16 => squash_radix!(tfhe::FheInt16, b, params, t),
        FheType::Int32 => squash_radix!(tfhe::FheInt32, b, params, t),
        FheType::Int64 => squash_radix!(tfhe::FheInt64, b, params, t),
        FheType::Int128 => squash_radix!(tfhe::FheInt128, b, params, t),
        FheType::Int160 => squash_radix!(tfhe::FheInt160, b, params, t),
        FheType::Int256 => squash_radix!(tfhe::FheInt256, b, params, t),
    })
}

/// A party's flooded partial decryption of each block: `b − Σ a_j·[s_j] + [r]`.
pub fn partial_decrypt(
    key: &SnsKeyShare,
    prss: &Prss<u128, 4>,
    fp: &FloodingParams,
    session: &[u8],
    ct: &SquashedCiphertext,
) -> Result<Vec<Share>, ThresholdError> {
    ct.blocks
        .iter()
        .enumerate()
        .map(|(k, (mask, body))| {
            if mask.len() != key.key.len() {
                return Err(ThresholdError::Ciphertext(format!(
                    "LWE dimension {} does not match the key share's {}",
                    mask.len(),
                    key.key.len()
                )));
            }
            let mut acc = Share::from_scalar(*body);
            for (a, s) in mask.iter().zip(&key.key) {
                acc = acc.sub(&s.scale(*a));
            }
            Ok(acc.add(&prss.mask(session, k as u64, fp.mask_bits)))
        })
        .collect()
}

/// Combines the partial decryptions received from all parties (`received[i]` from party
/// `i + 1`; `None` if silent or malformed): robust opening per block, rounding, recomposition.
/// Returns the plaintext and the parties whose shares were wrong.
pub fn combine(
    received: &[Option<Vec<Share>>],
    fp: &FloodingParams,
    ct: &BlockLayout,
) -> Result<(Plaintext, Vec<usize>), ThresholdError> {
    let mut cheaters: Vec<usize> = Vec::new();
    let mut limbs = [0u64; 4];
    let mut bit = 0u32;
    for k in 0..ct.blocks {
        let shares: Vec<Option<Share>> = received
            .iter()
            .map(|r| {
                r.as_ref()
                    .and_then(|v| (v.len() == ct.blocks).then(|| v[k]))
            })
            .collect();
        let opened = robust_open(&shares, fp.t).map_err(|e| ThresholdError::Open {
            block: k,
            reason: e.to_string(),
        })?;
        if !opened.value.is_scalar() {
            return Err(ThresholdError::Open {
                block: k,
                reason: "opened value is not in Z/2^128".into(),
            });
        }
        for c in opened.cheaters {
            if !cheaters.contains(&c) {
                cheaters.push(c);
            }
        }
        let v = opened.value.scalar();
        let half = 1u128 << (fp.delta_log2 - 1);
        let m = (v.wrapping_add(half) >> fp.delta_log2) as u64 & (fp.cleartext_space - 1);
        let m = m & ((1u64 << ct.bits_per_block) - 1);
        for j in 0..ct.bits_per_block {
            if bit >= ct.value_bits {
                break;
            }
            if (m >> j) & 1 == 1 {
                limbs[(bit / 64) as usize] |= 1 << (bit % 64);
            }
            bit += 1;
        }
    }
    let negative = ct.fhe_type.is_signed() && ct.value_bits > 0 && {
        let top = ct.value_bits - 1;
        (limbs[(top / 64) as usize] >> (top % 64)) & 1 == 1
    };
    if negative {
        for b in ct.value_bits..256 {
            limbs[(b / 64) as usize] |= 1 << (b % 64);
        }
    }
    let mut word = [0u8; 32];
    for (i, l) in limbs.iter().enumerate() {
        word[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&l.to_be_bytes());
    }
    cheaters.sort_unstable();
    Ok((
        Plaintext {
            fhe_type: ct.fhe_type,
            word,
        },
        cheaters,
    ))
}
