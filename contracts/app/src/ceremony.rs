//! The CRS ceremony's sequencing: the chain decides every turn, so all honest parties build on
//! one transcript.
//!
//! A CRS generation request starts a ceremony ([`start`]). The parties contribute in the order
//! of the request's frozen party set. In turn `i`, party `i + 1` proposes its contribution by
//! its SHA3-256 (`Fulfillment::CrsContribution`; its host publishes the bytes under that digest),
//! and every other party checks those bytes on top of the transcript the chain decided so far
//! and votes (`Fulfillment::CrsVote`). The turn is decided by the first of:
//!
//! * `2t + 1` valid votes (the proposal included): **accepted**. At least `t + 1` honest parties
//!   checked it and hold its bytes, so every honest party can fetch and resume from it.
//! * `t + 1` invalid votes: **rejected** (at least one honest party found it bad; checking is
//!   deterministic, so no honest party found it good).
//! * [`CRS_TURN_BLOCKS`](kms_chain_types::state::CRS_TURN_BLOCKS) passing without either (from the turn's start while nothing was
//!   proposed, from the proposal once made: silence, or bytes withheld): anyone may send
//!   `Msg::CrsSkipTurn` and the turn is **skipped**.
//!
//! A vote counts only while its signer is still registered. Once every party had its turn, the
//! ceremony ended: with at least `t + 1` accepted contributions (one of them honest, so the
//! CRS's secret is unknown to all) the parties assemble the CRS and report it as material, which
//! completes on `t + 1` matching reports as before; with fewer, the request fails at once and its
//! fee goes back.

use crate::asc::load_request;
use crate::ctx::Ctx;
use crate::error::TxError;
use crate::tokens;
use kms_chain_types::state::Config;
use kms_chain_types::state::{keys, CrsCeremony, CrsTurn, RequestRecord, RequestStatus};
use kms_chain_types::tx::{Fulfillment, KmsRequest};
use kms_chain_types::Address;
use kms_types::RequestId;

/// The ceremony of a CRS generation request approved at `height`: turn 0 starts now.
pub fn start(height: u64) -> CrsCeremony {
    CrsCeremony {
        turn_started: height,
        ..CrsCeremony::default()
    }
}

fn ceremony_of(record: &mut RequestRecord) -> Result<&mut CrsCeremony, TxError> {
    match (&record.request, record.ceremony.as_mut()) {
        (KmsRequest::CrsGen(_), Some(c)) => Ok(c),
        _ => Err(TxError::Malformed(format!(
            "request {} is not a CRS ceremony",
            record.id
        ))),
    }
}

fn rejected(msg: String) -> TxError {
    TxError::ResponseRejected(msg)
}

/// Records party `index` (signer `sender`)'s proposal or vote on the current turn of
/// `record`'s ceremony, and decides the turn if the votes suffice. The caller checked that the
/// sender is a registered party of the request's set and that the request is pending.
pub fn respond(
    ctx: &mut Ctx<'_>,
    cfg: &Config,
    record: &mut RequestRecord,
    sender: &Address,
    index: u32,
    f: &Fulfillment,
) -> Result<(), TxError> {
    let id = record.id;
    let n = record.parties.len();
    let t = record.threshold as usize;
    let c = ceremony_of(record)?;
    if c.finished(n) {
        return Err(rejected(format!("the ceremony of {id} has ended")));
    }
    match *f {
        Fulfillment::CrsContribution { turn, digest } => {
            if turn != c.turn || index != c.turn.saturating_add(1) {
                return Err(rejected(format!(
                    "party {index} may not contribute to turn {turn}; turn {} is party {}'s",
                    c.turn,
                    c.turn.saturating_add(1)
                )));
            }
            if c.proposal.is_some() {
                return Err(rejected(format!("turn {turn} of {id} has its proposal")));
            }
            c.proposal = Some(digest);
            c.proposed_at = Some(ctx.height);
            c.votes = vec![(*sender, true)];
            ctx.emit(
                "kms_crs_proposal",
                &[
                    ("request_id", id.to_string()),
                    ("turn", turn.to_string()),
                    ("digest", hex::encode(digest)),
                ],
            );
        }
        Fulfillment::CrsVote {
            turn,
            digest,
            valid,
        } => {
            if turn != c.turn || c.proposal != Some(digest) {
                return Err(rejected(format!(
                    "turn {turn} with proposal {} is not the current proposal of {id}",
                    hex::encode(digest)
                )));
            }
            if c.votes.iter().any(|(a, _)| a == sender) {
                return Err(rejected(format!(
                    "party {index} already voted on turn {turn} of {id}"
                )));
            }
            c.votes.push((*sender, valid));
        }
        _ => return Err(TxError::Malformed("not a ceremony response".into())),
    }
    let counted = |want: bool| {
        c.votes
            .iter()
            .filter(|(a, v)| *v == want && cfg.party_by_signer(a).is_some())
            .count()
    };
    let decision = if counted(true) > 2 * t {
        Some(c.proposal)
    } else if counted(false) > t {
        Some(None)
    } else {
        None
    };
    if let Some(accepted) = decision {
        advance(ctx, record, accepted)?;
    }
    Ok(())
}

