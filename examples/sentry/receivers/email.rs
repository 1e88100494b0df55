//! `email.py`: the `Email` table follows the `UserEmail` rows, a cascade of `post_save` from
//! `useremail`.

use ::signals::receiver;

use crate::context::Context;
use crate::db::{Tx, args};
use crate::error::AppError;
use crate::models::{self, Email, UserEmail};
use crate::signals::{post_delete, post_save};

/// Inserts the address into `Email` when a `UserEmail` is created; an address that is there
/// already is fine (unique violation ignored in a savepoint).
#[receiver(signal = post_save, sender = UserEmail, dispatch_uid = "create_email")]
fn create_email(
    instance: &UserEmail,
    created: bool,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    if created {
        let mut email = Email {
            id: None,
            email: instance.email.clone(),
        };
        tx.ignore_conflict(|tx| models::save(ctx, tx, &mut email))?;
    }
    Ok(())
}

/// Deletes the address from `Email` once no `UserEmail` uses it any more.
#[receiver(signal = post_delete, sender = UserEmail, dispatch_uid = "delete_email")]
fn delete_email(instance: &UserEmail, tx: &Tx<'_>, ctx: &Context) -> Result<(), AppError> {
    let still_used: i64 = tx.query_one(
        "SELECT COUNT(*) FROM sentry_useremail WHERE lower(email) = lower(?1)",
        args![&instance.email],
    )?;
    if still_used > 0 {
        return Ok(());
    }
    let email: Option<Email> = tx.query_opt(
        "SELECT id, email FROM sentry_email WHERE lower(email) = lower(?1)",
        args![&instance.email],
    )?;
    if let Some(email) = email {
        models::delete(ctx, tx, &email)?;
    }
    Ok(())
}
