//! A decrypted value as the KMS signs it.

use crate::FheType;

/// A decrypted value: its type and a 32-byte big-endian word (signed values sign-extended,
/// `bool` as 0/1), the encoding of the signed `plaintexts` field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Plaintext {
    /// The ciphertext's type.
    pub fhe_type: FheType,
    /// The value as an EVM word.
    pub word: [u8; 32],
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Plaintexts are results, not secrets of the KMS, but keep logs terse.
        write!(f, "Plaintext({})", self.fhe_type)
    }
}

impl Plaintext {
    /// The value as u128 if it fits (unsigned types and non-negative signed values).
    pub fn as_u128(&self) -> Option<u128> {
        if self.word[..16].iter().any(|&b| b != 0) {
            return None;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.word[16..]);
        Some(u128::from_be_bytes(b))
    }

    /// The value as i128 for signed types if it fits.
    pub fn as_i128(&self) -> Option<i128> {
        let fill = if self.word[16] & 0x80 != 0 { 0xff } else { 0 };
        if self.word[..16].iter().any(|&b| b != fill) {
            return None;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.word[16..]);
        Some(i128::from_be_bytes(b))
    }

    /// Decimal rendering (exact for every width).
    pub fn to_decimal(&self) -> String {
        if self.fhe_type == FheType::Bool {
            return (self.word[31] != 0).to_string();
        }
        let negative = self.fhe_type.is_signed() && self.word[0] & 0x80 != 0;
        let mut mag = self.word;
        if negative {
            // Two's complement negation.
            let mut carry = 1u16;
            for b in mag.iter_mut().rev() {
                let v = u16::from(!*b) + carry;
                *b = v as u8;
                carry = v >> 8;
            }
        }
        let mut digits = Vec::new();
        let mut n = mag.to_vec();
        while n.iter().any(|&b| b != 0) {
            let mut rem = 0u32;
            for b in n.iter_mut() {
                let cur = (rem << 8) | u32::from(*b);
                *b = (cur / 10) as u8;
                rem = cur % 10;
            }
            digits.push(b'0' + rem as u8);
        }
        if digits.is_empty() {
            digits.push(b'0');
        }
        if negative {
            digits.push(b'-');
        }
        digits.reverse();
        String::from_utf8(digits).unwrap_or_default()
    }
}
