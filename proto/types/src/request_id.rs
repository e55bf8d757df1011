//! 160-bit request identifiers.

use std::fmt;
use std::str::FromStr;

/// A request identifier: 20 bytes, written as 40 lower-case hex characters.
///
/// IDs are derived from the canonical encoding of a request
/// ([`crate::CanonicalRequest::request_id`]), so repeating a request yields the same ID;
/// on the KMS chain the ASC derives them the same way.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId([u8; 20]);

/// Why a string is not a valid request ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestIdError {
    /// Not exactly 40 characters.
    #[error("request ID must be 40 hex characters, got {0}")]
    Length(usize),
    /// A character outside `0-9a-f` (upper case is rejected so the encoding is unique).
    #[error("request ID must be lower-case hex")]
    NotLowerHex,
}

impl RequestId {
    /// Length in bytes.
    pub const LEN: usize = 20;

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Derives an ID from a domain-separation tag and a canonical encoding:
    /// the first 20 bytes of SHA3-256(len(tag) ‖ tag ‖ encoding).
    pub fn derive(tag: &str, canonical: &[u8]) -> Self {
        use sha3::Digest;
        let mut h = sha3::Sha3_256::new();
        h.update((tag.len() as u32).to_be_bytes());
        h.update(tag.as_bytes());
        h.update(canonical);
        let d = h.finalize();
        let mut out = [0u8; 20];
        out.copy_from_slice(&d[..20]);
        Self(out)
    }

    /// Parses the 40-character lower-case hex form.
    pub fn parse(s: &str) -> Result<Self, RequestIdError> {
        if s.len() != 40 {
            return Err(RequestIdError::Length(s.len()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(RequestIdError::NotLowerHex);
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).map_err(|_| RequestIdError::NotLowerHex)?;
        Ok(Self(out))
    }
}

impl FromStr for RequestId {
    type Err = RequestIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let id = RequestId::derive("t", b"x");
        let s = id.to_string();
        assert_eq!(s.len(), 40);
        assert_eq!(RequestId::parse(&s), Ok(id));
        assert_eq!(
            RequestId::parse(&s.to_uppercase()),
            Err(RequestIdError::NotLowerHex)
        );
        assert_eq!(RequestId::parse("abc"), Err(RequestIdError::Length(3)));
        assert_eq!(
            RequestId::parse(&"g".repeat(40)),
            Err(RequestIdError::NotLowerHex)
        );
    }

    #[test]
    fn derivation_is_domain_separated() {
        assert_ne!(RequestId::derive("a", b"bc"), RequestId::derive("ab", b"c"));
        assert_eq!(RequestId::derive("a", b"bc"), RequestId::derive("a", b"bc"));
    }
}