/// `Msg::CrsSkipTurn`: skips turn `turn` of `request_id`'s ceremony if it is the current one and
/// its deadline passed ([`CrsCeremony::deadline`]: [`CRS_TURN_BLOCKS`](kms_chain_types::state::CRS_TURN_BLOCKS) after its start, or after
/// its proposal once made).
pub fn skip_turn(ctx: &mut Ctx<'_>, request_id: RequestId, turn: u32) -> Result<(), TxError> {
    let mut record = load_request(ctx, &request_id)?;
    if record.status != RequestStatus::Pending {
        return Err(TxError::Invalid(format!(
            "request {request_id} is not pending"
        )));
    }
    let n = record.parties.len();
    let height = ctx.height;
    let c = ceremony_of(&mut record)?;
    if c.finished(n) || c.turn != turn {
        return Err(TxError::Invalid(format!(
            "turn {turn} is not the current turn of {request_id}"
        )));
    }
    if height < c.deadline() {
        return Err(TxError::Invalid(format!(
            "turn {turn} of {request_id} may be skipped from height {}",
            c.deadline()
        )));
    }
    advance(ctx, &mut record, None)?;
    ctx.put(keys::request(&request_id), &record);
    Ok(())
}

/// Decides the current turn (`accepted` is the proposal's digest, or `None` if rejected or
/// skipped) and starts the next one, or ends the ceremony.
fn advance(
    ctx: &mut Ctx<'_>,
    record: &mut RequestRecord,
    accepted: Option<[u8; 32]>,
) -> Result<(), TxError> {
    let id = record.id;
    let n = record.parties.len();
    let t = record.threshold as usize;
    let height = ctx.height;
    let c = ceremony_of(record)?;
    let contributor = c.turn.saturating_add(1);
    c.decided.push(CrsTurn {
        contributor,
        accepted,
    });
    c.turn = contributor;
    c.turn_started = height;
    c.proposal = None;
    c.proposed_at = None;
    c.votes.clear();
    ctx.emit(
        "kms_crs_turn",
        &[
            ("request_id", id.to_string()),
            ("decided", (contributor - 1).to_string()),
            ("contributor", contributor.to_string()),
            ("accepted", accepted.is_some().to_string()),
            ("deadline", c.deadline().to_string()),
        ],
    );
    if !c.finished(n) {
        return Ok(());
    }
    let count = c.accepted().count();
    if count > t {
        ctx.emit(
            "kms_crs_ended",
            &[
                ("request_id", id.to_string()),
                ("accepted", count.to_string()),
            ],
        );
        return Ok(());
    }
    // Too few accepted contributions to contain an honest one: the request fails now.
    record.status = RequestStatus::Expired { height };
    tokens::credit(ctx, &record.requester, record.fee)?;
    ctx.emit(
        "kms_expired",
        &[
            ("request_id", id.to_string()),
            ("kind", record.request.kind().to_string()),
            (
                "reason",
                format!("{count} accepted contributions, {} needed", t + 1),
            ),
        ],
    );
    Ok(())
}

/// Whether the parties' material reports may be taken for `record`: always for a keygen; for a
/// CRS request only once its ceremony ended with enough accepted contributions (never for a CRS
/// record without a ceremony).
pub fn ready_for_material(record: &RequestRecord) -> bool {
    match (&record.request, &record.ceremony) {
        (KmsRequest::CrsGen(_), Some(c)) => {
            c.finished(record.parties.len()) && c.accepted().count() > record.threshold as usize
        }
        (KmsRequest::CrsGen(_), None) => false,
        _ => true,
    }
}
