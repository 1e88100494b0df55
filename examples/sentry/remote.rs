//! Signals sent to an organisation's silo (Sentry's `RpcOrganizationSignal`): the sender
//! schedules a [`RemoteSignal`] with its arguments as JSON, and the organisation's silo sends it
//! locally, with `send_robust`. In one process that happens on commit; across silos, over the
//! outbox, as a durable `send_signal` message (never coalesced: each is its own event).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{Context, SignalService};
use crate::db::{Route, Tx};
use crate::error::AppError;
use crate::outbox::OutboxScope;
use crate::signals::{MemberJoined, SignalCall, member_joined, send_signal};

/// The signals that can be sent to an organisation's silo, by the number Sentry stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum RemoteSignal {
    /// `member_joined`, with [`MemberJoinedArgs`].
    MemberJoined = 2,
}

/// `member_joined`'s arguments, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberJoinedArgs {
    pub(crate) user_id: i64,
}

/// Sends `signal` to `organization_id`'s silo, as the deployment does it: after `tx` commits
/// (never if it rolls back), or as a durable message written in `tx`.
pub(crate) fn schedule_signal(
    ctx: &Context,
    tx: &Tx<'_>,
    signal: RemoteSignal,
    organization_id: i64,
    args: Value,
) -> Result<(), AppError> {
    match ctx.settings.signal_service {
        SignalService::Outbox => {
            tx.enqueue(
                &send_signal,
                &signal,
                &SignalCall {
                    organization_id,
                    args,
                },
                &Route {
                    scope: OutboxScope::Organization,
                    shard: organization_id,
                    object: None,
                    to: &[],
                },
            )?;
        }
        SignalService::OnCommit => {
            let ctx = ctx.clone();
            tx.on_commit(move |db| {
                db.transaction(|tx| send_locally(&ctx, tx, signal, organization_id, &args))
            })?;
        }
    }
    Ok(())
}

/// Sends `signal` here, with `send_robust`: a failing receiver is logged, and does not fail
/// the call (nor, over the outbox, the message's delivery).
///
/// # Errors
///
/// When `args` are not the signal's.
pub(crate) fn send_locally(
    ctx: &Context,
    tx: &Tx<'_>,
    signal: RemoteSignal,
    organization_id: i64,
    args: &Value,
) -> Result<(), AppError> {
    match signal {
        RemoteSignal::MemberJoined => {
            let MemberJoinedArgs { user_id } = MemberJoinedArgs::deserialize(args)
                .map_err(|error| AppError::Validation(format!("{signal:?} arguments: {error}")))?;
            member_joined.send_robust(
                &"organization_signal_service",
                &MemberJoined {
                    organization_id,
                    user_id,
                    tx,
                    ctx,
                },
            );
        }
    }
    Ok(())
}
