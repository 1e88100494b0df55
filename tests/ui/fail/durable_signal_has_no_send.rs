// A durable signal is sent with `signals::outbox::enqueue`, in the sender's transaction, and its
// receivers are plain: it has no `send`, `send_robust` or `emit`, which would skip the
// database, and no `connect_async`. `signal!`'s `durable Signal<..>` declares a `DurableSignal`;
// it is written out here because that expansion names `signals::outbox`, which only the
// `outbox` feature has, and this test must not depend on it.
use signals::{DurableSignal, Signature};

pub struct OrderPaid {
    pub order_id: u64,
}

#[allow(non_camel_case_types)]
pub enum order_paid {}

impl Signature for order_paid {
    type Args<'a> = OrderPaid;
    type Sender = u32;
    type Output = ();
}

#[allow(non_upper_case_globals)]
pub static order_paid: DurableSignal<order_paid> = DurableSignal::new("order_paid");

fn main() {
    let args = OrderPaid { order_id: 7 };
    let _ = order_paid.send(&1, &args);
    let _ = order_paid.send_robust(&1, &args);
    let _ = order_paid.emit(&1, &args);
    let _ = order_paid.connect_async(|_, _| Box::pin(async {}));
}
