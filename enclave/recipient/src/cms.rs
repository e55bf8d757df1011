//! CMS EnvelopedData (RFC 5652 §6) of the one shape AWS KMS produces for a recipient: one
//! key-transport recipient (RSAES-OAEP with SHA-256 and MGF1-SHA-256, RFC 8017 / RFC 4055) and
//! content encrypted with AES-256-CBC. Anything else is refused, in BER or DER.

use crate::ber::{self, Class, Element, Tag};

/// `1.2.840.113549.1.7.3` envelopedData.
const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// `1.2.840.113549.1.7.1` data.
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// `1.2.840.113549.1.1.7` id-RSAES-OAEP.
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
/// `1.2.840.113549.1.1.8` id-mgf1.
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
/// `1.2.840.113549.1.1.9` id-pSpecified.
const OID_P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
/// `2.16.840.1.101.3.4.2.1` id-sha256.
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// `2.16.840.1.101.3.4.1.42` id-aes256-CBC.
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// Why a CMS message is not one this module accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmsError {
    /// Not BER.
    #[error("not BER: {0}")]
    Ber(#[from] ber::BerError),
    /// BER, but not the expected structure at the named place.
    #[error("unexpected structure: {0}")]
    Structure(&'static str),
    /// A well-formed message with an algorithm or option this module does not accept.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// What [`parse`] extracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The content-encryption key, RSA-OAEP-encrypted to the recipient.
    pub encrypted_key: Vec<u8>,
    /// The AES-256-CBC IV.
    pub iv: [u8; 16],
    /// The AES-256-CBC ciphertext (PKCS#7 padded plaintext).
    pub encrypted_content: Vec<u8>,
}

fn children<'e, 'a>(
    e: &'e Element<'a>,
    want: Tag,
    at: &'static str,
) -> Result<&'e [Element<'a>], CmsError> {
    if e.tag != want {
        return Err(CmsError::Structure(at));
    }
    e.children().ok_or(CmsError::Structure(at))
}

fn oid<'a>(e: &Element<'a>, at: &'static str) -> Result<&'a [u8], CmsError> {
    if e.tag != Tag::OID {
        return Err(CmsError::Structure(at));
    }
    e.bytes().ok_or(CmsError::Structure(at))
}

fn small_integer(e: &Element<'_>, at: &'static str) -> Result<u8, CmsError> {
    match (e.tag == Tag::INTEGER, e.bytes()) {
        (true, Some(&[v])) => Ok(v),
        _ => Err(CmsError::Structure(at)),
    }
}

fn octet_string(e: &Element<'_>, at: &'static str) -> Result<Vec<u8>, CmsError> {
    if e.tag.class != Class::Universal || e.tag.number != Tag::OCTET_STRING_NUMBER {
        return Err(CmsError::Structure(at));
    }
    e.string_bytes().ok_or(CmsError::Structure(at))
}

/// `AlgorithmIdentifier { OID, params? }`: the OID and the optional parameters.
fn algorithm<'e, 'a>(
    e: &'e Element<'a>,
    at: &'static str,
) -> Result<(&'a [u8], Option<&'e Element<'a>>), CmsError> {
    match children(e, Tag::SEQUENCE, at)? {
        [id] => Ok((oid(id, at)?, None)),
        [id, params] => Ok((oid(id, at)?, Some(params))),
        _ => Err(CmsError::Structure(at)),
    }
}

/// A SHA-256 `AlgorithmIdentifier` (parameters absent or NULL).
fn is_sha256(e: &Element<'_>) -> Result<bool, CmsError> {
    let (id, params) = algorithm(e, "hash algorithm")?;
    let null_or_absent = params.is_none_or(|p| p.tag == Tag::NULL && p.bytes() == Some(&[]));
    Ok(id == OID_SHA256 && null_or_absent)
}

/// RSAES-OAEP-params with SHA-256, MGF1-SHA-256 and an empty label (the defaults are SHA-1, so
/// absent hash or mask parameters are refused).
fn check_oaep_params(params: Option<&Element<'_>>) -> Result<(), CmsError> {
    let fields = children(
        params.ok_or(CmsError::Unsupported(
            "RSAES-OAEP with default (SHA-1) parameters",
        ))?,
        Tag::SEQUENCE,
        "RSAES-OAEP-params",
    )?;
    let (mut hash, mut mgf) = (false, false);
    for f in fields {
        let inner = match f.children() {
            Some([inner]) if f.tag.class == Class::Context => inner,
            _ => return Err(CmsError::Structure("RSAES-OAEP-params field")),
        };
        match f.tag.number {
            0 => hash = is_sha256(inner)?,
            1 => {
                let (id, p) = algorithm(inner, "mask generation")?;
                let p = p.ok_or(CmsError::Structure("MGF1 hash"))?;
                mgf = id == OID_MGF1 && is_sha256(p)?;
            }
            2 => {
                let (id, p) = algorithm(inner, "label source")?;
                let empty = p.is_some_and(|p| {
                    p.tag.number == Tag::OCTET_STRING_NUMBER && p.string_bytes() == Some(vec![])
                });
                if id != OID_P_SPECIFIED || !empty {
                    return Err(CmsError::Unsupported("an OAEP label"));
                }
            }
            _ => return Err(CmsError::Structure("RSAES-OAEP-params field")),
        }
    }
    if hash && mgf {
        Ok(())
    } else {
        Err(CmsError::Unsupported(
            "RSAES-OAEP with a hash other than SHA-256",
        ))
    }
}

