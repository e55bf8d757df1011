//! Canonical, unambiguous binary encoding of requests.
//!
//! Every field is written with a fixed width or a length prefix, so two different requests can
//! never encode to the same bytes. The encoding feeds [`RequestId`] derivation and the
//! request fingerprint that detects an ID reused for a different request.

use crate::RequestId;

/// Accumulates a canonical encoding.
#[derive(Default, Debug, Clone)]
pub struct CanonicalEncoder {
    buf: Vec<u8>,
}

impl CanonicalEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends fixed-size bytes (the width is part of the schema, so no prefix).
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Appends variable-length bytes with a u64 length prefix.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    /// Appends a UTF-8 string with a length prefix.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// The encoding.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A request with a canonical encoding and a domain-separation tag.
pub trait CanonicalRequest {
    /// Domain-separation tag, unique per request kind and version (e.g. `kms/public-decrypt/v1`).
    const TAG: &'static str;

    /// Writes the canonical encoding.
    fn encode(&self, enc: &mut CanonicalEncoder);

    /// The canonical bytes.
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = CanonicalEncoder::new();
        self.encode(&mut e);
        e.finish()
    }

    /// The request ID derived from the canonical encoding.
    fn request_id(&self) -> RequestId {
        RequestId::derive(Self::TAG, &self.canonical_bytes())
    }

    /// A 32-byte fingerprint of the whole request, used to detect ID reuse.
    fn fingerprint(&self) -> [u8; 32] {
        let mut e = CanonicalEncoder::new();
        e.str(Self::TAG);
        self.encode(&mut e);
        crate::sha3_256(&e.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_prevents_ambiguity() {
        let mut a = CanonicalEncoder::new();
        a.bytes(b"ab").bytes(b"c");
        let mut b = CanonicalEncoder::new();
        b.bytes(b"a").bytes(b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
