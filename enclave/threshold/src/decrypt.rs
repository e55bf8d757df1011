//! Squashing, partial decryption with flooding, and robust combination.

use crate::{Share, SnsKeyShare};
use kms_algebra::prss::{binomial, Prss};
use kms_algebra::shamir::{robust_open, ShamirError};
use kms_engine::{deserialize_checked, ParamSetExt, Plaintext};
use kms_types::{FheType, ParamSetName, RequestId, TypedCiphertext};
use tfhe::conformance::ParameterSetConformant;
use tfhe::prelude::*;

/// Statistical security of the flooding, in bits.
pub const STAT_SECURITY: u32 = 40;

/// `log2` of the bound `B_sns` on the noise of a squashed ciphertext used for flooding.
///
/// It must be at least [`sns_noise_bound_log2`], the bound derived from tfhe-rs's noise formula
/// for the squashing PBS: σ = 2^64.63 on the default parameters (measured: 2^64.6), so
/// |e| < 2^68.36 except with probability 2^-128 per block. 69 is the next integer. With
/// Δ = 2^123 the correctness constraint `2·C(n,t)·2^40·B_sns < Δ/2` then allows C(n,t) up to
/// 2^11 (e.g. n = 13, t = 4); [`FloodingParams::for_param_set`] checks both conditions.
pub const B_SNS_LOG2: u32 = 69;

/// The per-block failure probability the noise bound is taken at: `2^-128`.
pub const NOISE_BOUND_KAPPA: f64 = 128.0;

/// `log2` of the standard deviation of a squashed block's noise (absolute, modulus 2^128).
///
/// Squashing key-switches the 64-bit ciphertext to the small LWE key, then bootstraps it with
/// the 128-bit (FFT-128) bootstrapping key; the output noise is that of the blind rotation alone
/// (the input noise only affects correctness of the modulus switch, which tfhe-rs sizes for
/// `p_fail ≤ 2^-128`). Its variance is tfhe-rs's own formula
/// `pbs_variance_132_bits_security_tuniform_fft_mul(n_lwe, k, N, β, ℓ, mantissa = 104, q = 2^128)`
/// (valid for keys encrypted at the minimal secure noise, which the TUniform(30) squashing key
/// is for k·N = 4096; the insecure test parameters have less noise, so the bound still holds).
pub fn sns_noise_std_log2(params: ParamSetName) -> Result<f64, ThresholdError> {
    use tfhe::core_crypto::commons::noise_formulas::lwe_programmable_bootstrap::pbs_variance_132_bits_security_tuniform_fft_mul;
    use tfhe::shortint::parameters::NoiseSquashingParameters;
    let NoiseSquashingParameters::Classic(sq) = params.noise_squashing_params() else {
        return Err(ThresholdError::Params(
            "multi-bit noise squashing is not supported".into(),
        ));
    };
    let input_lwe_dimension = params.block_params().lwe_dimension;
    let var = pbs_variance_132_bits_security_tuniform_fft_mul(
        input_lwe_dimension,
        sq.glwe_dimension,
        sq.polynomial_size,
        sq.decomp_base_log,
        sq.decomp_level_count,
        104.0,
        2f64.powi(128),
    );
    // Variance is relative to q²: σ = sqrt(var)·2^128.
    Ok(0.5 * var.0.log2() + 128.0)
}

/// `log2` of the bound on |e| of a squashed block that fails with probability at most
/// `2^-κ` (κ = [`NOISE_BOUND_KAPPA`]): `σ·z` with `z = sqrt(2·κ·ln 2)` (Gaussian tail
/// `P(|e| > zσ) ≤ 2·exp(−z²/2)`; the blind-rotation noise is a sum of thousands of independent
/// terms).
pub fn sns_noise_bound_log2(params: ParamSetName) -> Result<f64, ThresholdError> {
    let z = (2.0 * NOISE_BOUND_KAPPA * std::f64::consts::LN_2).sqrt();
    Ok(sns_noise_std_log2(params)? + z.log2())
}

