//! secp256k1 signing and recovery of EIP-712 hashes.

use crate::DomainConfig;
use alloy_sol_types::SolStruct;
use k256::ecdsa::{RecoveryId, Signature as K256Signature, VerifyingKey};
use sha3::{Digest, Keccak256};
use std::fmt;
use zeroize::Zeroizing;

/// A 20-byte Ethereum address.
pub type Address = [u8; 20];

/// A 65-byte `r ‖ s ‖ v` signature (`v` ∈ {27, 28}).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 65]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(0x{})", hex::encode(self.0))
    }
}

impl Signature {
    /// Parses 65 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, Eip712Error> {
        let arr: [u8; 65] = b
            .try_into()
            .map_err(|_| Eip712Error::Malformed("signature must be 65 bytes"))?;
        Ok(Self(arr))
    }
}

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Eip712Error {
    /// Wrong length, `v` not 27/28, `r` or `s` out of range.
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    /// High `s` (malleable form, rejected as by EIP-2 and OpenZeppelin's ECDSA).
    #[error("signature has a high s value")]
    HighS,
    /// Recovery failed.
    #[error("no public key recovers from this signature")]
    Unrecoverable,
    /// The signature recovers to another address.
    #[error("signature is by 0x{actual}, expected 0x{expected}")]
    WrongSigner {
        /// Hex of the expected address.
        expected: String,
        /// Hex of the recovered address.
        actual: String,
    },
    /// A stored key is not a valid secp256k1 scalar.
    #[error("invalid secp256k1 signing key")]
    InvalidKey,
}

/// A party's secp256k1 signing key. Zeroized on drop (k256 does so for the scalar).
pub struct SigningKey {
    key: k256::ecdsa::SigningKey,
    address: Address,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(address 0x{})", hex::encode(self.address))
    }
}

fn address_of(vk: &VerifyingKey) -> Address {
    // The uncompressed point is 0x04 ‖ x ‖ y; the address is the last 20 bytes of keccak(x ‖ y).
    let point = vk.to_encoded_point(false);
    let xy = point.as_bytes().split_first().map_or(&[][..], |(_, xy)| xy);
    let hash: [u8; 32] = Keccak256::digest(xy).into();
    let mut a = [0u8; 20];
    for (dst, src) in a.iter_mut().zip(hash.iter().skip(12)) {
        *dst = *src;
    }
    a
}

impl SigningKey {
    /// A fresh key from the given CSPRNG.
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        Self::from_inner(k256::ecdsa::SigningKey::random(rng))
    }

    fn from_inner(key: k256::ecdsa::SigningKey) -> Self {
        let address = address_of(key.verifying_key());
        Self { key, address }
    }

    /// Loads a 32-byte big-endian scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Eip712Error> {
        let key =
            k256::ecdsa::SigningKey::from_slice(bytes).map_err(|_| Eip712Error::InvalidKey)?;
        Ok(Self::from_inner(key))
    }

    /// The 32-byte scalar, for sealing.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.key.to_bytes().to_vec())
    }

    /// The Ethereum address of this key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte prehash (already the EIP-712 signing hash).
    pub fn sign_prehash(&self, prehash: &[u8; 32]) -> Result<Signature, Eip712Error> {
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(prehash)
            .map_err(|_| Eip712Error::InvalidKey)?;
        // k256 already returns low-s; normalise defensively and flip the parity if it changes.
        let (sig, recid) = match sig.normalize_s() {
            Some(n) => (n, RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced())),
            None => (sig, recid),
        };
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + recid.to_byte();
        Ok(Signature(out))
    }

    /// Signs a typed struct under a domain.
    pub fn sign<T: SolStruct>(
        &self,
        domain: &DomainConfig,
        value: &T,
    ) -> Result<Signature, Eip712Error> {
        let hash = value.eip712_signing_hash(&domain.to_domain());
        self.sign_prehash(&hash.0)
    }
}

/// Recovers the signer's address from a signature over a 32-byte prehash.
pub fn recover_prehash(prehash: &[u8; 32], sig: &Signature) -> Result<Address, Eip712Error> {
    let v = sig.0[64];
    let parity = match v {
        27 | 28 => v - 27,
        _ => return Err(Eip712Error::Malformed("v must be 27 or 28")),
    };
    let s = K256Signature::from_slice(&sig.0[..64])
        .map_err(|_| Eip712Error::Malformed("r or s out of range"))?;
    if s.normalize_s().is_some() {
        return Err(Eip712Error::HighS);
    }
    let recid = RecoveryId::from_byte(parity).ok_or(Eip712Error::Malformed("bad recovery id"))?;
    let vk = VerifyingKey::recover_from_prehash(prehash, &s, recid)
        .map_err(|_| Eip712Error::Unrecoverable)?;
    Ok(address_of(&vk))
}

