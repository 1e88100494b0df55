//! E7: a `pre_save` (and `pre_delete`) receiver that vetoes removing an organisation's last
//! owner: its `Err` stops the write, and nothing is written.

use super::installed;
use crate::actions;
use crate::db::Db;
use crate::error::AppError;
use crate::models::{self, OrganizationMember, Table};

fn role(db: &Db, member_id: i64) -> String {
    db.transaction(|tx| Ok(OrganizationMember::load(tx, member_id)?.unwrap().role))
        .unwrap()
}

#[test]
fn demoting_the_last_owner_is_refused_and_nothing_is_written() {
    let (ctx, db) = installed();
    let error = actions::change_role(&ctx, &db, 1, "member").unwrap_err();
    let AppError::Receiver(error) = &error else {
        panic!("expected a vetoing receiver, got {error}");
    };
    assert_eq!(
        error.receiver().unwrap().name(),
        "sentry::receivers::owners::prevent_demoting_last_owner"
    );
    assert_eq!(
        error.error().unwrap().to_string(),
        "validation failed: An organization must have at least one owner"
    );
    assert_eq!(role(&db, 1), "owner");
}

#[test]
fn demoting_an_owner_while_another_remains_is_allowed() {
    let (ctx, db) = installed();
    let grace = actions::sign_up(&ctx, &db, "grace@example.com", "Grace").unwrap();
    actions::join(&ctx, &db, 1, grace.id.unwrap(), "owner").unwrap();
    actions::change_role(&ctx, &db, 1, "member").unwrap();
    assert_eq!(role(&db, 1), "member");
}

#[test]
fn removing_the_last_owner_is_refused() {
    let (ctx, db) = installed();
    let owner = db
        .transaction(|tx| Ok(OrganizationMember::load(tx, 1)?.unwrap()))
        .unwrap();
    let error = db
        .transaction(|tx| models::delete(&ctx, tx, &owner))
        .unwrap_err();
    assert!(error.to_string().contains("at least one owner"), "{error}");
    assert_eq!(role(&db, 1), "owner");
}