/// Why threshold decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// Parameters violate a protocol constraint.
    #[error("parameters: {0}")]
    Params(String),
    /// The ciphertext is malformed or of another type.
    #[error("ciphertext: {0}")]
    Ciphertext(String),
    /// Opening refused (the opening rule: fewer than 2t + 1 received shares agree); the source
    /// names the missing parties and those whose shares were wrong.
    #[error("opening block {block}: {source}")]
    Open {
        /// Block index.
        block: usize,
        /// Why (typically [`ShamirError::InsufficientAgreement`]).
        source: ShamirError,
    },
    /// The opened value is not in `Z/2^128` (only possible with corrupt shares beyond the
    /// bound).
    #[error("opening block {block}: opened value is not in Z/2^128")]
    NotScalar {
        /// Block index.
        block: usize,
    },
    /// The key share is for another key than the request's.
    #[error("key share is for key {share_key}, the request is for key {request_key}")]
    WrongKey {
        /// The key the share belongs to.
        share_key: RequestId,
        /// The key the request names.
        request_key: RequestId,
    },
    /// The share held is of another epoch of the key's sharing than the request's (the share
    /// of that epoch was erased by a resharing, or has not been taken up yet).
    #[error("key share is of {held}, the request is served with {asked}")]
    WrongEpoch {
        /// The epoch of the share held.
        held: Box<kms_types::KeyEpoch>,
        /// The epoch the request was approved under.
        asked: Box<kms_types::KeyEpoch>,
    },
    /// The request ID was already served with other content (ciphertexts, client key): serving
    /// it again would open a second value under the same flooding masks.
    #[error("request {request_id} on key {key_id} was already served with other content")]
    RequestReplayed {
        /// The key.
        key_id: RequestId,
        /// The request.
        request_id: RequestId,
    },
    /// The served log's storage failed (nothing was served).
    #[error("served log: {0}")]
    Storage(String),
    /// User decryption: the envelopes available do not yet give 2t + 1 agreeing shares for a
    /// ciphertext. More envelopes (from the parties not named as bad) may complete it.
    #[error(
        "ciphertext {ciphertext}: need more shares ({agreeing} agree, {need} needed; missing \
         {missing:?}, rejected envelopes {rejected:?}, wrong shares {cheaters:?})"
    )]
    NeedMoreShares {
        /// Ciphertext index in the request.
        ciphertext: usize,
        /// Parties with no envelope.
        missing: Vec<usize>,
        /// Parties whose envelope did not parse or verify (counted as silent).
        rejected: Vec<usize>,
        /// Parties whose shares were found wrong.
        cheaters: Vec<usize>,
        /// Largest agreement found.
        agreeing: usize,
        /// Agreement required (2t + 1).
        need: usize,
    },
    /// Resharing stopped before the new shares were adopted; the old shares are kept.
    #[error("resharing aborted: {0}")]
    ReshareAborted(String),
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
    /// Number of parties.
    pub n: usize,
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
            n,
            t,
        })
    }
}

impl FloodingParams {
    /// [`FloodingParams::new`] for a parameter set, also checking that [`B_SNS_LOG2`] covers the
    /// noise bound derived for its squashing parameters. (The insecure test set has near-zero
    /// key noise, outside the formula's domain, and is not checked: its noise is far smaller.)
    pub fn for_param_set(
        params: ParamSetName,
        n: usize,
        t: usize,
        message_modulus: u64,
        carry_modulus: u64,
    ) -> Result<Self, ThresholdError> {
        if params == ParamSetName::TestInsecure {
            return Self::new(n, t, message_modulus, carry_modulus);
        }
        let derived = sns_noise_bound_log2(params)?;
        if derived > f64::from(B_SNS_LOG2) {
            return Err(ThresholdError::Params(format!(
                "squashed noise bound 2^{derived:.1} exceeds B_sns = 2^{B_SNS_LOG2}"
            )));
        }
        Self::new(n, t, message_modulus, carry_modulus)
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

/// What a flooding mask is bound to: the PRSS session of ciphertext `index` of a request.
///
/// Every mask is derived from `(kind, key ID, request ID, ciphertext index, ciphertext digest)`
/// and the block index (the PRSS counter), so two openings never share a mask unless all of
/// these are equal, i.e. the same ciphertext of the same request on the same key, whose
/// partial decryptions are then identical (deterministic squashing and masks) and reveal
/// nothing new. A request ID re-sent with other ciphertexts gets other masks (and is refused by
/// [`crate::ServedLog`] anyway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptionSession {
    /// Protocol kind (public or user decryption), a fixed domain-separation string.
    pub kind: &'static str,
    /// The key the request names (checked against the key share's).
    pub key_id: RequestId,
    /// The request.
    pub request_id: RequestId,
    /// Index of the ciphertext in the request.
    pub index: usize,
    /// SHA3-256 of the ciphertext ([`TypedCiphertext::digest`]).
    pub ciphertext_digest: [u8; 32],
}

impl DecryptionSession {
    /// Session kind of public decryption.
    pub const PUBLIC: &'static str = "kms/public-decrypt/v2";
    /// Session kind of user decryption.
    pub const USER: &'static str = "kms/user-decrypt-share/v2";

