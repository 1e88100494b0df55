//! `stats.py`: a metric per model created, from one receiver for every sender.

use ::signals::receiver;

use crate::context::Context;
use crate::models::Model;
use crate::signals::post_save;

/// Counts `objects.created.<table>`, whatever the model (an any-sender receiver, which gets the
/// instance as `&dyn Model`).
#[receiver(signal = post_save)]
fn record_object_created(instance: &dyn Model, created: bool, ctx: &Context) {
    if created {
        ctx.metrics
            .incr(&format!("objects.created.{}", instance.table()));
    }
}
