//! The application smart contract: the single entry point for KMS requests and the collector of
//! the parties' responses.
//!
//! A request is validated (format, sizes, fee, the key it names and whether the application may
//! use it), checked by the application's ISC, assigned the request ID the KMS derives from its
//! canonical encoding, stored with the party set and threshold it was created under (frozen: a
//! later config change does not move its votes), and announced with a `kms_request` event.
//! Parties answer with `Fulfill` transactions signed by their registered key and carrying their
//! EIP-712 signature of the result; responses are recorded by signer key, and only keys of the
//! frozen set that are still registered count. A request completes when t + 1 parties agree on
//! the result (public decryption, keygen, CRS), when 2t + 1 parties have sent their shares (user
//! decryption; later shares are still recorded), or when all n parties report the same resharing
//! verdict (old shares are erased on completion). On completion the escrowed fee is paid to the signers that answered.
//!
//! Key epochs: every decryption and resharing request is stamped with its key's current sharing
//! epoch ([`kms_types::KeyEpoch`]); a resharing's completion starts the next epoch. One
//! resharing of a key runs at a time: another is refused until it completes or
//! [`kms_chain_types::state::RESHARE_TIMEOUT_BLOCKS`] pass, after which the new one supersedes
//! it and the old one can no longer complete (so the epoch a request names always comes from a
//! resharing every party reported done).

use crate::config;
use crate::ctx::Ctx;
use crate::error::TxError;
use crate::isc;
use crate::tokens;
use kms_chain_types::codec;
use kms_chain_types::state::{
    keys, Config, KeyApps, KeyEpochRecord, RequestRecord, RequestStatus, ResponseRecord,
    REQUEST_TIMEOUT_BLOCKS, RESHARE_TIMEOUT_BLOCKS,
};
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem};
use kms_chain_types::Address;
use kms_eip712::types::{PublicDecryptionResult, PublicMaterial, UserDecryptionResponse};
use kms_eip712::{recover_signer, Signature};
use kms_types::{sha3_256, CiphertextRef, FheType, KeyEpoch, ParamSetName, RequestId, Reshared};

/// Longest label of a keygen, CRS or reshare request.
pub const MAX_LABEL: usize = 128;
/// Smallest user-decryption envelope: version, ML-KEM-512 ciphertext, nonce, GCM tag.
pub const MIN_ENVELOPE: usize = 1 + 768 + 12 + 16;
/// Bytes of a party's flooded partial decryption of one squashed block.
pub const SHARE_BYTES_PER_BLOCK: usize = 64;

/// Most squashed blocks a ciphertext of `t` can have, whatever the parameters: a boolean is one
/// block; an integer has `bits / log2(message_modulus)` original blocks, packed two per squashed
/// block, and the message modulus is at least 2.
pub fn max_squashed_blocks(t: FheType) -> usize {
    match t {
        FheType::Bool => 1,
        other => (other.bits() as usize).div_ceil(2),
    }
}

/// Largest envelope a party's answer to a user decryption of `cts` can be (README "User
/// decryption envelope"): the header, the AES-GCM tag, the 65-byte inner signature, and the ABI
/// encoding of `UserDecryptionShare` (an outer offset, eight head words, three length words, one
/// word per digest and per type, and 64 bytes per squashed block padded to a word).
pub fn max_envelope(cts: &[CiphertextRef]) -> usize {
    let k = cts.len();
    let share_bytes: usize = cts
        .iter()
        .map(|c| max_squashed_blocks(c.fhe_type) * SHARE_BYTES_PER_BLOCK)
        .sum();
    let abi = 32 + 8 * 32 + 3 * 32 + 2 * 32 * k + share_bytes.div_ceil(32) * 32;
    MIN_ENVELOPE + abi + 65
}
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

/// A key set's sharing epoch and the resharing in progress.
pub fn key_epoch(ctx: &Ctx<'_>, key_id: &RequestId) -> Result<KeyEpochRecord, TxError> {
    Ok(ctx.get(&keys::key_epoch(key_id))?.unwrap_or_default())
}

/// The applications allowed to use a key set.
pub fn key_apps(ctx: &Ctx<'_>, key_id: &RequestId) -> Result<KeyApps, TxError> {
    Ok(ctx.get(&keys::key_apps(key_id))?.unwrap_or(KeyApps {
        key_id: *key_id,
        apps: Vec::new(),
    }))
}

