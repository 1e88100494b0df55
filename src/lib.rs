// In rustdoc the README's relative links have no file to point to: the first definition of a
// reference wins, so these point at the repository instead.
#![doc = "[benchmarks]: https://github.com/signals-rs/signals/blob/main/BENCHMARKS.md"]
#![doc = ""]
#![doc = include_str!("../README.md")]

pub use signals_core::*;

/// Durable signals: a transactional outbox on SQLite, or PostgreSQL (the `outbox` and
/// `postgres` features).
#[cfg(feature = "outbox")]
pub use signals_outbox as outbox;

/// Declares signals: for each, a `static` and the types and registration it needs.
///
/// ```
/// use signals::signal;
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// pub enum SiloMode { Monolith, Control, Region }
///
/// pub trait Model: Sync { fn table(&self) -> &'static str; }
///
/// pub struct PostUpgrade { pub interactive: bool }
/// pub struct UserCreated<'a> { pub email: &'a str }
/// pub struct PostSave<'a, M: ?Sized> { pub instance: &'a M, pub created: bool }
///
/// /// The view any-sender receivers of `post_save` get: the instance as `&dyn Model`.
/// impl<'b, 'x: 'b, M: Model + 'static> From<&'b PostSave<'x, M>> for PostSave<'b, dyn Model> {
///     fn from(args: &'b PostSave<'x, M>) -> Self {
///         PostSave { instance: args.instance, created: args.created }
///     }
/// }
///
/// signal! {
///     /// Sent after `upgrade`, by the running silo mode.
///     pub static post_upgrade: Signal<PostUpgrade, sender = SiloMode>;
///     /// Sent when a user signs up, by the channel; receivers answer with a line of text.
///     pub static user_created: Signal<UserCreated<'_>, sender = &'static str, output = String>;
///     /// Sent after a model is saved, by its type.
///     pub static post_save: Signal<PostSave<'_, M>, sender = type M: Model, any = PostSave<'_, dyn Model>>;
/// }
///
/// fn main() {
///     assert_eq!(post_upgrade.name(), "post_upgrade");
///     assert!(!user_created.has_listeners(&"web"));
///     assert!(signals::registry().signal("post_save").is_some());
/// }
/// ```
///
/// The syntax is `vis static name: Signal<Args, key = value, ...>;`, or
/// `vis static name: async Signal<Args, key = value, ...>;` for a signal whose receivers may be
/// `async fn` (sent with `.await`), with the keys `sender` (a value type, or `type M` with
/// optional bounds for a signal sent by a type), `output` and `any` (type senders only; the
/// view any-sender receivers get, made with a `From` impl as above). It declares a
/// [`Signal`], [`TypeSignal`], [`AsyncSignal`] or [`AsyncTypeSignal`]. See the crate
/// documentation for each.
///
/// `vis static name: durable Signal<Payload, sender = Category>;` declares a
/// [`DurableSignal`], for `signals::outbox` (the `outbox` feature): it has no `send`; its sends
/// are stored in the sender's database transaction with `enqueue`, and the outbox's workers
/// deliver them after commit, at least once. What is stored must outlive the process: the
/// payload owns its data (no borrowed fields or `'_`) and, like the sender, is
/// `serde`-serializable. The sender is a value, the message's category, or left out; there is
/// no `output`, and a durable signal is not `async`. Its receivers are plain `#[receiver]`s;
/// they take the payload's fields by name, and the delivery as a parameter named `delivery`.
///
/// A crate that depends on `signals` under another name, with
/// `events = { package = "signals", .. }` in its `Cargo.toml`, says so in a first line,
/// `crate = events;`, for all the declarations that follow, as it tells
/// `#[receiver(crate = events, ..)]`; without it, the generated code names `::signals`:
///
/// ```
/// # extern crate signals as events; // what the Cargo.toml above does
/// pub struct PostUpgrade { pub interactive: bool }
///
/// events::signal! {
///     crate = events;
///     pub static post_upgrade: Signal<PostUpgrade, sender = u8>;
/// }
///
/// #[events::receiver(crate = events, signal = post_upgrade, sender = 1)]
/// fn create_first_user(interactive: bool) {
///     assert!(!interactive);
/// }
///
/// fn main() -> Result<(), events::SendError> {
///     post_upgrade.send(&1, &PostUpgrade { interactive: false })?;
///     Ok(())
/// }
/// ```
pub use signals_macros::signal;

/// Registers a function as a receiver of one or more signals, at link time.
///
/// ```
/// use signals::{receiver, signal};
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// pub enum OutboxCategory { IntegrationUpdate, SentryAppUpdate }
///
/// pub struct Drained<'a> { pub object_id: u64, pub region: &'a str }
///
/// signal! {
///     pub static process_control_outbox: Signal<Drained<'_>, sender = OutboxCategory, output = u64>;
/// }
///
/// /// Parameters are taken by name from `Drained`, in any order.
/// #[receiver(
///     signal = process_control_outbox,
///     sender = OutboxCategory::IntegrationUpdate,
///     dispatch_uid = "process_integration_updates",
/// )]
/// fn process_integration_updates(region: &str, object_id: u64) -> u64 {
///     assert_eq!(region, "us");
///     object_id
/// }
///
/// fn main() -> Result<(), signals::SendError> {
///     let args = Drained { object_id: 7, region: "us" };
///     let responses = process_control_outbox.send(&OutboxCategory::IntegrationUpdate, &args)?;
///     assert_eq!(responses.into_outputs(), [7]);
///     let responses = process_control_outbox.send(&OutboxCategory::SentryAppUpdate, &args)?;
///     assert!(responses.is_empty());
///     Ok(())
/// }
/// ```
///
/// The keys are `signal` (required), `sender`, `dispatch_uid`, `priority` (an `i32`, written
/// without suffix) and `crate`; see the crate documentation for each, for how parameters are
/// matched and for what the compiler checks.
///
/// - **The sender's kind is read from its syntax.** `Enum::Variant`, `Type::CONST`, a
///   `SCREAMING_CASE` name and literals are values; any other path is a type, generic ones
///   (`W<u16>`) and one-letter ones (`T`) included. `sender = type DB` marks a name in capitals
///   (or a unit struct) as a type, `sender = const root` a lower-case constant as a value.
/// - **A parameter named `sender` is the sender** (`Option<&Sender>` for a value signal, a
///   `TypeSender` for a type signal). If the argument struct has a field named `sender`, take
///   it with `r#sender: &str`; a receiver that wants both takes the field through a pattern,
///   `Mail { sender: from, .. }: &Mail<'_>`, next to `sender`.
/// - **Receivers are free functions.** In an `impl` block, `#[receiver]` is an error at the
///   function's name; write a free function that calls the method:
///   `#[receiver(signal = post_save)] fn on_save(instance: &User) { Installer::on_save(instance) }`.
pub use signals_macros::receiver;
