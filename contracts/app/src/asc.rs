//! The application smart contract: the single entry point for KMS requests and the collector of
//! the parties' responses.
//!
//! A request is validated (format, sizes, fee, the key it names), checked by the application's
//! ISC, assigned the request ID the KMS derives from its canonical encoding, stored, and
//! announced with a `kms_request` event. Parties answer with `Fulfill` transactions signed by
//! their registered key and carrying their EIP-712 signature of the result; a request completes
//! when t + 1 parties agree on the result (public decryption, keygen, CRS), when every party has
//! sent its share (user decryption), or when n − t parties finished (resharing). On completion the
//! escrowed fee is paid to the responding parties.

use crate::config;
use crate::ctx::Ctx;
use crate::error::TxError;
use crate::isc;
use crate::tokens;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, Config, RequestRecord, RequestStatus, ResponseRecord};
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem};
use kms_chain_types::Address;
use kms_eip712::types::{PublicDecryptionResult, PublicMaterial, UserDecryptionResponse};
use kms_eip712::{recover_signer, Signature};
use kms_types::{sha3_256, RequestId};

/// Longest label of a keygen, CRS or reshare request.
pub const MAX_LABEL: usize = 128;
/// Largest user-decryption envelope forwarded through the chain.
pub const MAX_ENVELOPE: usize = 64 * 1024;
/// Most material items in one keygen/CRS response.
pub const MAX_MATERIAL_ITEMS: usize = 16;

fn fee_of(cfg: &Config, req: &KmsRequest) -> u128 {
    let f = &cfg.fees;
    match req {
        KmsRequest::KeyGen(_) => f.keygen,
        KmsRequest::CrsGen(_) => f.crs_gen,
        KmsRequest::PublicDecrypt(r) => f
            .public_decrypt_per_ct
            .saturating_mul(r.ciphertexts.len() as u128),
        KmsRequest::UserDecrypt(r) => f
            .user_decrypt_per_ct
            .saturating_mul(r.ciphertexts.len() as u128),
        KmsRequest::Reshare { .. } => f.reshare,
    }
}

/// Loads a request.
pub fn load_request(ctx: &Ctx<'_>, id: &RequestId) -> Result<RequestRecord, TxError> {
    ctx.get(&keys::request(id))?
        .ok_or_else(|| TxError::NotFound(format!("request {id}")))
}

fn require_admin(cfg: &Config, sender: &Address, what: &str) -> Result<(), TxError> {
    if cfg.is_admin(sender) {
        Ok(())
    } else {
        Err(TxError::Unauthorized(format!(
            "only config admins may request {what}"
        )))
    }
}

fn check_label(label: &str) -> Result<(), TxError> {
    if label.len() > MAX_LABEL {
        return Err(TxError::Malformed(format!(
            "label longer than {MAX_LABEL} bytes"
        )));
    }
    Ok(())
}

/// The key must be a completed keygen request.
fn require_key(ctx: &Ctx<'_>, key_id: &RequestId) -> Result<(), TxError> {
    match ctx.get::<RequestRecord>(&keys::request(key_id))? {
        Some(RequestRecord {
            request: KmsRequest::KeyGen(_),
            status: RequestStatus::Completed { .. },
            ..
        }) => Ok(()),
        _ => Err(TxError::NotFound(format!("completed key set {key_id}"))),
    }
}