/// The key must be a completed keygen that `app_id` may use.
fn require_key_for_app(ctx: &Ctx<'_>, key_id: &RequestId, app_id: &str) -> Result<(), TxError> {
    require_key(ctx, key_id)?;
    if key_apps(ctx, key_id)?.apps.iter().any(|a| a == app_id) {
        Ok(())
    } else {
        Err(TxError::KeyNotAllowed(format!(
            "application {app_id} may not use key set {key_id}"
        )))
    }
}

/// Most applications bound to one key set.
pub const MAX_APPS_PER_KEY: usize = 256;

/// Allows (`allow = true`) or disallows an application to use a key set (governance).
pub fn set_key_app(
    ctx: &mut Ctx<'_>,
    key_id: &RequestId,
    app_id: &str,
    allow: bool,
) -> Result<(), TxError> {
    isc::application(ctx, app_id)?;
    let mut ka = key_apps(ctx, key_id)?;
    if allow {
        require_key(ctx, key_id)?;
        if !ka.apps.iter().any(|a| a == app_id) {
            if ka.apps.len() >= MAX_APPS_PER_KEY {
                return Err(TxError::AppStateLimit(format!(
                    "key set {key_id} is bound to {MAX_APPS_PER_KEY} applications"
                )));
            }
            ka.apps.push(app_id.to_string());
        }
    } else {
        ka.apps.retain(|a| a != app_id);
    }
    ctx.put(keys::key_apps(key_id), &ka);
    Ok(())
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
            check_params(&cfg, r.params)?;
        }
        KmsRequest::CrsGen(r) => {
            require_admin(&cfg, sender, "CRS generation")?;
            check_label(&r.label)?;
            check_params(&cfg, r.params)?;
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
            if let Some((running, since)) = key_epoch(ctx, key_id)?.pending_reshare {
                if ctx.height < since.saturating_add(RESHARE_TIMEOUT_BLOCKS) {
                    return Err(TxError::Invalid(format!(
                        "resharing {running} of key {key_id} is in progress (approved at \
                         height {since}; a new one may supersede it from height {})",
                        since.saturating_add(RESHARE_TIMEOUT_BLOCKS)
                    )));
                }
            }
        }
        KmsRequest::PublicDecrypt(r) => {
            check_cts(&cfg, r.ciphertexts.len())?;
            require_key_for_app(ctx, &r.key_id, app_id)?;
            isc::isc_for(&app).check_decrypt(ctx, &app, sender, &r.ciphertexts)?;
        }
        KmsRequest::UserDecrypt(r) => {
            check_cts(&cfg, r.ciphertexts.len())?;
            // Every party must be able to answer in one transaction, or the request (and its
            // escrowed fee) would hang forever.
            let answer = max_envelope(&r.ciphertexts)
                .saturating_add(kms_chain_types::tx::FULFILLMENT_OVERHEAD_BYTES);
            if answer > kms_chain_types::tx::MAX_TX_BYTES {
                return Err(TxError::Invalid(format!(
                    "a party's answer to these ciphertexts can take {answer} bytes, over the \
                     {}-byte transaction limit: split the request",
                    kms_chain_types::tx::MAX_TX_BYTES
                )));
            }
            require_key_for_app(ctx, &r.key_id, app_id)?;
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
    let request_kind_is_crs = matches!(request, KmsRequest::CrsGen(_));
    let key_epoch = match &request {
        KmsRequest::PublicDecrypt(r) => key_epoch(ctx, &r.key_id)?.epoch,
        KmsRequest::UserDecrypt(r) => key_epoch(ctx, &r.key_id)?.epoch,
        KmsRequest::Reshare { key_id, .. } => {
            let mut e = key_epoch(ctx, key_id)?;
            e.pending_reshare = Some((id, ctx.height));
            ctx.put(keys::key_epoch(key_id), &e);
            e.epoch
        }
        KmsRequest::KeyGen(_) | KmsRequest::CrsGen(_) => KeyEpoch::default(),
    };
    let record = RequestRecord {
        id,
        app_id: app_id.to_string(),
        requester: *sender,
        request,
        fee,
        height: ctx.height,
        status: RequestStatus::Pending,
        parties: cfg.parties.iter().map(|p| p.signer).collect(),
        threshold: cfg.threshold,
        responded: Vec::new(),
        key_epoch,
        ceremony: request_kind_is_crs.then(|| crate::ceremony::start(ctx.height)),
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

/// Test (insecure) parameters only on a developer chain.
fn check_params(cfg: &Config, params: ParamSetName) -> Result<(), TxError> {
    if params == ParamSetName::TestInsecure && !cfg.developer_chain {
        return Err(TxError::InsecureParams(format!(
            "parameters {} are only accepted on a developer chain",
            params.as_str()
        )));
    }
    Ok(())
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
            let max = max_envelope(&r.ciphertexts);
            if envelope.len() < MIN_ENVELOPE || envelope.len() > max {
                return Err(TxError::Malformed(format!(
                    "envelope of {} bytes; this request's envelopes are {MIN_ENVELOPE}..={max} bytes",
                    envelope.len()
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
        (KmsRequest::Reshare { .. }, Fulfillment::ReshareDone { verdict_digest }) => {
            Ok(*verdict_digest)
        }
        (req, _) => Err(TxError::Malformed(format!(
            "response type does not match a {} request",
            req.kind()
        ))),
    }
}

/// Expires a request that did not complete within [`REQUEST_TIMEOUT_BLOCKS`] of its approval:
/// its fee goes back to the requester, no response is accepted any more, and a resharing in
/// progress that it was stops blocking its key's next one.
pub fn expire(ctx: &mut Ctx<'_>, request_id: RequestId) -> Result<(), TxError> {
    let mut record = load_request(ctx, &request_id)?;
    if record.status != RequestStatus::Pending {
        return Err(TxError::Invalid(format!(
            "request {request_id} is not pending"
        )));
    }
    // A ceremony in progress counts from its current turn's start (a ceremony of n turns may
    // rightly take longer than one request).
    let since = record
        .ceremony
        .as_ref()
        .map_or(record.height, |c| c.turn_started.max(record.height));
    let from = since.saturating_add(REQUEST_TIMEOUT_BLOCKS);
    if ctx.height < from {
        return Err(TxError::Invalid(format!(
            "request {request_id} may be expired from height {from}"
        )));
    }
    record.status = RequestStatus::Expired { height: ctx.height };
    tokens::credit(ctx, &record.requester, record.fee)?;
    if let KmsRequest::Reshare { key_id, .. } = &record.request {
        let mut e = key_epoch(ctx, key_id)?;
        if e.pending_reshare.map(|(id, _)| id) == Some(request_id) {
            e.pending_reshare = None;
            ctx.put(keys::key_epoch(key_id), &e);
        }
    }
    ctx.emit(
        "kms_expired",
        &[
            ("request_id", request_id.to_string()),
            ("kind", record.request.kind().to_string()),
        ],
    );
    ctx.put(keys::request(&request_id), &record);
    Ok(())
}

/// The digest of a list of signers.
fn signers_digest(signers: &[Address]) -> [u8; 32] {
    let list: Vec<u8> = signers.iter().flat_map(|a| a.iter().copied()).collect();
    sha3_256(&list)
}

/// Records a party's response and completes the request when enough responses exist.
///
/// Votes are keyed by signer: the sender must be in the party set frozen into the request and
/// still be a registered party; each signer answers once. Only responses of signers still
/// registered count towards completion.
pub fn fulfill(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    request_id: RequestId,
    fulfillment: Fulfillment,
) -> Result<(), TxError> {
    let cfg = config::load(ctx)?;
    if cfg.party_by_signer(sender).is_none() {
        return Err(TxError::NotParty(hex::encode(sender)));
    }
    let mut record = load_request(ctx, &request_id)?;
    let index = record.party_index(sender).ok_or_else(|| {
        TxError::ResponseRejected(format!(
            "{} is not in the party set request {request_id} was created under",
            hex::encode(sender)
        ))
    })?;
    if let RequestStatus::Expired { .. } = record.status {
        return Err(TxError::ResponseRejected(format!(
            "request {request_id} expired"
        )));
    }
    if let Fulfillment::CrsContribution { .. } | Fulfillment::CrsVote { .. } = fulfillment {
        if record.status != RequestStatus::Pending {
            return Err(TxError::ResponseRejected(format!(
                "request {request_id} is not pending"
            )));
        }
        crate::ceremony::respond(ctx, &cfg, &mut record, sender, index, &fulfillment)?;
        ctx.put(keys::request(&request_id), &record);
        return Ok(());
    }
    if !crate::ceremony::ready_for_material(&record) {
        return Err(TxError::ResponseRejected(format!(
            "the CRS ceremony of {request_id} has not ended with enough contributions"
        )));
    }
    let completed = matches!(record.status, RequestStatus::Completed { .. });
    // A completed user decryption still records late shares (the client may need more when some
    // are bad); they do not change the completion.
    let late_share_ok = matches!(record.request, KmsRequest::UserDecrypt(_));
    if completed && !late_share_ok {
        return Err(TxError::ResponseRejected(format!(
            "request {request_id} is complete"
        )));
    }
    if record.responded.contains(sender) {
        return Err(TxError::ResponseRejected(format!(
            "signer {} already responded to {request_id}",
            hex::encode(sender)
        )));
    }
    if let KmsRequest::Reshare { key_id, .. } = &record.request {
        // Only the key's resharing in progress may complete, and only from the epoch it
        // reshares: a superseded one never starts an epoch.
        let e = key_epoch(ctx, key_id)?;
        if e.pending_reshare.map(|(id, _)| id) != Some(request_id) || e.epoch != record.key_epoch {
            return Err(TxError::ResponseRejected(format!(
                "resharing {request_id} was superseded; key {key_id} is at {}",
                e.epoch
            )));
        }
    }
    let digest = verify_fulfillment(&cfg, &record, sender, &fulfillment)?;
    ctx.put(
        keys::response(&request_id, sender),
        &ResponseRecord {
            request_id,
            party: index,
            signer: *sender,
            fulfillment,
            result_digest: digest,
            height: ctx.height,
        },
    );
    record.responded.push(*sender);
    ctx.emit(
        "kms_response",
        &[
            ("request_id", request_id.to_string()),
            ("party", index.to_string()),
            ("signer", hex::encode(sender)),
        ],
    );
    if completed {
        ctx.put(keys::request(&request_id), &record);
        return Ok(());
    }

    // Frozen n and t; only votes of signers still registered count.
    let n = record.parties.len();
    let t = record.threshold as usize;
    let live: Vec<Address> = record
        .responded
        .iter()
        .filter(|a| cfg.party_by_signer(a).is_some())
        .copied()
        .collect();
    let matching = |ctx: &Ctx<'_>| -> Result<Vec<Address>, TxError> {
        let mut out = Vec::new();
        for a in &live {
            let r: ResponseRecord = ctx
                .get(&keys::response(&request_id, a))?
                .ok_or_else(|| TxError::Internal(format!("response {} missing", hex::encode(a))))?;
            if r.result_digest == digest {
                out.push(*a);
            }
        }
        Ok(out)
    };
    let completion = match &record.request {
        KmsRequest::PublicDecrypt(_) | KmsRequest::KeyGen(_) | KmsRequest::CrsGen(_) => {
            // t + 1 identical results: at least one honest party vouches for it.
            let m = matching(ctx)?;
            (m.len() > t).then_some((digest, m))
        }
        // Shares differ per party: 2t + 1 shares let the client decode robustly.
        KmsRequest::UserDecrypt(_) => {
            (live.len() > 2 * t).then(|| (signers_digest(&live), live.clone()))
        }
        // All n identical verdicts: old shares are erased on completion, which is safe only
        // when every party holds a share of the one new sharing (with n − t, a corrupt party and
        // a few dropped messages could leave the key hostage to it).
        KmsRequest::Reshare { .. } => {
            let m = matching(ctx)?;
            (m.len() >= n).then_some((digest, m))
        }
    };
    if let Some((result_digest, payees)) = completion {
        record.status = RequestStatus::Completed {
            height: ctx.height,
            result_digest,
        };
        tokens::pay_out(ctx, record.fee, &payees)?;
        if let KmsRequest::Reshare { key_id, .. } = &record.request {
            // Every party holds a checked share of the new sharing: its epoch starts now.
            let mut e = key_epoch(ctx, key_id)?;
            e.epoch = e
                .epoch
                .next(Reshared {
                    request: request_id,
                    verdict_digest: result_digest,
                })
                .ok_or_else(|| TxError::Internal("key epoch overflow".into()))?;
            e.pending_reshare = None;
            ctx.put(keys::key_epoch(key_id), &e);
        }
        if let KmsRequest::KeyGen(_) = record.request {
            // The requesting application may use the new key set.
            let mut ka = key_apps(ctx, &request_id)?;
            if !ka.apps.contains(&record.app_id) {
                ka.apps.push(record.app_id.clone());
            }
            ctx.put(keys::key_apps(&request_id), &ka);
        }
        ctx.emit(
            "kms_complete",
            &[
                ("request_id", request_id.to_string()),
                ("kind", record.request.kind().to_string()),
                ("result_digest", hex::encode(result_digest)),
            ],
        );
    }
    ctx.put(keys::request(&request_id), &record);
    Ok(())
}
