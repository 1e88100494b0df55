//! The application's signals, as Sentry's `signals.py` declares them, with their arguments.
//! Receivers live in `receivers/`, one file per concern; nothing here lists them.

use ::signals::signal;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::db::{Db, Tx};
use crate::models::{Model, Project};
use crate::outbox::OutboxCategory;
use crate::remote::RemoteSignal;

/// Which silo a process runs as: the sender of `post_upgrade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SiloMode {
    /// Everything in one process (self-hosted).
    Monolith,
    /// The control silo (users, integrations).
    Control,
    /// A region silo (organisations' data).
    Region,
}

/// `pre_save`'s arguments: the instance about to be written. A receiver's `Err` vetoes it.
pub(crate) struct PreSave<'a, M: ?Sized> {
    pub(crate) instance: &'a M,
    /// `true` when loading fixtures.
    pub(crate) raw: bool,
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) ctx: &'a Context,
}

/// `post_save`'s arguments.
pub(crate) struct PostSave<'a, M: ?Sized> {
    pub(crate) instance: &'a M,
    /// Whether the save inserted the row.
    pub(crate) created: bool,
    /// `true` when loading fixtures.
    pub(crate) raw: bool,
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) ctx: &'a Context,
}

/// `pre_delete`'s and `post_delete`'s arguments.
pub(crate) struct Delete<'a, M: ?Sized> {
    pub(crate) instance: &'a M,
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) ctx: &'a Context,
}

impl<'b, 'x: 'b, M: Model> From<&'b PreSave<'x, M>> for PreSave<'b, dyn Model> {
    fn from(args: &'b PreSave<'x, M>) -> Self {
        PreSave {
            instance: args.instance,
            raw: args.raw,
            tx: args.tx,
            ctx: args.ctx,
        }
    }
}

impl<'b, 'x: 'b, M: Model> From<&'b PostSave<'x, M>> for PostSave<'b, dyn Model> {
    fn from(args: &'b PostSave<'x, M>) -> Self {
        PostSave {
            instance: args.instance,
            created: args.created,
            raw: args.raw,
            tx: args.tx,
            ctx: args.ctx,
        }
    }
}

impl<'b, 'x: 'b, M: Model> From<&'b Delete<'x, M>> for Delete<'b, dyn Model> {
    fn from(args: &'b Delete<'x, M>) -> Self {
        Delete {
            instance: args.instance,
            tx: args.tx,
            ctx: args.ctx,
        }
    }
}

/// `post_upgrade`'s arguments. Receivers open their own transactions.
pub(crate) struct Upgrade<'a> {
    /// Whether an operator is at the terminal.
    pub(crate) interactive: bool,
    pub(crate) db: &'a Db,
    pub(crate) ctx: &'a Context,
}

/// An event, as the ingestion pipeline hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) platform: Option<String>,
    pub(crate) has_minified_stack_trace: bool,
}

/// Arguments of the signals about one event of a project.
pub(crate) struct ProjectEvent<'a> {
    pub(crate) project: &'a Project,
    pub(crate) event: &'a Event,
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) ctx: &'a Context,
}

/// Arguments of the signals about one project.
pub(crate) struct ProjectArgs<'a> {
    pub(crate) project: &'a Project,
    /// The user who acted, when there is one.
    pub(crate) user_id: Option<i64>,
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) ctx: &'a Context,
}

/// `member_joined`'s arguments.
pub(crate) struct MemberJoined<'a> {
    pub(crate) organization_id: i64,
    pub(crate) user_id: i64,
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) ctx: &'a Context,
}

/// A model, by name: the sender of durable signals that Sentry sends with `sender=Project`
/// (a stored sender is a value, not a type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum ModelName {
    /// `Project`.
    Project,
}

/// `first_event_received`'s stored arguments. Its receivers get them with the delivery, whose
/// transaction they write in and whose idempotency key they give the analytics backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FirstEvent {
    pub(crate) project_id: i64,
    pub(crate) event_id: String,
    pub(crate) platform: Option<String>,
}

/// `send_signal`'s stored arguments: the organisation, whose silo sends the signal, and the
/// signal's own arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SignalCall {
    pub(crate) organization_id: i64,
    pub(crate) args: serde_json::Value,
}

/// A control outbox message's stored arguments; the region it is for is its delivery's
/// destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ControlMessage {
    pub(crate) object_identifier: i64,
    pub(crate) payload: String,
}

signal! {
    /// Sent before a model instance is written, by its type; an `Err` vetoes the save.
    pub(crate) static pre_save: Signal<PreSave<'_, M>, sender = type M: Model, any = PreSave<'_, dyn Model>>;
    /// Sent after a model instance is written, by its type, inside the transaction.
    pub(crate) static post_save: Signal<PostSave<'_, M>, sender = type M: Model, any = PostSave<'_, dyn Model>>;
    /// Sent before a model instance is deleted, by its type.
    pub(crate) static pre_delete: Signal<Delete<'_, M>, sender = type M: Model, any = Delete<'_, dyn Model>>;
    /// Sent after a model instance is deleted, by its type, inside the transaction.
    pub(crate) static post_delete: Signal<Delete<'_, M>, sender = type M: Model, any = Delete<'_, dyn Model>>;
    /// Sent after `upgrade` completes, by the running silo mode, with `send`.
    pub(crate) static post_upgrade: Signal<Upgrade<'_>, sender = SiloMode>;
    /// Enqueued once per project, in the transaction that marks its first event; delivered
    /// after commit until its receivers succeed (analytics down is retried, never lost).
    pub(crate) static first_event_received: durable Signal<FirstEvent, sender = ModelName>;
    /// Sent for every processed event, with `send_robust`.
    pub(crate) static event_processed: Signal<ProjectEvent<'_>, sender = type M>;
    /// Sent once per project, when its first transaction arrives, with `send_robust`.
    pub(crate) static first_transaction_received: Signal<ProjectArgs<'_>, sender = type M>;
    /// Sent when a project is created, by the code that created it, with `send_robust`.
    pub(crate) static project_created: Signal<ProjectArgs<'_>, sender = &'static str>;
    /// Sent when a user joins an organisation, in its silo (`remote::schedule_signal`), with
    /// `send_robust`.
    pub(crate) static member_joined: Signal<MemberJoined<'_>, sender = &'static str>;
    /// Sent when a user leaves feedback on an event, with `send_robust`.
    pub(crate) static user_feedback_received: Signal<ProjectArgs<'_>, sender = type M>;
    /// Enqueued by control-silo writes, one message per region, by category; delivered by the
    /// outbox worker: an `Err` leaves the message for a retry.
    pub(crate) static process_control_outbox: durable Signal<ControlMessage, sender = OutboxCategory>;
    /// Enqueued by `remote::schedule_signal` across silos, by the signal to send; delivered in
    /// the organisation's silo, which sends it there.
    pub(crate) static send_signal: durable Signal<SignalCall, sender = RemoteSignal>;
}