/// Validates, authorizes, charges and stores a request.
pub fn submit(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    app_id: &str,
    request: KmsRequest,
) -> Result<RequestId, TxError> {
    let cfg = config::load(ctx)?;
    let app = isc::application(ctx, app_id)?;
    match &request {
        KmsRequest::KeyGen(r) => {
            require_admin(&cfg, sender, "key generation")?;
            check_label(&r.label)?;
        }
        KmsRequest::CrsGen(r) => {
            require_admin(&cfg, sender, "CRS generation")?;
            check_label(&r.label)?;
            if !(1..=4096).contains(&r.max_num_bits) {
                return Err(TxError::Malformed(
                    "max_num_bits must be in 1..=4096".into(),
                ));
            }
        }
        KmsRequest::Reshare { key_id, epoch } => {
            require_admin(&cfg, sender, "resharing")?;
            check_label(epoch)?;
            require_key(ctx, key_id)?;
        }
        KmsRequest::PublicDecrypt(r) => {
            check_cts(&cfg, r.ciphertexts.len())?;
            require_key(ctx, &r.key_id)?;
            isc::isc_for(&app).check_decrypt(ctx, &app, sender, &r.ciphertexts)?;
        }
        KmsRequest::UserDecrypt(r) => {
            check_cts(&cfg, r.ciphertexts.len())?;
            require_key(ctx, &r.key_id)?;
            isc::isc_for(&app).check_decrypt(ctx, &app, sender, &r.ciphertexts)?;
        }
    }
    let id = request.request_id();
    if ctx.raw(&keys::request(&id))?.is_some() {
        return Err(TxError::DuplicateRequest(id.to_string()));
    }
    let fee = fee_of(&cfg, &request);
    tokens::debit(ctx, sender, fee)?;
    let kind = request.kind();
    let record = RequestRecord {
        id,
        app_id: app_id.to_string(),
        requester: *sender,
        request,
        fee,
        height: ctx.height,
        status: RequestStatus::Pending,
        responded: Vec::new(),
    };
    ctx.put(keys::request(&id), &record);
    ctx.emit(
        "kms_request",
        &[
            ("request_id", id.to_string()),
            ("kind", kind.to_string()),
            ("app_id", app_id.to_string()),
            ("requester", hex::encode(sender)),
        ],
    );
    Ok(id)
}

fn check_cts(cfg: &Config, n: usize) -> Result<(), TxError> {
    if n == 0 || n > cfg.max_ciphertexts_per_request as usize {
        return Err(TxError::Malformed(format!(
            "a decryption request names 1..={} ciphertexts, got {n}",
            cfg.max_ciphertexts_per_request
        )));
    }
    Ok(())
}

fn sig(bytes: &[u8]) -> Result<Signature, TxError> {
    Signature::from_slice(bytes).map_err(|e| TxError::BadResultSignature(e.to_string()))
}

fn check_signer(
    recovered: Result<Address, kms_eip712::Eip712Error>,
    expected: &Address,
) -> Result<(), TxError> {
    match recovered {
        Ok(a) if &a == expected => Ok(()),
        Ok(a) => Err(TxError::BadResultSignature(format!(
            "signed by {}, party key is {}",
            hex::encode(a),
            hex::encode(expected)
        ))),
        Err(e) => Err(TxError::BadResultSignature(e.to_string())),
    }
}

/// Checks a fulfillment against the request and the party's key; returns the digest of the part
/// that must agree across parties.
fn verify_fulfillment(
    cfg: &Config,
    record: &RequestRecord,
    signer: &Address,
    f: &Fulfillment,
) -> Result<[u8; 32], TxError> {
    let domain = &cfg.eip712_domain;
    match (&record.request, f) {
        (
            KmsRequest::PublicDecrypt(r),
            Fulfillment::PublicDecryption {
                plaintexts,
                signature,
            },
        ) => {
            if plaintexts.len() != 32 * r.ciphertexts.len() {
                return Err(TxError::Malformed(format!(
                    "expected {} plaintext words, got {} bytes",
                    r.ciphertexts.len(),
                    plaintexts.len()
                )));
            }
            let digests: Vec<[u8; 32]> = r.ciphertexts.iter().map(|c| c.digest).collect();
            let value = PublicDecryptionResult::new(
                &record.id,
                &r.key_id,
                &digests,
                r.ciphertexts.iter().map(|c| c.fhe_type.wire()).collect(),
                plaintexts.clone(),
            );
            check_signer(recover_signer(domain, &value, &sig(signature)?), signer)?;
            Ok(sha3_256(plaintexts))
        }
        (
            KmsRequest::UserDecrypt(r),
            Fulfillment::UserDecryption {
                envelope,
                signature,
            },
        ) => {
            if envelope.is_empty() || envelope.len() > MAX_ENVELOPE {
                return Err(TxError::Malformed(format!(
                    "envelope must be 1..={MAX_ENVELOPE} bytes"
                )));
            }
            let value =
                UserDecryptionResponse::new(&record.id, r.client_key_digest, sha3_256(envelope));
            check_signer(recover_signer(domain, &value, &sig(signature)?), signer)?;
            // Shares differ per party by design: nothing to agree on.
            Ok(sha3_256(envelope))
        }
        (KmsRequest::KeyGen(_) | KmsRequest::CrsGen(_), Fulfillment::Material { items }) => {
            if items.is_empty() || items.len() > MAX_MATERIAL_ITEMS {
                return Err(TxError::Malformed(format!(
                    "material responses carry 1..={MAX_MATERIAL_ITEMS} items"
                )));
            }
            let mut agreed = Vec::new();
            for MaterialItem {
                data_type,
                digest,
                signature,
            } in items
            {
                if data_type.is_empty() || data_type.len() > 64 {
                    return Err(TxError::Malformed("bad data type name".into()));
                }
                let value = PublicMaterial::new(&record.id, data_type, *digest);
                check_signer(recover_signer(domain, &value, &sig(signature)?), signer)?;
                agreed.push((data_type.clone(), *digest));
            }
            Ok(sha3_256(&codec::encode(&agreed)))
        }
        (KmsRequest::Reshare { .. }, Fulfillment::ReshareDone) => Ok([0; 32]),
        (req, _) => Err(TxError::Malformed(format!(
            "response type does not match a {} request",
            req.kind()
        ))),
    }
}