    /// The session bytes (PRSS session ID and transport session): `u64 len(kind) ‖ kind ‖
    /// key ID ‖ request ID ‖ u64 index ‖ ciphertext digest` (big-endian lengths and index).
    pub fn id(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(self.kind.len() + 8 + 20 + 20 + 8 + 32);
        s.extend_from_slice(&(self.kind.len() as u64).to_be_bytes());
        s.extend_from_slice(self.kind.as_bytes());
        s.extend_from_slice(self.key_id.as_bytes());
        s.extend_from_slice(self.request_id.as_bytes());
        s.extend_from_slice(&(self.index as u64).to_be_bytes());
        s.extend_from_slice(&self.ciphertext_digest);
        s
    }
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

/// A party's flooded partial decryption of each block: `b − Σ a_j·[s_j] + [r]`, the mask `[r]`
/// of block `k` being the PRSS mask of session `session.id()`, counter `k`. Refuses a key share
/// of another key than the session's.
pub fn partial_decrypt(
    key: &SnsKeyShare,
    prss: &Prss<u128, 4>,
    fp: &FloodingParams,
    session: &DecryptionSession,
    ct: &SquashedCiphertext,
) -> Result<Vec<Share>, ThresholdError> {
    if key.key_id != session.key_id {
        return Err(ThresholdError::WrongKey {
            share_key: key.key_id,
            request_key: session.key_id,
        });
    }
    let session = session.id();
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
            Ok(acc.add(&prss.mask(&session, k as u64, fp.mask_bits)))
        })
        .collect()
}

/// Sets bit `bit` of a 256-bit little-endian limb array (no-op beyond 256 bits).
fn set_bit(limbs: &mut [u64; 4], bit: u32) {
    if let Some(l) = limbs.get_mut((bit / 64) as usize) {
        *l |= 1 << (bit % 64);
    }
}

/// Combines the partial decryptions received from all parties (`received[i]` from party
/// `i + 1`; `None` if silent or malformed): robust opening per block under the opening rule
/// (at least 2t + 1 agreeing shares, else [`ThresholdError::Open`] naming the missing parties),
/// rounding, recomposition. Returns the plaintext and the parties whose shares were wrong.
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
                    .filter(|v| v.len() == ct.blocks)
                    .and_then(|v| v.get(k).copied())
            })
            .collect();
        let opened = robust_open(&shares, fp.t)
            .map_err(|source| ThresholdError::Open { block: k, source })?;
        if !opened.value.is_scalar() {
            return Err(ThresholdError::NotScalar { block: k });
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
                set_bit(&mut limbs, bit);
            }
            bit += 1;
        }
    }
    let negative = ct.fhe_type.is_signed() && ct.value_bits > 0 && {
        let top = ct.value_bits - 1;
        limbs
            .get((top / 64) as usize)
            .is_some_and(|l| (l >> (top % 64)) & 1 == 1)
    };
    if negative {
        for b in ct.value_bits..256 {
            set_bit(&mut limbs, b);
        }
    }
    // Big-endian word: limb 3 first.
    let mut word = [0u8; 32];
    for (chunk, l) in word.chunks_exact_mut(8).zip(limbs.iter().rev()) {
        chunk.copy_from_slice(&l.to_be_bytes());
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
