//! Wire encoding of partial decryptions: 64 bytes per share (4 little-endian u128 coefficients).

use crate::Share;

/// Encodes a party's partial decryptions.
pub fn encode_partials(p: &[Share]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() * 64);
    for s in p {
        for c in s.coefs {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }
    out
}

/// Decodes `expected` partial decryptions; `None` if the bytes are malformed (the sender is
/// then treated like a silent party).
pub fn decode_partials(b: &[u8], expected: usize) -> Option<Vec<Share>> {
    if b.len() != expected * 64 {
        return None;
    }
    Some(
        b.chunks_exact(64)
            .map(|chunk| {
                let mut coefs = [0u128; 4];
                for (c, bytes) in coefs.iter_mut().zip(chunk.chunks_exact(16)) {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(bytes);
                    *c = u128::from_le_bytes(a);
                }
                Share { coefs }
            })
            .collect(),
    )
}
