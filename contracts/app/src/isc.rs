//! Inclusion-proof contracts: per application, decide whether a requester may decrypt the
//! ciphertexts of a request.
//!
//! [`Isc`] is the interface the ASC calls; [`AclIsc`] is the first implementation, an ACL kept on
//! this chain by the application's admin. (An ISC that verifies EVM state proofs of an fhEVM
//! chain's ACL contract implements the same trait.)

use crate::config;
use crate::ctx::Ctx;
use crate::error::TxError;
use kms_chain_types::state::{keys, Application, IscKind};
use kms_chain_types::tx::{valid_app_id, AppId};
use kms_chain_types::Address;
use kms_types::CiphertextRef;

/// Most handles or addresses in one ACL transaction.
pub const MAX_ACL_BATCH: usize = 256;

/// An inclusion-proof contract.
pub trait Isc {
    /// Whether `requester` may decrypt all of `ciphertexts` in application `app`.
    fn check_decrypt(
        &self,
        ctx: &Ctx<'_>,
        app: &Application,
        requester: &Address,
        ciphertexts: &[CiphertextRef],
    ) -> Result<(), TxError>;
}

/// The on-chain ACL.
pub struct AclIsc;

impl Isc for AclIsc {
    fn check_decrypt(
        &self,
        ctx: &Ctx<'_>,
        app: &Application,
        requester: &Address,
        ciphertexts: &[CiphertextRef],
    ) -> Result<(), TxError> {
        for ct in ciphertexts {
            // The handle must be the application's own (defence in depth: grants already
            // refuse other applications' handles).
            if handle_owner(ctx, &ct.digest)?.as_deref() != Some(app.app_id.as_str()) {
                return Err(TxError::HandleOwnedByOtherApp(format!(
                    "handle {} is not a handle of application {}",
                    hex::encode(ct.digest),
                    app.app_id
                )));
            }
            if ctx
                .raw(&keys::acl(&app.app_id, &ct.digest, requester))?
                .is_none()
            {
                return Err(TxError::IscDenied(format!(
                    "{} may not decrypt handle {} of application {}",
                    hex::encode(requester),
                    hex::encode(ct.digest),
                    app.app_id
                )));
            }
        }
        Ok(())
    }
}

/// The ISC implementation for an application.
pub fn isc_for(app: &Application) -> &'static dyn Isc {
    match app.isc {
        IscKind::Acl => &AclIsc,
    }
}

/// Loads an application.
pub fn application(ctx: &Ctx<'_>, app_id: &str) -> Result<Application, TxError> {
    ctx.get(&keys::application(app_id))?
        .ok_or_else(|| TxError::NotFound(format!("application {app_id:?}")))
}

/// Registers an application. Only the config contract's governance (its admins) registers
/// applications; `admin` manages the new application's ACL.
pub fn create_application(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    app_id: String,
    admin: Address,
) -> Result<(), TxError> {
    let cfg = config::load(ctx)?;
    if !cfg.is_admin(sender) {
        return Err(TxError::AppCreationUnauthorized(format!(
            "{} is not a config admin",
            hex::encode(sender)
        )));
    }
    if !valid_app_id(&app_id) {
        return Err(TxError::Malformed(format!(
            "application ID {app_id:?} must be 1-64 characters [a-z0-9-]"
        )));
    }
    if ctx.raw(&keys::application(&app_id))?.is_some() {
        return Err(TxError::Invalid(format!("application {app_id} exists")));
    }
    let app = Application {
        app_id: app_id.clone(),
        admin,
        isc: IscKind::Acl,
        acl_entries: 0,
        owned_handles: 0,
    };
    ctx.put(keys::application(&app_id), &app);
    ctx.emit(
        "application_created",
        &[("app_id", app_id), ("admin", hex::encode(admin))],
    );
    Ok(())
}

/// The application owning `handle`, if any.
pub fn handle_owner(ctx: &Ctx<'_>, handle: &[u8; 32]) -> Result<Option<AppId>, TxError> {
    ctx.get(&keys::handle_owner(handle))
}

/// Fails unless `handle` is owned by `app_id` (or, when `claim`, unowned: it then becomes
/// `app_id`'s, and `Ok(true)` says it was claimed now).
fn own_handle(
    ctx: &mut Ctx<'_>,
    app_id: &str,
    handle: &[u8; 32],
    claim: bool,
) -> Result<bool, TxError> {
    match handle_owner(ctx, handle)? {
        Some(owner) if owner == app_id => Ok(false),
        Some(owner) => Err(TxError::HandleOwnedByOtherApp(format!(
            "handle {} belongs to application {owner}, not {app_id}",
            hex::encode(handle)
        ))),
        None if claim => {
            ctx.put(keys::handle_owner(handle), &app_id.to_string());
            Ok(true)
        }
        None => Err(TxError::HandleOwnedByOtherApp(format!(
            "handle {} is not registered to application {app_id}",
            hex::encode(handle)
        ))),
    }
}

/// Grants (`grant = true`) or revokes ACL entries. Only handles of the application itself can be
/// granted: an unowned handle is registered to it on first grant, a handle of another
/// application is refused. The number of entries per application is bounded.
pub fn set_acl(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    app_id: &str,
    handles: &[[u8; 32]],
    addresses: &[Address],
    grant: bool,
) -> Result<(), TxError> {
    let mut app = application(ctx, app_id)?;
    if &app.admin != sender {
        return Err(TxError::Unauthorized(format!(
            "{} is not the admin of application {app_id}",
            hex::encode(sender)
        )));
    }
    if handles.is_empty()
        || addresses.is_empty()
        || handles.len() > MAX_ACL_BATCH
        || addresses.len() > MAX_ACL_BATCH
        || handles.len().saturating_mul(addresses.len()) > MAX_ACL_BATCH * 4
    {
        return Err(TxError::Malformed(format!(
            "ACL change must name 1..={MAX_ACL_BATCH} handles and addresses, at most {} pairs",
            MAX_ACL_BATCH * 4
        )));
    }
    let max_entries = config::load(ctx)?.max_acl_entries_per_app;
    for h in handles {
        if own_handle(ctx, app_id, h, grant)? {
            app.owned_handles = app.owned_handles.saturating_add(1);
            if app.owned_handles > max_entries {
                return Err(TxError::AppStateLimit(format!(
                    "application {app_id} may own at most {max_entries} handles"
                )));
            }
        }
        for a in addresses {
            let k = keys::acl(app_id, h, a);
            let present = ctx.raw(&k)?.is_some();
            if grant && !present {
                app.acl_entries = app.acl_entries.saturating_add(1);
                if app.acl_entries > max_entries {
                    return Err(TxError::AppStateLimit(format!(
                        "application {app_id} may hold at most {max_entries} ACL entries"
                    )));
                }
                ctx.put_raw(k, vec![1]);
            } else if !grant && present {
                app.acl_entries = app.acl_entries.saturating_sub(1);
                ctx.delete(k);
            }
        }
    }
    ctx.put(keys::application(app_id), &app);
    ctx.emit(
        if grant { "acl_granted" } else { "acl_revoked" },
        &[
            ("app_id", app_id.to_string()),
            ("entries", (handles.len() * addresses.len()).to_string()),
        ],
    );
    Ok(())
}
