//! Dispatch of one verified transaction to the contracts.

use crate::ctx::Ctx;
use crate::error::TxError;
use crate::{asc, config, isc, tokens};
use kms_chain_types::tx::{Msg, VerifiedTx};

/// Executes a transaction whose signature is verified: checks and bumps the nonce, then runs the
/// message. On error the caller discards the context, so nothing (not even the nonce) changes.
pub fn execute(ctx: &mut Ctx<'_>, tx: VerifiedTx) -> Result<(), TxError> {
    let sender = tx.sender;
    let mut acct = tokens::account(ctx, &sender)?;
    if acct.nonce != tx.body.nonce {
        return Err(TxError::BadNonce {
            expected: acct.nonce,
            got: tx.body.nonce,
        });
    }
    acct.nonce += 1;
    tokens::store(ctx, &sender, &acct);
    match tx.body.msg {
        Msg::Faucet { amount } => {
            let cfg = config::load(ctx)?;
            tokens::faucet(ctx, &sender, amount, cfg.fees.faucet_max)
        }
        Msg::Transfer { to, amount } => tokens::transfer(ctx, &sender, &to, amount),
        Msg::UpdateConfig(change) => config::update(ctx, &sender, change),
        Msg::CreateApplication { app_id } => isc::create_application(ctx, &sender, app_id),
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
    }
}
