//! Receivers of the messages sent to an organisation's silo (Sentry's `process_send_signal`).

use ::signals::outbox::Delivery;
use ::signals::receiver;

use crate::context::Context;
use crate::db::Tx;
use crate::error::AppError;
use crate::remote::{self, RemoteSignal};
use crate::signals::send_signal;

/// `member_joined` was sent to this organisation's silo: send it here, with `send_robust`, in
/// the delivery's transaction. A failing local receiver is logged and the message is still
/// removed: it was delivered; its receivers' failures are theirs.
#[receiver(signal = send_signal, sender = RemoteSignal::MemberJoined)]
fn process_member_joined(
    organization_id: i64,
    args: &serde_json::Value,
    delivery: &Delivery<'_>,
) -> Result<(), AppError> {
    let ctx: &Context = delivery.state()?;
    let tx = Tx::lent(delivery);
    remote::send_locally(ctx, &tx, RemoteSignal::MemberJoined, organization_id, args)
}
