//! Aids for tests of code that sends signals: [`capture`] and [`assert_sent!`](crate::assert_sent)
//! to check what was sent, [`mute`] and [`mute_receiver`] to keep receivers out of a test,
//! [`raise_on_send`] to make robust sends fail loudly, and [`connected_to`] for a receiver that
//! lasts one test.
//!
//! # Scope
//!
//! Every aid is a guard, and a guard acts on the sends **started on the thread that created
//! it, while it lives**. `cargo test` runs each test on its own thread, so tests running in
//! parallel in one test binary never see each other's mutes or captures. Sends started on
//! other threads (threads the test spawns, the workers of a multi-threaded async runtime) are
//! not affected; under `#[tokio::test]`, whose default runtime runs every task on the test's
//! thread, they are. An async send counts where it is first polled. Guards are not `Send`, so
//! they are dropped on the thread that made them, and they nest.
//!
//! While no guard is alive anywhere in the process, sends pay one relaxed atomic load for all
//! of this; while guards are alive on other threads only, a thread-local read more.
//!
//! ```
//! use signals::{Signal, Signature, testing};
//!
//! #[derive(Debug)]
//! pub struct Saved { pub id: u64, pub created: bool }
//! pub enum SavedSignal {}
//! impl Signature for SavedSignal { type Args<'a> = Saved; type Sender = &'static str; type Output = (); }
//! # #[allow(non_upper_case_globals)]
//! static post_save: Signal<SavedSignal> = Signal::new("post_save");
//!
//! post_save.connector().dispatch_uid("send_welcome").connect(|_, _: &Saved| {});
//!
//! let sent = testing::capture(&post_save);
//! let _quiet = testing::mute_receiver("send_welcome");
//! post_save.emit(&"User", &Saved { id: 7, created: true }).unwrap();
//!
//! signals::assert_sent!(post_save, sender = "User", created = true);
//! assert_eq!(sent.sends()[0].responses[0].1, testing::Outcome::Muted);
//! ```

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::connect::ScopedConnection;
use crate::mode::Mode;
use crate::receiver::IntoResponse;
use crate::registry::{self, AnySignal};
use crate::signal::Signal;
use crate::signature::Signature;
use crate::watch::{self, Attached, Guard, Log, lock};
pub use crate::watch::{Capturable, Outcome, Sent};

/// Makes `send_robust` on this thread re-raise the first failure instead of recording it, until
/// the returned guard is dropped: a receiver's panic is resumed and an `Err` becomes a panic
/// naming the receiver (Sentry's `receivers_raise_on_send`). A test then fails at the
/// receiver that broke instead of passing with a logged error. Scoped to this thread, like
/// every aid (see [the module](self)).
///
/// ```
/// # use signals::{Signal, Signature};
/// # enum Saved {}
/// # impl Signature for Saved { type Args<'a> = (); type Sender = &'static str; type Output = (); }
/// # static saved: Signal<Saved> = Signal::new("saved");
/// saved.connect(|_, _: &()| -> Result<(), std::io::Error> { Err(std::io::Error::other("disk full")) });
/// let _raise = signals::testing::raise_on_send();
/// let caught = std::panic::catch_unwind(|| saved.send_robust(None, &()));
/// assert!(caught.is_err());
/// ```
#[must_use = "the switch is off again as soon as the guard is dropped"]
pub fn raise_on_send() -> RaiseOnSend {
    watch::raise_on_send(1);
    RaiseOnSend {
        _not_send: PhantomData,
    }
}

/// Guard returned by [`raise_on_send`]; robust sends on this thread record failures again once
/// every such guard is dropped.
#[derive(Debug)]
pub struct RaiseOnSend {
    _not_send: PhantomData<*const ()>,
}

impl Drop for RaiseOnSend {
    fn drop(&mut self) {
        watch::raise_on_send(-1);
    }
}

