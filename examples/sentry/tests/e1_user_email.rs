//! E1: `create_user_email` and the `UserEmail` → `Email` cascade on `post_save`.

use std::thread::{self, ThreadId};

use super::{calls, count_call, fresh, rows};
use crate::actions;
use crate::db::args;
use crate::error::AppError;
use crate::models::{self, Project, Table, User, UserEmail};
use crate::signals::{PostSave, post_save};

fn project(organization_id: i64, slug: &str) -> Project {
    Project {
        id: None,
        organization_id,
        slug: slug.into(),
        platform: None,
        flags: 0,
        first_event: false,
    }
}

#[test]
fn creating_a_user_creates_one_user_email_and_one_email() {
    let (ctx, db) = fresh();
    actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    assert_eq!(rows(&db, "auth_user"), 1);
    assert_eq!(rows(&db, "sentry_useremail"), 1);
    assert_eq!(rows(&db, "sentry_email"), 1);
}

#[test]
fn saving_an_existing_user_again_adds_no_rows() {
    let (ctx, db) = fresh();
    let mut user = actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    user.name = "Ada Lovelace".into();
    db.transaction(|tx| models::save(&ctx, tx, &mut user))
        .unwrap();
    assert_eq!(rows(&db, "auth_user"), 1);
    assert_eq!(rows(&db, "sentry_useremail"), 1);
    assert_eq!(rows(&db, "sentry_email"), 1);
}

#[test]
fn a_conflicting_user_email_is_ignored_in_a_savepoint_and_the_save_commits() {
    let (ctx, db) = fresh();
    let user = db
        .transaction(|tx| {
            // The conflicting row comes first; its user exists by the end of the transaction,
            // when the deferred foreign key is checked.
            tx.execute("PRAGMA defer_foreign_keys = ON", args![])?;
            tx.execute(
                "INSERT INTO sentry_useremail (user_id, email) VALUES (1, 'ada@example.com')",
                args![],
            )?;
            let mut user = User {
                id: None,
                email: "ada@example.com".into(),
                name: "Ada".into(),
                is_superuser: false,
            };
            models::save(&ctx, tx, &mut user)?;
            Ok(user)
        })
        .unwrap();
    assert_eq!(user.id, Some(1));
    assert_eq!(
        rows(&db, "auth_user"),
        1,
        "the user's transaction committed"
    );
    assert_eq!(rows(&db, "sentry_useremail"), 1);
    assert_eq!(
        rows(&db, "sentry_email"),
        0,
        "no UserEmail was created, so no cascade"
    );
}

#[test]
fn connecting_create_user_email_again_with_its_dispatch_uid_is_a_no_op() {
    let connection = post_save
        .connector()
        .sender::<User>()
        .dispatch_uid("create_user_email")
        .connect(|_, _: &PostSave<'_, User>| Ok::<_, AppError>(()));
    assert!(connection.is_duplicate());
    let (ctx, db) = fresh();
    actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    assert_eq!(rows(&db, "sentry_useremail"), 1);
}

#[test]
fn a_receiver_of_post_save_for_project_is_not_called_for_a_user() {
    let this_thread = thread::current().id();
    let _guard = post_save.connector().sender::<Project>().connect_scoped(
        move |_, _: &PostSave<'_, Project>| {
            if thread::current().id() == this_thread {
                count_call();
            }
        },
    );
    let (ctx, db) = fresh();
    actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    assert_eq!(calls(), 0);
    db.transaction(|tx| models::save(&ctx, tx, &mut project(1, "web")))
        .unwrap();
    assert_eq!(calls(), 1);
}

#[test]
fn an_any_sender_receiver_is_called_for_users_and_projects() {
    let (ctx, db) = fresh();
    actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    db.transaction(|tx| models::save(&ctx, tx, &mut project(1, "web")))
        .unwrap();
    assert_eq!(ctx.metrics.get("objects.created.auth_user"), 1);
    assert_eq!(ctx.metrics.get("objects.created.sentry_project"), 1);
    assert_eq!(ctx.metrics.get("objects.created.sentry_useremail"), 1);
}

#[test]
fn a_raw_save_skips_create_keys_for_project() {
    let (ctx, db) = fresh();
    db.transaction(|tx| models::save_raw(&ctx, tx, &mut project(1, "fixture")))
        .unwrap();
    assert_eq!(rows(&db, "sentry_projectkey"), 0);
    db.transaction(|tx| models::save(&ctx, tx, &mut project(1, "web")))
        .unwrap();
    assert_eq!(rows(&db, "sentry_projectkey"), 1);
}

#[test]
fn deleting_a_user_email_deletes_its_email_unless_another_uses_it() {
    let (ctx, db) = fresh();
    let ada = actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap();
    let grace = actions::sign_up(&ctx, &db, "grace@example.com", "Grace").unwrap();
    let shared = db
        .transaction(|tx| {
            let mut shared = UserEmail {
                id: None,
                user_id: grace.id.unwrap(),
                email: "ada@example.com".into(),
            };
            models::save(&ctx, tx, &mut shared)?;
            Ok(shared)
        })
        .unwrap();
    let own = db
        .transaction(|tx| Ok(UserEmail::load(tx, 1)?.filter(|email| Some(email.user_id) == ada.id)))
        .unwrap()
        .unwrap();
    assert_eq!(rows(&db, "sentry_email"), 2);
    db.transaction(|tx| models::delete(&ctx, tx, &own)).unwrap();
    assert_eq!(
        rows(&db, "sentry_email"),
        2,
        "ada@ is still used by Grace's UserEmail"
    );
    db.transaction(|tx| models::delete(&ctx, tx, &shared))
        .unwrap();
    assert_eq!(rows(&db, "sentry_email"), 1, "only grace@ is left");
}

#[test]
fn a_failing_post_save_receiver_aborts_the_save_and_nothing_is_written() {
    #[derive(Debug, thiserror::Error)]
    #[error("mail server down")]
    struct MailDown;
    let this_thread: ThreadId = thread::current().id();
    let _guard =
        post_save
            .connector()
            .sender::<User>()
            .connect_scoped(move |_, _: &PostSave<'_, User>| {
                if thread::current().id() == this_thread {
                    Err(MailDown)
                } else {
                    Ok(())
                }
            });
    let (ctx, db) = fresh();
    let error = actions::sign_up(&ctx, &db, "ada@example.com", "Ada").unwrap_err();
    assert!(error.to_string().contains("mail server down"), "{error}");
    assert_eq!(rows(&db, "auth_user"), 0);
    assert_eq!(rows(&db, "sentry_useremail"), 0);
    assert_eq!(rows(&db, "sentry_email"), 0);
}
