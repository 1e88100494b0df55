use signals::{receiver, signal};

pub trait Model: Sync {}
pub struct Customer;
impl Model for Customer {}

pub struct Saved<'a, M: ?Sized> {
    pub instance: &'a M,
}

impl<'b, 'x: 'b, M: Model + 'static> From<&'b Saved<'x, M>> for Saved<'b, dyn Model> {
    fn from(args: &'b Saved<'x, M>) -> Self {
        Saved { instance: args.instance }
    }
}

signal! {
    pub static post_save: Signal<Saved<'_, M>, sender = type M: Model, any = Saved<'_, dyn Model>>;
}

// Without `sender = Customer`, this receiver gets the any-sender view: `&dyn Model`.
#[receiver(signal = post_save)]
fn welcome(instance: &Customer) {
    let _ = instance;
}

fn main() {}
