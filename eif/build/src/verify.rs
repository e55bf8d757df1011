//! `kms eif verify`: an image file, or a live enclave's attestation document, against a release
//! manifest.
//!
//! A document is trusted only if it verifies to a pinned root ([`DocumentTrust::Root`]: AWS's
//! Nitro root in production) and is fresh; its PCR0–2 must then be the manifest's. QEMU's
//! emulated NSM signs nothing, so its documents can be compared only under the explicit
//! [`DocumentTrust::UnsignedEmulator`], which says so in its result and which no production
//! path offers.

use crate::BuildError;
use kms_attestation::{PinnedRoot, Policy, Release};
use kms_eif::{Manifest, Measurements};
use std::time::Duration;

/// How far a document is trusted.
pub enum DocumentTrust {
    /// Verify the signature chain to this root at this time (since the Unix epoch).
    Root {
        /// The pinned root.
        root: PinnedRoot,
        /// Now.
        now: Duration,
        /// Largest document age, seconds.
        max_age_s: u64,
        /// The nonce the document must carry (the verifier's challenge), if any.
        nonce: Option<Vec<u8>>,
    },
    /// QEMU's emulated NSM: unsigned; only the PCRs it reports (and the nonce, if given) are
    /// compared.
    UnsignedEmulator {
        /// The nonce the document must carry, if any.
        nonce: Option<Vec<u8>>,
    },
}

/// What a verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The image file has the manifest's sha256 and PCRs.
    Image(Measurements),
    /// A signed document from the pinned root reports the manifest's PCRs.
    SignedDocument {
        /// The enclave's module ID.
        module_id: String,
    },
    /// An unsigned emulator document reports the manifest's PCRs (no authenticity).
    UnsignedEmulatorDocument {
        /// The module ID it claims.
        module_id: String,
    },
}

/// Checks an image file.
pub fn image(manifest: &Manifest, eif: &[u8]) -> Result<Verified, BuildError> {
    Ok(Verified::Image(manifest.check_image(eif)?))
}

/// Checks an attestation document.
pub fn document(
    manifest: &Manifest,
    doc: &[u8],
    trust: &DocumentTrust,
) -> Result<Verified, BuildError> {
    match trust {
        DocumentTrust::Root {
            root,
            now,
            max_age_s,
            nonce,
        } => {
            // PCRs first, for an error that names the PCR; then everything else.
            let claimed = kms_attestation::document::parse_unverified(doc)?;
            manifest.check_document_pcrs(&claimed.pcrs)?;
            let release = Release::from_image(
                &format!("{} {}", manifest.name, manifest.version),
                manifest.pcrs.as_arrays(),
            );
            let policy = Policy {
                nonce: nonce.clone(),
                ..Policy::production(vec![release], *max_age_s)
            };
            let v = kms_attestation::verify_document(doc, root, &policy, *now)?;
            Ok(Verified::SignedDocument {
                module_id: v.document.module_id,
            })
        }
        DocumentTrust::UnsignedEmulator { nonce } => {
            let claimed = kms_attestation::document::parse_unsigned_emulator(doc)?;
            manifest.check_document_pcrs(&claimed.pcrs)?;
            if nonce.is_some() && claimed.nonce != *nonce {
                return Err(BuildError::Invalid(
                    "the document does not carry the given nonce".into(),
                ));
            }
            Ok(Verified::UnsignedEmulatorDocument {
                module_id: claimed.module_id,
            })
        }
    }
}
