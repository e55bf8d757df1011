//! Client-side encryption with the published public key.

use kms_engine::tfhe::prelude::*;
use kms_engine::tfhe::safe_serialization::safe_serialize;
use kms_engine::tfhe::{self, CompactCiphertextList, CompactPublicKey};
use kms_types::{FheType, TypedCiphertext};

/// A clear value to encrypt; it must fit the target type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearValue {
    /// For `FheBool`.
    Bool(bool),
    /// For unsigned types up to 128 bits.
    Unsigned(u128),
    /// For signed types up to 128 bits.
    Signed(i128),
}

/// Why a value could not be encrypted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    /// The value does not fit the type.
    #[error("{value:?} does not fit {fhe_type}")]
    OutOfRange {
        /// Target type.
        fhe_type: FheType,
        /// The value.
        value: ClearValue,
    },
    /// tfhe-rs failed.
    #[error("tfhe-rs: {0}")]
    Tfhe(String),
}

fn fits(t: FheType, v: ClearValue) -> bool {
    let bits = t.bits();
    match (t, v) {
        (FheType::Bool, ClearValue::Bool(_)) => true,
        (FheType::Bool, _) | (_, ClearValue::Bool(_)) => false,
        (t, ClearValue::Unsigned(u)) if !t.is_signed() => bits >= 128 || u < (1u128 << bits),
        (_, ClearValue::Unsigned(u)) => bits > 128 || u < (1u128 << (bits - 1)),
        (t, ClearValue::Signed(s)) if t.is_signed() => {
            bits >= 128 || (s >= -(1i128 << (bits - 1)) && s < (1i128 << (bits - 1)))
        }
        (_, ClearValue::Signed(s)) => s >= 0 && (bits >= 128 || (s as u128) < (1u128 << bits)),
    }
}

macro_rules! expand_as {
    ($expanded:expr, $ty:ty) => {{
        let ct: $ty = $expanded
            .get::<$ty>(0)
            .map_err(|e| EncryptError::Tfhe(e.to_string()))?
            .ok_or_else(|| EncryptError::Tfhe("empty list".into()))?;
        let mut out = Vec::new();
        safe_serialize(&ct, &mut out, 1 << 30).map_err(|e| EncryptError::Tfhe(e.to_string()))?;
        out
    }};
}

/// Encrypts `value` as `fhe_type` under the compact public key, expanded into the regular
/// ciphertext type (this needs the server key to be set with `tfhe::set_server_key` when the
/// key set uses dedicated public-key parameters). Returns the safe-serialized ciphertext.
pub fn encrypt_value(
    pk: &CompactPublicKey,
    fhe_type: FheType,
    value: ClearValue,
) -> Result<TypedCiphertext, EncryptError> {
    if !fits(fhe_type, value) {
        return Err(EncryptError::OutOfRange { fhe_type, value });
    }
    let mut b = CompactCiphertextList::builder(pk);
    match (fhe_type, value) {
        (FheType::Bool, ClearValue::Bool(v)) => {
            b.push(v);
        }
        (t, v) => {
            let bits = t.bits() as usize;
            // Pushed as 256-bit values so every width, 160 and 256 included, takes one path.
            let r = if t.is_signed() {
                let s = match v {
                    ClearValue::Signed(s) => s,
                    ClearValue::Unsigned(u) => u as i128, // fits() bounded it below 2^(bits-1)
                    ClearValue::Bool(_) => {
                        return Err(EncryptError::OutOfRange { fhe_type, value })
                    }
                };
                let hi = if s < 0 { u128::MAX } else { 0 };
                b.push_with_num_bits(tfhe::integer::I256::from((s as u128, hi)), bits)
            } else {
                let u = match v {
                    ClearValue::Unsigned(u) => u,
                    ClearValue::Signed(s) => s as u128, // fits() checked s >= 0
                    ClearValue::Bool(_) => {
                        return Err(EncryptError::OutOfRange { fhe_type, value })
                    }
                };
                b.push_with_num_bits(tfhe::integer::U256::from((u, 0u128)), bits)
            };
            r.map_err(|e| EncryptError::Tfhe(e.to_string()))?;
        }
    }
    let list = b.build();
    let expanded = list
        .expand()
        .map_err(|e| EncryptError::Tfhe(e.to_string()))?;
    let bytes = match fhe_type {
        FheType::Bool => expand_as!(expanded, tfhe::FheBool),
        FheType::Uint4 => expand_as!(expanded, tfhe::FheUint4),
        FheType::Uint8 => expand_as!(expanded, tfhe::FheUint8),
        FheType::Uint16 => expand_as!(expanded, tfhe::FheUint16),
        FheType::Uint32 => expand_as!(expanded, tfhe::FheUint32),
        FheType::Uint64 => expand_as!(expanded, tfhe::FheUint64),
        FheType::Uint128 => expand_as!(expanded, tfhe::FheUint128),
        FheType::Uint160 => expand_as!(expanded, tfhe::FheUint160),
        FheType::Uint256 => expand_as!(expanded, tfhe::FheUint256),
        FheType::Int8 => expand_as!(expanded, tfhe::FheInt8),
        FheType::Int16 => expand_as!(expanded, tfhe::FheInt16),
        FheType::Int32 => expand_as!(expanded, tfhe::FheInt32),
        FheType::Int64 => expand_as!(expanded, tfhe::FheInt64),
        FheType::Int128 => expand_as!(expanded, tfhe::FheInt128),
        FheType::Int160 => expand_as!(expanded, tfhe::FheInt160),
        FheType::Int256 => expand_as!(expanded, tfhe::FheInt256),
    };
    Ok(TypedCiphertext { fhe_type, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_checks() {
        assert!(fits(FheType::Uint8, ClearValue::Unsigned(255)));
        assert!(!fits(FheType::Uint8, ClearValue::Unsigned(256)));
        assert!(fits(FheType::Int8, ClearValue::Signed(-128)));
        assert!(!fits(FheType::Int8, ClearValue::Signed(128)));
        assert!(!fits(FheType::Uint8, ClearValue::Signed(-1)));
        assert!(!fits(FheType::Bool, ClearValue::Unsigned(1)));
        assert!(fits(FheType::Uint256, ClearValue::Unsigned(u128::MAX)));
        assert!(fits(FheType::Int256, ClearValue::Signed(i128::MIN)));
        assert!(fits(FheType::Int8, ClearValue::Unsigned(127)));
        assert!(!fits(FheType::Int8, ClearValue::Unsigned(128)));
    }
}
