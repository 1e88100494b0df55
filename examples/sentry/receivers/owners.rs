//! `owners.py`: an organisation keeps at least one owner. These `pre_save`/`pre_delete`
//! receivers veto the write: their `Err` stops the save, and nothing is written.

use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::{OWNER, OrganizationMember};
use crate::signals::{pre_delete, pre_save};
use ::signals::receiver;

const LAST_OWNER: &str = "An organization must have at least one owner";

/// Refuses to demote the last owner of an organisation.
#[receiver(signal = pre_save, sender = OrganizationMember, dispatch_uid = "prevent_demoting_last_owner")]
fn prevent_demoting_last_owner(instance: &OrganizationMember, tx: &Tx<'_>) -> Result<(), AppError> {
    let Some(id) = instance.id else {
        return Ok(());
    };
    if instance.role == OWNER {
        return Ok(());
    }
    let current: Option<String> = tx.query_opt(
        "SELECT role FROM sentry_organizationmember WHERE id = ?1",
        args![id],
    )?;
    if current.as_deref() == Some(OWNER) && other_owners(tx, instance, id)? == 0 {
        return Err(AppError::Validation(LAST_OWNER.into()));
    }
    Ok(())
}

/// Refuses to remove the last owner of an organisation.
#[receiver(signal = pre_delete, sender = OrganizationMember, dispatch_uid = "prevent_removing_last_owner")]
fn prevent_removing_last_owner(instance: &OrganizationMember, tx: &Tx<'_>) -> Result<(), AppError> {
    match instance.id {
        Some(id) if instance.role == OWNER && other_owners(tx, instance, id)? == 0 => {
            Err(AppError::Validation(LAST_OWNER.into()))
        }
        _ => Ok(()),
    }
}

fn other_owners(tx: &Tx<'_>, member: &OrganizationMember, id: i64) -> Result<i64, AppError> {
    tx.query_one(
        "SELECT COUNT(*) FROM sentry_organizationmember \
         WHERE organization_id = ?1 AND role = ?2 AND id != ?3",
        args![member.organization_id, OWNER, id],
    )
}
