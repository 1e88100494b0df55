//! `useremail.py`: every new user gets a `UserEmail` row for their address.

use ::signals::receiver;

use crate::context::Context;
use crate::db::Tx;
use crate::error::AppError;
use crate::models::{self, User, UserEmail};
use crate::signals::post_save;

/// Inserts the new user's `UserEmail`. A unique violation (the row exists already) is ignored
/// inside a savepoint, so the enclosing transaction, which saves the user, survives.
#[receiver(signal = post_save, sender = User, dispatch_uid = "create_user_email")]
fn create_user_email(
    instance: &User,
    created: bool,
    tx: &Tx<'_>,
    ctx: &Context,
) -> Result<(), AppError> {
    let (true, Some(user_id)) = (created, instance.id) else {
        return Ok(());
    };
    let mut user_email = UserEmail {
        id: None,
        user_id,
        email: instance.email.clone(),
    };
    tx.ignore_conflict(|tx| models::save(ctx, tx, &mut user_email))?;
    Ok(())
}
