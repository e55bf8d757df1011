//! The encrypted types the KMS decrypts.

use std::fmt;

/// An encrypted tfhe-rs type. The discriminant is the stable wire value (proto enum and
/// EIP-712 `uint8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum FheType {
    /// `tfhe::FheBool`
    Bool = 0,
    /// `tfhe::FheUint4`
    Uint4 = 1,
    /// `tfhe::FheUint8`
    Uint8 = 2,
    /// `tfhe::FheUint16`
    Uint16 = 3,
    /// `tfhe::FheUint32`
    Uint32 = 4,
    /// `tfhe::FheUint64`
    Uint64 = 5,
    /// `tfhe::FheUint128`
    Uint128 = 6,
    /// `tfhe::FheUint160` (EVM addresses)
    Uint160 = 7,
    /// `tfhe::FheUint256`
    Uint256 = 8,
    /// `tfhe::FheInt8`
    Int8 = 9,
    /// `tfhe::FheInt16`
    Int16 = 10,
    /// `tfhe::FheInt32`
    Int32 = 11,
    /// `tfhe::FheInt64`
    Int64 = 12,
    /// `tfhe::FheInt128`
    Int128 = 13,
    /// `tfhe::FheInt160`
    Int160 = 14,
    /// `tfhe::FheInt256`
    Int256 = 15,
}

/// A wire value that names no [`FheType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown FHE type {0}")]
pub struct UnknownFheType(pub i64);

impl FheType {
    /// Every type, in wire order.
    pub const ALL: [FheType; 16] = [
        FheType::Bool,
        FheType::Uint4,
        FheType::Uint8,
        FheType::Uint16,
        FheType::Uint32,
        FheType::Uint64,
        FheType::Uint128,
        FheType::Uint160,
        FheType::Uint256,
        FheType::Int8,
        FheType::Int16,
        FheType::Int32,
        FheType::Int64,
        FheType::Int128,
        FheType::Int160,
        FheType::Int256,
    ];

    /// Width of the plaintext in bits.
    pub const fn bits(self) -> u32 {
        match self {
            FheType::Bool => 1,
            FheType::Uint4 => 4,
            FheType::Uint8 | FheType::Int8 => 8,
            FheType::Uint16 | FheType::Int16 => 16,
            FheType::Uint32 | FheType::Int32 => 32,
            FheType::Uint64 | FheType::Int64 => 64,
            FheType::Uint128 | FheType::Int128 => 128,
            FheType::Uint160 | FheType::Int160 => 160,
            FheType::Uint256 | FheType::Int256 => 256,
        }
    }

    /// Whether the plaintext is a two's-complement signed integer.
    pub const fn is_signed(self) -> bool {
        matches!(
            self,
            FheType::Int8
                | FheType::Int16
                | FheType::Int32
                | FheType::Int64
                | FheType::Int128
                | FheType::Int160
                | FheType::Int256
        )
    }

    /// The stable wire value.
    pub const fn wire(self) -> u8 {
        self as u8
    }

    /// Parses a wire value.
    pub fn from_wire(v: i64) -> Result<Self, UnknownFheType> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| i64::from(t.wire()) == v)
            .ok_or(UnknownFheType(v))
    }

    /// The tfhe-rs type name, e.g. `FheUint8`.
    pub const fn name(self) -> &'static str {
        match self {
            FheType::Bool => "FheBool",
            FheType::Uint4 => "FheUint4",
            FheType::Uint8 => "FheUint8",
            FheType::Uint16 => "FheUint16",
            FheType::Uint32 => "FheUint32",
            FheType::Uint64 => "FheUint64",
            FheType::Uint128 => "FheUint128",
            FheType::Uint160 => "FheUint160",
            FheType::Uint256 => "FheUint256",
            FheType::Int8 => "FheInt8",
            FheType::Int16 => "FheInt16",
            FheType::Int32 => "FheInt32",
            FheType::Int64 => "FheInt64",
            FheType::Int128 => "FheInt128",
            FheType::Int160 => "FheInt160",
            FheType::Int256 => "FheInt256",
        }
    }

    /// Parses a tfhe-rs type name (`FheUint8`, also accepted in lower case: `fheuint8`, `uint8`).
    pub fn from_name(s: &str) -> Option<Self> {
        let l = s.to_ascii_lowercase();
        let l = l.strip_prefix("fhe").unwrap_or(&l);
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name()[3..].eq_ignore_ascii_case(l))
    }
}

impl fmt::Display for FheType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_and_names_round_trip() {
        for t in FheType::ALL {
            assert_eq!(FheType::from_wire(t.wire().into()), Ok(t));
            assert_eq!(FheType::from_name(t.name()), Some(t));
        }
        assert_eq!(FheType::from_wire(99), Err(UnknownFheType(99)));
        assert_eq!(FheType::from_name("uint8"), Some(FheType::Uint8));
        assert_eq!(FheType::from_name("FheUint7"), None);
    }
}
