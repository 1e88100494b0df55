//! The models, and saving and deleting them: each save sends `pre_save` and `post_save` inside
//! the caller's transaction, each delete `pre_delete` and `post_delete`, as Django's `Model.save`
//! and `delete` do, with `send`, so a receiver's error aborts the operation.

use crate::context::Context;
use crate::db::{FromRow, Row, Tx, Value, args};
use crate::error::AppError;
use crate::signals::{Delete, PostSave, PreSave, post_delete, post_save, pre_delete, pre_save};

/// What every model can say about itself, as `dyn Model` to any-sender receivers.
pub(crate) trait Model: 'static {
    /// The table it is stored in.
    fn table(&self) -> &'static str;
    /// Its primary key, once saved.
    fn id(&self) -> Option<i64>;
}

/// How a model is stored.
pub(crate) trait Table: Model + FromRow {
    /// The table name.
    const TABLE: &'static str;
    /// The columns after `id`, in the order `insert` binds them.
    const COLUMNS: &'static [&'static str];
    /// Sets the primary key after an insert.
    fn set_id(&mut self, id: i64);
    /// The values of `COLUMNS`.
    fn values(&self) -> Vec<Value>;

    /// Loads the row with primary key `id`.
    fn load(tx: &Tx<'_>, id: i64) -> Result<Option<Self>, AppError> {
        let sql = format!(
            "SELECT id, {} FROM {} WHERE id = ?1",
            Self::COLUMNS.join(", "),
            Self::TABLE
        );
        tx.query_opt(&sql, args![id])
    }
}

/// Saves `instance` (an insert if it has no id, an update otherwise), sending `pre_save` and
/// `post_save` with `raw = false`.
pub(crate) fn save<M: Table>(ctx: &Context, tx: &Tx<'_>, instance: &mut M) -> Result<(), AppError> {
    save_with(ctx, tx, instance, false)
}

/// Saves `instance` as a fixture load does (`raw = true`): receivers that only make sense for
/// real saves skip it.
#[cfg(test)]
pub(crate) fn save_raw<M: Table>(
    ctx: &Context,
    tx: &Tx<'_>,
    instance: &mut M,
) -> Result<(), AppError> {
    save_with(ctx, tx, instance, true)
}

fn save_with<M: Table>(
    ctx: &Context,
    tx: &Tx<'_>,
    instance: &mut M,
    raw: bool,
) -> Result<(), AppError> {
    pre_save.send::<M>(&PreSave {
        instance: &*instance,
        raw,
        tx,
        ctx,
    })?;
    let created = instance.id().is_none();
    let values = instance.values();
    if let Some(id) = instance.id() {
        let assignments: Vec<String> = M::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{column} = ?{}", i + 2))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE id = ?1",
            M::TABLE,
            assignments.join(", ")
        );
        let mut bound = vec![Value::from(id)];
        bound.extend(values);
        tx.execute(&sql, &bound)?;
    } else {
        let placeholders: Vec<String> = (1..=M::COLUMNS.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING id",
            M::TABLE,
            M::COLUMNS.join(", "),
            placeholders.join(", ")
        );
        let id = tx.query_one(&sql, &values)?;
        instance.set_id(id);
    }
    post_save.send::<M>(&PostSave {
        instance: &*instance,
        created,
        raw,
        tx,
        ctx,
    })?;
    Ok(())
}

/// Deletes `instance`, sending `pre_delete` and `post_delete`.
pub(crate) fn delete<M: Table>(ctx: &Context, tx: &Tx<'_>, instance: &M) -> Result<(), AppError> {
    let Some(id) = instance.id() else {
        return Ok(());
    };
    let args = Delete { instance, tx, ctx };
    pre_delete.send::<M>(&args)?;
    tx.execute(
        &format!("DELETE FROM {} WHERE id = ?1", M::TABLE),
        args![id],
    )?;
    post_delete.send::<M>(&args)?;
    Ok(())
}

