//! Typed deserialization and decryption of client ciphertexts.

use crate::{EngineError, ParamSetExt};
use kms_types::{FheType, ParamSetName, Plaintext, RequestId, TypedCiphertext};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tfhe::conformance::ParameterSetConformant;
use tfhe::integer::{I256, U256};
use tfhe::named::Named;
use tfhe::prelude::*;
use tfhe::safe_serialization::DeserializationConfig;
use tfhe::{
    ClientKey, FheBool, FheBoolConformanceParams, FheInt128, FheInt16, FheInt160, FheInt256,
    FheInt32, FheInt64, FheInt8, FheUint128, FheUint16, FheUint160, FheUint256, FheUint32,
    FheUint4, FheUint64, FheUint8, Tag,
};

/// Largest accepted serialized ciphertext (an FheUint256 under production parameters is ~0.9 MiB).
pub const MAX_CIPHERTEXT_BYTES: u64 = 4 << 20;

fn check_tag(index: usize, key_id: &RequestId, tag: &Tag) -> Result<(), EngineError> {
    if tag.as_slice() != key_id.as_bytes() {
        return Err(EngineError::KeyMismatch {
            index,
            key_id: *key_id,
            tag: hex::encode(tag.as_slice()),
        });
    }
    Ok(())
}

fn malformed(index: usize, fhe_type: FheType, reason: impl ToString) -> EngineError {
    EngineError::MalformedCiphertext {
        index,
        fhe_type,
        reason: reason.to_string(),
    }
}

/// Deserializes bytes as exactly the type `T`, conformant with `params`, within the size limit.
pub fn deserialize_checked<T>(bytes: &[u8], conformance: &T::ParameterSet) -> Result<T, String>
where
    T: serde::de::DeserializeOwned + tfhe::Unversionize + Named + ParameterSetConformant,
{
    DeserializationConfig::new(MAX_CIPHERTEXT_BYTES)
        .deserialize_from::<T>(bytes, conformance)
        .map_err(|e| e.to_string())
}

macro_rules! uint {
    ($ty:ty, $bytes:expr, $idx:expr, $ft:expr, $params:expr, $key_id:expr, $ck:expr) => {{
        let conf = <$ty as ParameterSetConformant>::ParameterSet::from($params.block_params());
        let ct: $ty = deserialize_checked($bytes, &conf).map_err(|e| malformed($idx, $ft, e))?;
        check_tag($idx, $key_id, ct.tag())?;
        let v: U256 = ct.decrypt($ck);
        let mut word = [0u8; 32];
        v.copy_to_be_byte_slice(&mut word);
        word
    }};
}

macro_rules! int {
    ($ty:ty, $bytes:expr, $idx:expr, $ft:expr, $params:expr, $key_id:expr, $ck:expr) => {{
        let conf = <$ty as ParameterSetConformant>::ParameterSet::from($params.block_params());
        let ct: $ty = deserialize_checked($bytes, &conf).map_err(|e| malformed($idx, $ft, e))?;
        check_tag($idx, $key_id, ct.tag())?;
        let v: I256 = ct.decrypt($ck);
        let mut word = [0u8; 32];
        v.copy_to_be_byte_slice(&mut word);
        word
    }};
}

fn decrypt_inner(
    index: usize,
    ct: &TypedCiphertext,
    key_id: &RequestId,
    params: ParamSetName,
    ck: &ClientKey,
) -> Result<Plaintext, EngineError> {
    let b = ct.bytes.as_slice();
    let t = ct.fhe_type;
    let word = match t {
        FheType::Bool => {
            let conf = FheBoolConformanceParams::from(params.block_params());
            let c: FheBool = deserialize_checked(b, &conf).map_err(|e| malformed(index, t, e))?;
            check_tag(index, key_id, c.tag())?;
            let v: bool = c.decrypt(ck);
            let mut w = [0u8; 32];
            w[31] = u8::from(v);
            w
        }
        FheType::Uint4 => uint!(FheUint4, b, index, t, params, key_id, ck),
        FheType::Uint8 => uint!(FheUint8, b, index, t, params, key_id, ck),
        FheType::Uint16 => uint!(FheUint16, b, index, t, params, key_id, ck),
        FheType::Uint32 => uint!(FheUint32, b, index, t, params, key_id, ck),
        FheType::Uint64 => uint!(FheUint64, b, index, t, params, key_id, ck),
        FheType::Uint128 => uint!(FheUint128, b, index, t, params, key_id, ck),
        FheType::Uint160 => uint!(FheUint160, b, index, t, params, key_id, ck),
        FheType::Uint256 => uint!(FheUint256, b, index, t, params, key_id, ck),
        FheType::Int8 => int!(FheInt8, b, index, t, params, key_id, ck),
        FheType::Int16 => int!(FheInt16, b, index, t, params, key_id, ck),
        FheType::Int32 => int!(FheInt32, b, index, t, params, key_id, ck),
        FheType::Int64 => int!(FheInt64, b, index, t, params, key_id, ck),
        FheType::Int128 => int!(FheInt128, b, index, t, params, key_id, ck),
        FheType::Int160 => int!(FheInt160, b, index, t, params, key_id, ck),
        FheType::Int256 => int!(FheInt256, b, index, t, params, key_id, ck),
    };
    Ok(Plaintext { fhe_type: t, word })
}

/// Deserializes (strictly: declared type, parameter conformance, size limit), checks the key tag
/// and decrypts one ciphertext. A panic inside tfhe-rs is caught and reported as
/// [`EngineError::Tfhe`], so no input can take the KMS down.
pub fn decrypt_ciphertext(
    index: usize,
    ct: &TypedCiphertext,
    key_id: &RequestId,
    params: ParamSetName,
    ck: &ClientKey,
) -> Result<Plaintext, EngineError> {
    if ct.bytes.len() as u64 > MAX_CIPHERTEXT_BYTES {
        return Err(malformed(index, ct.fhe_type, "over the size limit"));
    }
    catch_unwind(AssertUnwindSafe(|| {
        decrypt_inner(index, ct, key_id, params, ck)
    }))
    .unwrap_or_else(|_| {
        Err(EngineError::Tfhe(format!(
            "panic while decrypting ciphertext {index}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(fhe_type: FheType, v: i128) -> Plaintext {
        let mut word = if v < 0 { [0xffu8; 32] } else { [0u8; 32] };
        word[16..].copy_from_slice(&v.to_be_bytes());
        Plaintext { fhe_type, word }
    }

    #[test]
    fn decimal_rendering() {
        assert_eq!(pt(FheType::Int64, -42).to_decimal(), "-42");
        assert_eq!(pt(FheType::Uint64, 42).to_decimal(), "42");
        assert_eq!(pt(FheType::Uint8, 0).to_decimal(), "0");
        assert_eq!(pt(FheType::Bool, 1).to_decimal(), "true");
        assert_eq!(pt(FheType::Int8, -42).as_i128(), Some(-42));
        let max = Plaintext {
            fhe_type: FheType::Uint256,
            word: [0xff; 32],
        };
        assert_eq!(
            max.to_decimal(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!(max.as_u128(), None);
    }
}