/// Mutes `signal` on this thread until the guard is dropped: its sends run no receiver and
/// return no responses (blinker's `muted()`, `factory_boy`'s `mute_signals`). A [`capture`]
/// still records them, marked [`Sent::muted`].
///
/// ```
/// # use signals::{Signal, Signature, testing};
/// # enum Ping {}
/// # impl Signature for Ping { type Args<'a> = (); type Sender = u32; type Output = (); }
/// # static ping: Signal<Ping> = Signal::new("ping");
/// ping.connect(|_, _: &()| -> () { panic!("must not run") });
/// let _muted = testing::mute(&ping);
/// ping.emit(&1, &()).unwrap();
/// ```
#[must_use = "the signal is unmuted as soon as the guard is dropped"]
pub fn mute<S: AnySignal + ?Sized>(signal: &S) -> Mute {
    let id = watch::add_guard(Guard::Muted(registry::signal_ref(signal).address()));
    Mute {
        id,
        _not_send: PhantomData,
    }
}

/// Guard returned by [`mute`] and [`mute_receiver`].
#[derive(Debug)]
pub struct Mute {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Mute {
    fn drop(&mut self) {
        watch::remove_guard(self.id);
    }
}

/// Keeps the receivers connected with `dispatch_uid` (static or runtime, on any signal) from
/// running in sends started on this thread, until the guard is dropped; the other receivers
/// run. A [`capture`] records them as [`Outcome::Muted`].
#[must_use = "the receiver runs again as soon as the guard is dropped"]
pub fn mute_receiver(dispatch_uid: impl Into<Cow<'static, str>>) -> Mute {
    let id = watch::add_guard(Guard::MutedUid(dispatch_uid.into()));
    Mute {
        id,
        _not_send: PhantomData,
    }
}

/// Records every send of `signal` started on this thread until the guard is dropped: the
/// sender and the arguments (both `Debug`-formatted) and how each receiver ended. Check them
/// with [`Capture::sends`] or [`assert_sent!`](crate::assert_sent).
///
/// ```
/// use signals::testing::{self, Outcome};
/// use signals::{receiver, signal};
///
/// #[derive(Debug)]
/// pub struct MemberJoined { pub organization_id: u64, pub user_id: u64 }
///
/// signal! {
///     pub static member_joined: Signal<MemberJoined, sender = &'static str>;
/// }
///
/// #[receiver(signal = member_joined, dispatch_uid = "send_welcome_email")]
/// fn send_welcome_email(user_id: u64) -> Result<(), std::io::Error> {
///     Err(std::io::Error::other(format!("no address for user {user_id}")))
/// }
///
/// let sent = testing::capture(&member_joined);
/// member_joined.send_robust(&"invite", &MemberJoined { organization_id: 1, user_id: 7 });
///
/// let send = &sent.sends()[0];
/// assert_eq!(send.sender.as_deref(), Some("\"invite\""));
/// assert_eq!(send.args, "MemberJoined { organization_id: 1, user_id: 7 }");
/// assert_eq!(send.responses[0].1, Outcome::Failed("no address for user 7".into()));
/// signals::assert_sent!(member_joined, sender = "invite", user_id = 7);
/// ```
#[must_use = "nothing is recorded once the guard is dropped"]
pub fn capture<S: Capturable + ?Sized>(signal: &S) -> Capture {
    let log = Arc::new(Mutex::new(Log::default()));
    let attached = Attached {
        log: Arc::clone(&log),
        render: signal.renderer(),
    };
    let id = watch::add_guard(Guard::Capture(
        registry::signal_ref(signal).address(),
        attached,
    ));
    Capture {
        id,
        signal: registry::signal_ref(signal).name(),
        log,
        _not_send: PhantomData,
    }
}

/// Guard returned by [`capture`]: the sends recorded so far.
pub struct Capture {
    id: u64,
    signal: &'static str,
    log: Arc<Mutex<Log>>,
    _not_send: PhantomData<*const ()>,
}

impl Capture {
    /// The sends recorded so far, in the order they started: a send made by a receiver comes
    /// after the send that ran it. A send still running is not recorded yet.
    #[must_use]
    pub fn sends(&self) -> Vec<Sent> {
        self.log().ended().cloned().collect()
    }

    /// How many sends were recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.log().ended().count()
    }

    /// Whether no send was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the sends recorded so far.
    pub fn clear(&self) {
        self.log().clear();
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        lock(&self.log)
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("signal", &self.signal)
            .field("sends", &self.sends())
            .finish_non_exhaustive()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        watch::remove_guard(self.id);
    }
}

