//! `users.py`: the first user of a monolith installation, created by `sentry upgrade`.

use ::signals::receiver;

use crate::context::Context;
use crate::db::{Db, Tx};
use crate::error::AppError;
use crate::models::{self, User};
use crate::signals::{SiloMode, post_upgrade};
use crate::trace;

/// Creates the first superuser, once: without an operator, `admin@localhost` in debug mode
/// (and nothing otherwise); with one, after asking. Runs before `create_default_projects`
/// (higher priority), which makes that user the owner of the default organisation.
#[receiver(
    signal = post_upgrade,
    sender = SiloMode::Monolith,
    dispatch_uid = "create_first_user",
    priority = 10
)]
fn create_first_user(interactive: bool, db: &Db, ctx: &Context) -> Result<(), AppError> {
    db.transaction(|tx| {
        if models::superuser(tx)?.is_some() {
            return Ok(());
        }
        if !interactive {
            if ctx.settings.debug {
                create_superuser(ctx, tx, "admin@localhost")?;
                trace::note(
                    ctx,
                    "created the superuser admin@localhost (debug, non-interactive)",
                );
            }
            return Ok(());
        }
        if !ctx
            .prompt
            .confirm("Would you like to create a user account now?")?
        {
            trace::note(
                ctx,
                "Run `sentry createuser` later to create a user account.",
            );
            return Ok(());
        }
        let email = ctx.prompt.ask("Email")?;
        create_superuser(ctx, tx, &email)?;
        trace::note(ctx, format!("created the superuser {email}"));
        Ok(())
    })
}

fn create_superuser(ctx: &Context, tx: &Tx<'_>, email: &str) -> Result<User, AppError> {
    let mut user = User {
        id: None,
        email: email.to_owned(),
        name: email.split('@').next().unwrap_or(email).to_owned(),
        is_superuser: true,
    };
    models::save(ctx, tx, &mut user)?;
    Ok(user)
}