/// Parses a `ContentInfo` holding `EnvelopedData` for exactly one key-transport recipient.
pub fn parse(input: &[u8]) -> Result<Envelope, CmsError> {
    let root = ber::parse(input)?;
    let [content_type, content] = children(&root, Tag::SEQUENCE, "ContentInfo")? else {
        return Err(CmsError::Structure("ContentInfo"));
    };
    if oid(content_type, "ContentInfo type")? != OID_ENVELOPED_DATA {
        return Err(CmsError::Unsupported("content other than envelopedData"));
    }
    let [enveloped] = children(content, Tag::context(true, 0), "ContentInfo content")? else {
        return Err(CmsError::Structure("ContentInfo content"));
    };
    // EnvelopedData { version, originatorInfo [0]?, recipientInfos SET, encryptedContentInfo,
    // unprotectedAttrs [1]? }: originator info and attributes are refused (AWS sends neither).
    let [version, recipients, encrypted] = children(enveloped, Tag::SEQUENCE, "EnvelopedData")?
    else {
        return Err(CmsError::Unsupported(
            "originator info or unprotected attributes",
        ));
    };
    if !matches!(small_integer(version, "EnvelopedData version")?, 0 | 2) {
        return Err(CmsError::Unsupported("EnvelopedData version"));
    }
    let [recipient] = children(recipients, Tag::SET, "RecipientInfos")? else {
        return Err(CmsError::Unsupported("other than exactly one recipient"));
    };
    // KeyTransRecipientInfo { version, rid, keyEncryptionAlgorithm, encryptedKey }: rid is an
    // issuerAndSerialNumber (version 0) or a [0] subjectKeyIdentifier (version 2); either is
    // accepted and not otherwise used: only the recipient's key can open the result.
    let [kt_version, rid, key_alg, encrypted_key] =
        children(recipient, Tag::SEQUENCE, "KeyTransRecipientInfo")?
    else {
        return Err(CmsError::Unsupported(
            "a recipient other than key transport",
        ));
    };
    match (small_integer(kt_version, "recipient version")?, rid.tag) {
        (0, Tag::SEQUENCE) => {}
        (2, t) if t.class == Class::Context && t.number == 0 => {}
        _ => return Err(CmsError::Structure("recipient identifier")),
    }
    let (key_alg_id, oaep_params) = algorithm(key_alg, "key encryption algorithm")?;
    if key_alg_id != OID_RSAES_OAEP {
        return Err(CmsError::Unsupported("key transport other than RSAES-OAEP"));
    }
    check_oaep_params(oaep_params)?;
    let encrypted_key = octet_string(encrypted_key, "encrypted key")?;

    // EncryptedContentInfo { contentType, contentEncryptionAlgorithm, [0] IMPLICIT content }.
    let [inner_type, content_alg, body] =
        children(encrypted, Tag::SEQUENCE, "EncryptedContentInfo")?
    else {
        return Err(CmsError::Structure(
            "EncryptedContentInfo (detached content?)",
        ));
    };
    if oid(inner_type, "encrypted content type")? != OID_DATA {
        return Err(CmsError::Unsupported("encrypted content other than data"));
    }
    let (content_alg_id, iv) = algorithm(content_alg, "content encryption algorithm")?;
    if content_alg_id != OID_AES256_CBC {
        return Err(CmsError::Unsupported(
            "content encryption other than AES-256-CBC",
        ));
    }
    let iv: [u8; 16] = octet_string(iv.ok_or(CmsError::Structure("AES IV"))?, "AES IV")?
        .try_into()
        .map_err(|_| CmsError::Structure("AES IV of other than 16 bytes"))?;
    if body.tag.class != Class::Context || body.tag.number != 0 {
        return Err(CmsError::Structure("encrypted content"));
    }
    let encrypted_content = body
        .string_bytes()
        .ok_or(CmsError::Structure("encrypted content"))?;
    Ok(Envelope {
        encrypted_key,
        iv,
        encrypted_content,
    })
}