/// Recovers the signer of a typed struct.
pub fn recover_signer<T: SolStruct>(
    domain: &DomainConfig,
    value: &T,
    sig: &Signature,
) -> Result<Address, Eip712Error> {
    let hash = value.eip712_signing_hash(&domain.to_domain());
    recover_prehash(&hash.0, sig)
}

/// Checks that `sig` over `value` is by `expected`.
pub fn verify_signer<T: SolStruct>(
    domain: &DomainConfig,
    value: &T,
    sig: &Signature,
    expected: &Address,
) -> Result<(), Eip712Error> {
    let actual = recover_signer(domain, value, sig)?;
    if &actual != expected {
        return Err(Eip712Error::WrongSigner {
            expected: hex::encode(expected),
            actual: hex::encode(actual),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PublicMaterial;
    use alloy_primitives::{FixedBytes, B256};
    use alloy_sol_types::sol;

    sol! {
        struct Person { string name; address wallet; }
        struct Mail { Person from; Person to; string contents; }
    }

    /// The worked example of the EIP-712 specification: its domain, struct, signing hash, key
    /// (keccak256("cow")) and signature.
    #[test]
    fn eip712_spec_example() {
        let domain = DomainConfig {
            name: "Ether Mail".into(),
            version: "1".into(),
            chain_id: 1,
            verifying_contract: hex_lit("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"),
        };
        let mail = Mail {
            from: Person {
                name: "Cow".into(),
                wallet: hex_lit("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826").into(),
            },
            to: Person {
                name: "Bob".into(),
                wallet: hex_lit("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB").into(),
            },
            contents: "Hello, Bob!".into(),
        };
        let hash = mail.eip712_signing_hash(&domain.to_domain());
        assert_eq!(
            hex::encode(hash),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
        let key = SigningKey::from_bytes(&Keccak256::digest(b"cow")).unwrap();
        assert_eq!(
            hex::encode(key.address()),
            "cd2a3d9f938e13cd947ec05abc7fe734df8dd826"
        );
        let sig = key.sign(&domain, &mail).unwrap();
        assert_eq!(
            hex::encode(sig.0),
            "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d\
             07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562\
             1c"
        );
        assert_eq!(recover_signer(&domain, &mail, &sig), Ok(key.address()));
    }

    fn hex_lit(s: &str) -> [u8; 20] {
        let mut a = [0u8; 20];
        hex::decode_to_slice(s, &mut a).unwrap();
        a
    }

    fn sample() -> (DomainConfig, PublicMaterial) {
        (
            DomainConfig::default(),
            PublicMaterial {
                requestId: FixedBytes([7u8; 20]),
                dataType: "ServerKey".into(),
                digest: B256::repeat_byte(9),
            },
        )
    }

    #[test]
    fn alloy_recovers_the_same_address() {
        let (domain, value) = sample();
        let key = SigningKey::random(&mut rand_core::OsRng);
        let sig = key.sign(&domain, &value).unwrap();
        let hash = value.eip712_signing_hash(&domain.to_domain());
        let alloy_sig = alloy_primitives::Signature::from_raw(&sig.0).unwrap();
        let addr = alloy_sig.recover_address_from_prehash(&hash).unwrap();
        assert_eq!(addr.0 .0, key.address());
    }

    #[test]
    fn rejects_tampering_wrong_signer_and_malleability() {
        let (domain, value) = sample();
        let key = SigningKey::random(&mut rand_core::OsRng);
        let other = SigningKey::random(&mut rand_core::OsRng);
        let sig = key.sign(&domain, &value).unwrap();
        verify_signer(&domain, &value, &sig, &key.address()).unwrap();
        assert!(matches!(
            verify_signer(&domain, &value, &sig, &other.address()),
            Err(Eip712Error::WrongSigner { .. })
        ));
        // Another domain: recovers to some other address.
        let mut d2 = domain.clone();
        d2.chain_id += 1;
        assert!(verify_signer(&d2, &value, &sig, &key.address()).is_err());
        // Bad v.
        let mut bad = sig;
        bad.0[64] = 2;
        assert!(matches!(
            recover_signer(&domain, &value, &bad),
            Err(Eip712Error::Malformed(_))
        ));
        // High-s twin of a valid signature.
        let alloy_sig = alloy_primitives::Signature::from_raw(&sig.0).unwrap();
        let n = alloy_primitives::U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .unwrap();
        let high =
            alloy_primitives::Signature::new(alloy_sig.r(), n - alloy_sig.s(), !alloy_sig.v());
        let high = Signature(high.as_bytes());
        assert_eq!(
            recover_signer(&domain, &value, &high),
            Err(Eip712Error::HighS)
        );
        // Zero r.
        let mut zero = sig;
        zero.0[..32].fill(0);
        assert!(recover_signer(&domain, &value, &zero).is_err());
    }

    #[test]
    fn key_round_trip() {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let again = SigningKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(key.address(), again.address());
        assert_eq!(
            SigningKey::from_bytes(&[0u8; 32]).unwrap_err(),
            Eip712Error::InvalidKey
        );
    }
}
