//! Dispatch of one verified transaction to the contracts, with nonces and fees.
//!
//! As on Cosmos chains, every transaction included in a block with the sender's next nonce
//! consumes that nonce and pays the base fee, even when its message fails: a failed transaction
//! can never be replayed later, when it would succeed. A successful transaction also pays per
//! byte it writes to state (config admins, and parties answering requests, whose responses the
//! requester's fee pays for, are exempt).

use crate::ctx::Ctx;
use crate::error::TxError;
use crate::{asc, ceremony, config, isc, tokens};
use kms_chain_types::tx::{Msg, VerifiedTx};
use kms_chain_types::Address;

/// Checks that `nonce` is the sender's next nonce and consumes it.
fn consume_nonce(ctx: &mut Ctx<'_>, sender: &Address, nonce: u64) -> Result<(), TxError> {
    let mut acct = tokens::account(ctx, sender)?;
    if acct.nonce != nonce {
        return Err(TxError::BadNonce {
            expected: acct.nonce,
            got: nonce,
        });
    }
    acct.nonce = acct
        .nonce
        .checked_add(1)
        .ok_or_else(|| TxError::Invalid("nonce exhausted".into()))?;
    tokens::store(ctx, sender, &acct);
    Ok(())
}

/// Whether the sender pays no fee for this message.
fn fee_exempt(ctx: &Ctx<'_>, sender: &Address, msg: &Msg) -> Result<bool, TxError> {
    let cfg = config::load(ctx)?;
    Ok(cfg.is_admin(sender)
        || (matches!(msg, Msg::Fulfill { .. } | Msg::CrsSkipTurn { .. })
            && cfg.party_by_signer(sender).is_some()))
}

/// Executes a transaction whose signature is verified: checks and consumes the nonce, runs the
/// message, charges the fee. On error the caller discards the context and calls
/// [`charge_failure`] on a fresh one.
pub fn execute(ctx: &mut Ctx<'_>, tx: VerifiedTx) -> Result<(), TxError> {
    let sender = tx.sender;
    consume_nonce(ctx, &sender, tx.body.nonce)?;
    let exempt = fee_exempt(ctx, &sender, &tx.body.msg)?;
    match tx.body.msg {
        Msg::Faucet { amount } => {
            let cfg = config::load(ctx)?;
            // A public faucet only on developer chains; elsewhere only governance mints.
            if !cfg.developer_chain && !cfg.admins.contains(&sender) {
                return Err(TxError::Unauthorized(
                    "outside developer chains only admins may mint".into(),
                ));
            }
            tokens::faucet(ctx, &sender, amount, cfg.fees.faucet_max)
        }
        Msg::Transfer { to, amount } => tokens::transfer(ctx, &sender, &to, amount),
        Msg::UpdateConfig(change) => config::update(ctx, &sender, change),
        Msg::CreateApplication { app_id, admin } => {
            isc::create_application(ctx, &sender, app_id, admin)
        }
        Msg::AclGrant {
            app_id,
            handles,
            addresses,
        } => isc::set_acl(ctx, &sender, &app_id, &handles, &addresses, true),
        Msg::AclRevoke {
            app_id,
            handles,
            addresses,
        } => isc::set_acl(ctx, &sender, &app_id, &handles, &addresses, false),
        Msg::Request { app_id, request } => asc::submit(ctx, &sender, &app_id, request).map(|_| ()),
        Msg::Fulfill {
            request_id,
            fulfillment,
        } => asc::fulfill(ctx, &sender, request_id, fulfillment),
        Msg::Expire { request_id } => asc::expire(ctx, request_id),
        Msg::CrsSkipTurn { request_id, turn } => ceremony::skip_turn(ctx, request_id, turn),
    }?;
    if !exempt {
        let fees = config::load(ctx)?.fees;
        let fee = fees
            .per_state_byte
            .saturating_mul(u128::from(ctx.written_bytes()))
            .saturating_add(fees.tx_base);
        tokens::debit(ctx, &sender, fee)?;
    }
    Ok(())
}

/// The trace a failed transaction leaves: if it carried the sender's next nonce, the nonce is
/// consumed and the base fee is paid (as much of it as the balance covers). A transaction with
/// another nonce changes nothing (it returns the nonce error).
pub fn charge_failure(ctx: &mut Ctx<'_>, tx: &VerifiedTx) -> Result<(), TxError> {
    consume_nonce(ctx, &tx.sender, tx.body.nonce)?;
    let base = config::load(ctx)?.fees.tx_base;
    let balance = tokens::account(ctx, &tx.sender)?.balance;
    tokens::debit(ctx, &tx.sender, base.min(balance))
}
