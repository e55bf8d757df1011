//! The config contract: parties, threshold, fees, admins and the EIP-712 domain.

use crate::ctx::Ctx;
use crate::error::TxError;
use kms_chain_types::state::{keys, Config};
use kms_chain_types::tx::ConfigUpdate;
use kms_chain_types::Address;

/// The current config (set at genesis, so always present after init).
pub fn load(ctx: &Ctx<'_>) -> Result<Config, TxError> {
    ctx.get(keys::CONFIG)?
        .ok_or_else(|| TxError::Internal("no config at genesis".into()))
}

/// Applies an admin's change.
pub fn update(ctx: &mut Ctx<'_>, sender: &Address, change: ConfigUpdate) -> Result<(), TxError> {
    let mut cfg = load(ctx)?;
    if !cfg.is_admin(sender) {
        return Err(TxError::Unauthorized(format!(
            "{} is not a config admin",
            hex::encode(sender)
        )));
    }
    let what = match change {
        ConfigUpdate::SetParties { parties, threshold } => {
            cfg.parties = parties;
            cfg.threshold = threshold;
            "parties"
        }
        ConfigUpdate::SetFees(fees) => {
            cfg.fees = fees;
            "fees"
        }
        ConfigUpdate::AddAdmin(a) => {
            if !cfg.admins.contains(&a) {
                cfg.admins.push(a);
            }
            "admins"
        }
        ConfigUpdate::RemoveAdmin(a) => {
            cfg.admins.retain(|x| x != &a);
            "admins"
        }
        ConfigUpdate::AllowKeyForApp { key_id, app_id } => {
            crate::asc::set_key_app(ctx, &key_id, &app_id, true)?;
            ctx.emit(
                "key_app_allowed",
                &[("key_id", key_id.to_string()), ("app_id", app_id)],
            );
            return Ok(());
        }
        ConfigUpdate::DisallowKeyForApp { key_id, app_id } => {
            crate::asc::set_key_app(ctx, &key_id, &app_id, false)?;
            ctx.emit(
                "key_app_disallowed",
                &[("key_id", key_id.to_string()), ("app_id", app_id)],
            );
            return Ok(());
        }
    };
    cfg.validate()
        .map_err(|e| TxError::Invalid(format!("config: {e}")))?;
    ctx.put(keys::CONFIG.to_vec(), &cfg);
    ctx.emit("config_updated", &[("field", what.to_string())]);
    Ok(())
}