macro_rules! model {
    (
        $(#[$doc:meta])*
        $name:ident in $table:literal { $($field:ident : $ty:ty),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct $name {
            /// Primary key; `None` until saved.
            pub(crate) id: Option<i64>,
            $(pub(crate) $field: $ty,)*
        }

        impl Model for $name {
            fn table(&self) -> &'static str {
                $table
            }

            fn id(&self) -> Option<i64> {
                self.id
            }
        }

        impl Table for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn set_id(&mut self, id: i64) {
                self.id = Some(id);
            }

            fn values(&self) -> Vec<Value> {
                vec![$(Value::from(self.$field.clone())),*]
            }
        }

        impl FromRow for $name {
            fn from_row(row: &Row) -> Result<Self, AppError> {
                let mut column = 0;
                let mut next = || {
                    column += 1;
                    column
                };
                Ok(Self {
                    id: Some(row.get(0)?),
                    $($field: row.get(next())?,)*
                })
            }
        }
    };
}

model! {
    /// A person with an account.
    User in "auth_user" { email: String, name: String, is_superuser: bool }
}

model! {
    /// An address a user has; `(user_id, email)` is unique.
    UserEmail in "sentry_useremail" { user_id: i64, email: String }
}

model! {
    /// An address known to the installation; unique.
    Email in "sentry_email" { email: String }
}

model! {
    /// An organisation.
    Organization in "sentry_organization" { slug: String, name: String }
}

model! {
    /// A user's membership in an organisation, with a role (`owner`, `manager`, `member`).
    OrganizationMember in "sentry_organizationmember" {
        organization_id: i64, user_id: i64, role: String,
    }
}

model! {
    /// A project of an organisation; `flags` is a bit set (`flags::*`).
    Project in "sentry_project" {
        organization_id: i64, slug: String, platform: Option<String>, flags: i64, first_event: bool,
    }
}

model! {
    /// A client key of a project.
    ProjectKey in "sentry_projectkey" { project_id: i64, label: String }
}

model! {
    /// A user's feedback on an event.
    UserReport in "sentry_userreport" {
        project_id: i64, event_id: String, email: String, comments: String,
    }
}

model! {
    /// An integration installed on the control silo and replicated to every region.
    Integration in "sentry_integration" { provider: String, name: String }
}

model! {
    /// A Sentry app (a third-party application) on the control silo.
    SentryApp in "sentry_sentryapp" { application_id: i64, slug: String }
}

model! {
    /// A Sentry app installed in an organisation.
    SentryAppInstallation in "sentry_sentryappinstallation" {
        sentry_app_id: i64, organization_id: i64,
    }
}

/// `Project.flags` bits.
pub(crate) mod flags {
    /// The project received a transaction.
    pub(crate) const HAS_TRANSACTIONS: i64 = 1 << 0;
    /// The project received an event with a minified stack trace.
    pub(crate) const HAS_MINIFIED_STACK_TRACE: i64 = 1 << 1;
    /// The project received user feedback.
    pub(crate) const HAS_USER_REPORTS: i64 = 1 << 2;
}

/// The role that may not disappear from an organisation.
pub(crate) const OWNER: &str = "owner";

/// The superuser, if the installation has one.
pub(crate) fn superuser(tx: &Tx<'_>) -> Result<Option<User>, AppError> {
    tx.query_opt(
        "SELECT id, email, name, is_superuser FROM auth_user WHERE is_superuser = 1 \
         ORDER BY id LIMIT 1",
        args![],
    )
}

/// The organisation's default owner: its first member with the owner role.
pub(crate) fn default_owner(tx: &Tx<'_>, organization_id: i64) -> Result<Option<i64>, AppError> {
    tx.query_opt(
        "SELECT user_id FROM sentry_organizationmember WHERE organization_id = ?1 \
         AND role = ?2 ORDER BY id LIMIT 1",
        args![organization_id, OWNER],
    )
}
