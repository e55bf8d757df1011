//! Inclusion-proof contracts: per application, decide whether a requester may decrypt the
//! ciphertexts of a request.
//!
//! [`Isc`] is the interface the ASC calls; [`AclIsc`] is the first implementation, an ACL kept on
//! this chain by the application's admin. (An ISC that verifies EVM state proofs of an fhEVM
//! chain's ACL contract implements the same trait.)

use crate::ctx::Ctx;
use crate::error::TxError;
use kms_chain_types::state::{keys, Application, IscKind};
use kms_chain_types::tx::valid_app_id;
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

/// Registers an application; the sender administers its ACL.
pub fn create_application(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    app_id: String,
) -> Result<(), TxError> {
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
        admin: *sender,
        isc: IscKind::Acl,
    };
    ctx.put(keys::application(&app_id), &app);
    ctx.emit(
        "application_created",
        &[("app_id", app_id), ("admin", hex::encode(sender))],
    );
    Ok(())
}

/// Grants (`grant = true`) or revokes ACL entries.
pub fn set_acl(
    ctx: &mut Ctx<'_>,
    sender: &Address,
    app_id: &str,
    handles: &[[u8; 32]],
    addresses: &[Address],
    grant: bool,
) -> Result<(), TxError> {
    let app = application(ctx, app_id)?;
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
        || handles.len() * addresses.len() > MAX_ACL_BATCH * 4
    {
        return Err(TxError::Malformed(format!(
            "ACL change must name 1..={MAX_ACL_BATCH} handles and addresses, at most {} pairs",
            MAX_ACL_BATCH * 4
        )));
    }
    for h in handles {
        for a in addresses {
            let k = keys::acl(app_id, h, a);
            if grant {
                ctx.put_raw(k, vec![1]);
            } else {
                ctx.delete(k);
            }
        }
    }
    ctx.emit(
        if grant { "acl_granted" } else { "acl_revoked" },
        &[
            ("app_id", app_id.to_string()),
            ("entries", (handles.len() * addresses.len()).to_string()),
        ],
    );
    Ok(())
}