/// The responders and the digest of their list.
fn responders(record: &RequestRecord) -> ([u8; 32], Vec<u32>) {
    let list: Vec<u8> = record
        .responded
        .iter()
        .flat_map(|i| i.to_be_bytes())
        .collect();
    (sha3_256(&list), record.responded.clone())
}

/// Records a party's response and completes the request when enough responses exist.
pub fn fulfill(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    request_id: RequestId,
    fulfillment: Fulfillment,
) -> Result<(), TxError> {
    let cfg = config::load(ctx)?;
    let party = cfg
        .party_by_signer(sender)
        .ok_or_else(|| TxError::NotParty(hex::encode(sender)))?
        .clone();
    let mut record = load_request(ctx, &request_id)?;
    if let RequestStatus::Completed { .. } = record.status {
        return Err(TxError::ResponseRejected(format!(
            "request {request_id} is complete"
        )));
    }
    if record.responded.contains(&party.index) {
        return Err(TxError::ResponseRejected(format!(
            "party {} already responded to {request_id}",
            party.index
        )));
    }
    let digest = verify_fulfillment(&cfg, &record, &party.signer, &fulfillment)?;
    ctx.put(
        keys::response(&request_id, party.index),
        &ResponseRecord {
            request_id,
            party: party.index,
            fulfillment,
            result_digest: digest,
            height: ctx.height,
        },
    );
    let pos = record.responded.partition_point(|&i| i < party.index);
    record.responded.insert(pos, party.index);
    ctx.emit(
        "kms_response",
        &[
            ("request_id", request_id.to_string()),
            ("party", party.index.to_string()),
        ],
    );

    let n = cfg.parties.len();
    let t = cfg.threshold as usize;
    let completion = match &record.request {
        KmsRequest::PublicDecrypt(_) | KmsRequest::KeyGen(_) | KmsRequest::CrsGen(_) => {
            // t + 1 identical results: at least one honest party vouches for it.
            let mut matching = Vec::new();
            for &i in &record.responded {
                let r: ResponseRecord = ctx
                    .get(&keys::response(&request_id, i))?
                    .ok_or_else(|| TxError::Internal(format!("response {i} missing")))?;
                if r.result_digest == digest {
                    matching.push(i);
                }
            }
            (matching.len() > t).then_some((digest, matching))
        }
        // Shares differ per party: the result is who responded.
        KmsRequest::UserDecrypt(_) => (record.responded.len() == n).then(|| responders(&record)),
        KmsRequest::Reshare { .. } => {
            (record.responded.len() >= n - t).then(|| responders(&record))
        }
    };
    if let Some((result_digest, payees)) = completion {
        record.status = RequestStatus::Completed {
            height: ctx.height,
            result_digest,
        };
        let addrs: Vec<Address> = payees
            .iter()
            .filter_map(|i| cfg.parties.get(*i as usize - 1).map(|p| p.signer))
            .collect();
        tokens::pay_out(ctx, record.fee, &addrs)?;
        ctx.emit(
            "kms_complete",
            &[
                ("request_id", request_id.to_string()),
                ("result_digest", hex::encode(result_digest)),
            ],
        );
    }
    ctx.put(keys::request(&request_id), &record);
    Ok(())
}