/// Connects `receiver` to `signal` for any sender until the returned guard is dropped
/// (blinker's `connected_to`), with the scope of the other aids: it runs only for sends started
/// on this thread (for an async send, the thread that first polls it), so that tests running
/// in parallel never run each other's receivers. `has_listeners` and `receivers` count it on
/// every thread.
///
/// For a sender, a `dispatch_uid`, a type signal (with or without a sender type) or an async
/// receiver, the connectors do the same with
/// [`this_thread`](crate::Connector::this_thread):
/// `post_save.connector().sender::<User>().this_thread().connect_scoped(..)`.
///
/// ```
/// # use signals::{Signal, Signature, testing};
/// # enum Ping {}
/// # impl Signature for Ping { type Args<'a> = (); type Sender = u32; type Output = (); }
/// # #[allow(non_upper_case_globals)]
/// # static ping: Signal<Ping> = Signal::new("ping");
/// let _connected = testing::connected_to(&ping, |_, _: &()| println!("pinged"));
/// ping.emit(&1, &()).unwrap(); // prints; a send on another thread would not
/// ```
#[track_caller]
pub fn connected_to<F, D, C, R>(signal: &Signal<F, D>, receiver: C) -> ScopedConnection<'_>
where
    F: Signature,
    D: Mode,
    C: for<'x, 'r, 'a> Fn(Option<&'x F::Sender>, &'r F::Args<'a>) -> R + Send + Sync + 'static,
    R: IntoResponse<F::Output> + 'static,
{
    signal.connector().this_thread().connect_scoped(receiver)
}

/// Asserts that a [`capture`] on this thread recorded a send of `signal` whose sender and
/// arguments match, and panics with every captured send otherwise.
///
/// `sender = X` matches the sender by how it is written: a type's name (`User` for a type
/// signal, or `models::User`), an enum variant (`SiloMode::Monolith` matches the value
/// `Monolith`) or a literal (`42`, `"user"`), by whole path segments. Each `field = value`
/// matches a field of the arguments by its whole name, at the top level of the argument
/// struct (not inside a nested one), and by its whole value: the value's `Debug` rendering
/// must equal the field's, as the capture recorded it. Matching is on the `Debug` text, which
/// is all a capture keeps (the arguments borrow, so they cannot be kept for a typed check):
/// two values that render alike match alike.
///
/// ```
/// # use signals::{Signal, Signature, testing};
/// # #[derive(Debug)] pub struct Upgrade { pub interactive: bool }
/// # enum PostUpgrade {}
/// # impl Signature for PostUpgrade { type Args<'a> = Upgrade; type Sender = u32; type Output = (); }
/// # #[allow(non_upper_case_globals)]
/// # static post_upgrade: Signal<PostUpgrade> = Signal::new("post_upgrade");
/// let _sent = testing::capture(&post_upgrade);
/// post_upgrade.emit(&1, &Upgrade { interactive: false }).unwrap();
/// signals::assert_sent!(post_upgrade, sender = 1, interactive = false);
/// ```
#[macro_export]
macro_rules! assert_sent {
    ($signal:expr, sender = $sender:expr $(, $field:ident = $value:expr)* $(,)?) => {
        $crate::testing::__assert_sent(
            &$signal,
            ::core::option::Option::Some(::core::stringify!($sender)),
            &[$((::core::stringify!($field), ::std::format!("{:?}", $value))),*],
        )
    };
    ($signal:expr $(, $field:ident = $value:expr)* $(,)?) => {
        $crate::testing::__assert_sent(
            &$signal,
            ::core::option::Option::None,
            &[$((::core::stringify!($field), ::std::format!("{:?}", $value))),*],
        )
    };
}

/// What [`assert_sent!`](crate::assert_sent) expands to.
#[doc(hidden)]
#[track_caller]
pub fn __assert_sent<S: AnySignal + ?Sized>(
    signal: &S,
    sender: Option<&str>,
    fields: &[(&str, String)],
) {
    let seen = watch::seen(registry::signal_ref(signal).address());
    assert!(
        !seen.captures.is_empty(),
        "assert_sent!({}): no capture of `{}` is alive on this thread; start one with \
         `let _sent = signals::testing::capture(&{});` before the send",
        registry::signal_ref(signal).name(),
        registry::signal_ref(signal).name(),
        registry::signal_ref(signal).name(),
    );
    let sends: Vec<Sent> = seen
        .captures
        .iter()
        .flat_map(|attached| lock(&attached.log).ended().cloned().collect::<Vec<_>>())
        .collect();
    let matches = |sent: &Sent| {
        let args = top_level_fields(&sent.args).unwrap_or_default();
        sender.is_none_or(|wanted| {
            sent.sender
                .as_deref()
                .is_some_and(|actual| crate::explain::names(actual, wanted).is_some())
        }) && fields
            .iter()
            .all(|(field, value)| args.iter().any(|(name, v)| name == field && v == value))
    };
    if sends.iter().any(matches) {
        return;
    }
    let wanted: Vec<String> = sender
        .map(|sender| format!("sender = {sender}"))
        .into_iter()
        .chain(
            fields
                .iter()
                .map(|(field, value)| format!("{field} = {value}")),
        )
        .collect();
    let mut report = String::new();
    for sent in &sends {
        let sender = sent.sender.as_deref().unwrap_or("none");
        let _ = write!(report, "\n  sender {sender}: {}", sent.args);
    }
    if sends.is_empty() {
        report.push_str("\n  (nothing was sent)");
    }
    panic!(
        "assert_sent!({}): no send with {}; captured sends:{report}",
        registry::signal_ref(signal).name(),
        if wanted.is_empty() {
            "anything".to_owned()
        } else {
            wanted.join(", ")
        },
    );
}

/// The top-level fields of a struct's `Debug` rendering (`Saved { user_id: 1, id: 12 }`), by
/// name, each with its value as rendered; `None` for anything else (a tuple struct, a unit).
/// Commas and braces inside nested values, strings and characters do not split fields.
fn top_level_fields(debug: &str) -> Option<Vec<(&str, &str)>> {
    let open = opening_brace(debug)?;
    let body = &debug[open + 1..];
    let mut fields = Vec::new();
    let mut depth = 0_usize;
    let mut start = 0;
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => skip_string(&mut chars),
            '\'' => skip_char(&mut chars),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => {
                if let Some((name, value)) = body[start..at].split_once(": ") {
                    fields.push((name.trim(), value.trim()));
                }
                if c == '}' {
                    return Some(fields);
                }
                start = at + 1;
            }
            _ => {}
        }
    }
    None
}

/// Where the braces of a braced struct's rendering open: after its name, before any string.
fn opening_brace(debug: &str) -> Option<usize> {
    let open = debug.find(['{', '(', '[', '"', '\''])?;
    (debug.as_bytes()[open] == b'{' && !debug[..open].trim().is_empty()).then_some(open)
}

/// Skips past the end of a string whose opening quote was just read.
fn skip_string(chars: &mut std::str::CharIndices<'_>) {
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return,
            _ => {}
        }
    }
}

/// Skips past the end of a character literal whose opening quote was just read.
fn skip_char(chars: &mut std::str::CharIndices<'_>) {
    if let Some((_, '\\')) = chars.next() {
        chars.next();
    }
    chars.next(); // the closing quote
}

#[cfg(test)]
mod tests {
    use super::top_level_fields;

    #[test]
    fn fields_are_split_at_the_top_level_only() {
        assert_eq!(
            top_level_fields("Saved { user_id: 1, id: 12 }"),
            Some(vec![("user_id", "1"), ("id", "12")])
        );
        assert_eq!(
            top_level_fields(r#"Note { text: "x, id: 1 }", id: 3, c: '}', d: '\'' }"#),
            Some(vec![
                ("text", r#""x, id: 1 }""#),
                ("id", "3"),
                ("c", "'}'"),
                ("d", r"'\''")
            ])
        );
        assert_eq!(
            top_level_fields("Outer { inner: Inner { id: 1 }, list: [1, 2], id: 2 }"),
            Some(vec![
                ("inner", "Inner { id: 1 }"),
                ("list", "[1, 2]"),
                ("id", "2")
            ])
        );
        assert_eq!(
            top_level_fields(r#"Quoted { text: "a \" } b", id: 4 }"#),
            Some(vec![("text", r#""a \" } b""#), ("id", "4")])
        );
        assert_eq!(top_level_fields("Empty"), None);
        assert_eq!(top_level_fields("Pair(1, 2)"), None);
        assert_eq!(
            top_level_fields("Open { a: 1, .. }"),
            Some(vec![("a", "1")])
        );
    }
}
