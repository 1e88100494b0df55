//! Diagnostics: [`explain`] says which receivers of a signal run for a sender, in which order,
//! and why each other receiver does not; [`report`] lists the program's whole wiring.

use std::fmt;

use crate::receiver::{ReceiverInfo, SourceLocation};
use crate::registry::{self, SignalRef};
use crate::testing;

/// A signal of any kind: [`Signal`](crate::Signal), [`AsyncSignal`](crate::AsyncSignal),
/// [`TypeSignal`](crate::TypeSignal) or [`AsyncTypeSignal`](crate::AsyncTypeSignal). The testing
/// aids and [`explain`] take one.
pub trait AnySignal: SignalRef {}

impl<S: SignalRef + ?Sized> AnySignal for S {}

/// A signal that [`explain`] can explain for a sender of its kind: `Option<&Sender>` for value
/// signals, `Option<TypeSender>` for type signals (`None`: a send without sender).
pub trait Explain: AnySignal {
    /// How a sender of this signal is given.
    type Sender<'s>;

    /// The sender as the signal's receivers list it, `Debug`-formatted.
    #[doc(hidden)]
    fn sender_label(sender: Self::Sender<'_>) -> Option<String>;
}

/// One receiver of a signal as the table or the static registrations know it. Public only
/// because the hidden `SignalRef::rows` returns it.
#[doc(hidden)]
#[allow(unreachable_pub)]
pub struct Row {
    pub(crate) receiver: ReceiverInfo,
    pub(crate) sender: Option<String>,
    pub(crate) is_async: bool,
    pub(crate) state: RowState,
}

/// Where a [`Row`] stands.
pub(crate) enum RowState {
    /// In the table; `alive` is false for a weak receiver whose target is gone.
    Connected { alive: bool },
    /// A static receiver disconnected at run time.
    Disconnected,
    /// A static receiver left out because another one has its `dispatch_uid` and sender.
    Duplicate { first: SourceLocation },
}

/// Why a receiver does or does not run, in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// It runs, at this position (from 1). Async receivers of an async signal start after
    /// every plain one, so they come last.
    Runs {
        /// Its place in the dispatch order, from 1.
        position: usize,
    },
    /// It listens to another sender.
    OtherSender,
    /// It is muted on this thread, by [`testing::mute`] (the whole signal) or
    /// [`testing::mute_receiver`] (its `dispatch_uid`).
    Muted,
    /// It is a weak receiver whose target was dropped.
    TargetDropped,
    /// It is a static receiver that was disconnected at run time.
    Disconnected,
    /// It is a static receiver whose `dispatch_uid` and sender another one already has; only
    /// that one, defined at `first`, runs.
    DuplicateDispatchUid {
        /// Where the receiver that runs instead is defined.
        first: SourceLocation,
    },
}

/// One receiver of an [`Explanation`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Explained {
    /// The receiver.
    pub receiver: ReceiverInfo,
    /// The sender it listens to, `Debug`-formatted, or `None` for any sender.
    pub sender: Option<String>,
    /// Whether it is an async receiver.
    pub is_async: bool,
    /// Whether it runs, and why not.
    pub verdict: Verdict,
}

/// Which receivers of a signal run for one sender, in order, and why the others do not: from
/// [`explain`] or [`explain_by_name`]. Its `Display` is a report for people.
#[derive(Debug, Clone)]
pub struct Explanation {
    signal: &'static str,
    sender: Option<String>,
    receivers: Vec<Explained>,
}

impl Explanation {
    /// The signal's name.
    #[must_use]
    pub fn signal(&self) -> &'static str {
        self.signal
    }

    /// The sender explained, as given, or `None` for a send without sender.
    #[must_use]
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }

    /// Every receiver of the signal: those that run in dispatch order, then the others.
    #[must_use]
    pub fn receivers(&self) -> &[Explained] {
        &self.receivers
    }

    /// The names of the receivers that run, in dispatch order.
    #[must_use]
    pub fn running(&self) -> Vec<&'static str> {
        self.receivers
            .iter()
            .filter(|explained| matches!(explained.verdict, Verdict::Runs { .. }))
            .map(|explained| explained.receiver.name())
            .collect()
    }
}

/// Says which receivers of `signal` run for `sender`, in which order, and why each other one
/// does not: it listens to another sender, it is muted on this thread, its weak target was
/// dropped, it was disconnected, or its `dispatch_uid` is a duplicate.
///
/// ```
/// use signals_core::{Signal, Signature, Verdict};
///
/// enum Saved {}
/// impl Signature for Saved { type Args<'a> = (); type Sender = &'static str; type Output = (); }
/// # #[allow(non_upper_case_globals)]
/// static post_save: Signal<Saved> = Signal::new("post_save");
///
/// post_save.connector().sender("User").connect(|_, _: &()| {});
/// post_save.connector().sender("Team").connect(|_, _: &()| {});
///
/// let explanation = signals_core::explain(&post_save, Some(&"User"));
/// assert_eq!(explanation.receivers()[0].verdict, Verdict::Runs { position: 1 });
/// assert_eq!(explanation.receivers()[1].verdict, Verdict::OtherSender);
/// println!("{explanation}");
/// ```
pub fn explain<S: Explain + ?Sized>(signal: &S, sender: S::Sender<'_>) -> Explanation {
    build(signal, S::sender_label(sender))
}

/// [`explain`] by names, for tools: the signal named `signal`, and `sender` written as a type
/// name (`User`), an enum variant (`Monolith` or `SiloMode::Monolith`) or a literal; only the
/// last path segment is compared. `None` if the program has no signal of that name.
#[must_use]
pub fn explain_by_name(signal: &str, sender: Option<&str>) -> Option<Explanation> {
    let found = registry::all_signals()
        .into_iter()
        .find(|candidate| candidate.name() == signal)?;
    Some(build(found, sender.map(str::to_owned)))
}

fn build<S: SignalRef + ?Sized>(signal: &S, sender: Option<String>) -> Explanation {
    let seen = testing::seen(signal.address());
    let mut running: Vec<(bool, Explained)> = Vec::new();
    let mut others = Vec::new();
    for row in signal.rows() {
        let listens = match (&row.sender, &sender) {
            (None, _) => true,
            (Some(listened), Some(sent)) => same_sender(listened, sent),
            (Some(_), None) => false,
        };
        let muted = seen.muted || seen.mutes(&row.receiver);
        let verdict = match row.state {
            RowState::Duplicate { first } => Verdict::DuplicateDispatchUid { first },
            _ if !listens => Verdict::OtherSender,
            RowState::Disconnected => Verdict::Disconnected,
            RowState::Connected { alive: false } => Verdict::TargetDropped,
            RowState::Connected { alive: true } if muted => Verdict::Muted,
            RowState::Connected { alive: true } => Verdict::Runs { position: 0 },
        };
        let explained = Explained {
            receiver: row.receiver,
            sender: row.sender,
            is_async: row.is_async,
            verdict,
        };
        if explained.verdict == (Verdict::Runs { position: 0 }) {
            running.push((row.is_async, explained));
        } else {
            others.push(explained);
        }
    }
    // Plain receivers first, then async ones, each in table order (a stable sort).
    running.sort_by_key(|(is_async, _)| *is_async);
    let mut receivers: Vec<Explained> = running
        .into_iter()
        .enumerate()
        .map(|(index, (_, mut explained))| {
            explained.verdict = Verdict::Runs {
                position: index + 1,
            };
            explained
        })
        .collect();
    receivers.extend(others);
    Explanation {
        signal: signal.name(),
        sender,
        receivers,
    }
}

/// Whether a listed sender (`Debug`-formatted, or a type name) is the sender `wanted`, as
/// written by a person: equal, or equal in the last path segment, quotes aside.
pub(crate) fn same_sender(listed: &str, wanted: &str) -> bool {
    fn last(sender: &str) -> &str {
        let sender = sender.trim().trim_matches('"');
        let path = sender.split('<').next().unwrap_or(sender);
        path.rsplit("::").next().unwrap_or(path)
    }
    listed == wanted || last(listed) == last(wanted)
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = match &self.sender {
            Some(sender) => format!("sent by {sender}"),
            None => "sent without sender".to_owned(),
        };
        let running = self.running().len();
        let others = self.receivers.len() - running;
        writeln!(
            f,
            "{} {sent}: {running} receiver{} run{}, {others} do{} not",
            self.signal,
            plural(running),
            if running == 1 { "s" } else { "" },
            if others == 1 { "es" } else { "" },
        )?;
        if running > 0 {
            writeln!(f, "runs, in this order:")?;
        }
        for explained in &self.receivers {
            if let Verdict::Runs { position } = explained.verdict {
                writeln!(f, "  {position}. {}", Described(explained))?;
            }
        }
        if others > 0 {
            writeln!(f, "does not run:")?;
        }
        for explained in &self.receivers {
            let why = match &explained.verdict {
                Verdict::Runs { .. } => continue,
                Verdict::OtherSender => format!(
                    "listens to sender {}, not {}",
                    explained.sender.as_deref().unwrap_or("any"),
                    self.sender.as_deref().unwrap_or("none"),
                ),
                Verdict::Muted => "muted on this thread (testing::mute or mute_receiver)".into(),
                Verdict::TargetDropped => "its weak target was dropped".into(),
                Verdict::Disconnected => "disconnected at run time".into(),
                Verdict::DuplicateDispatchUid { first } => {
                    format!("duplicate dispatch_uid for this sender; the receiver at {first} runs")
                }
            };
            writeln!(f, "  - {}: {why}", Described(explained))?;
        }
        Ok(())
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A receiver on one line: path, sender, uid, where.
struct Described<'e>(&'e Explained);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Explained {
            receiver,
            sender,
            is_async,
            ..
        } = self.0;
        describe(f, receiver, sender.as_deref(), *is_async)
    }
}

fn describe(
    f: &mut fmt::Formatter<'_>,
    receiver: &ReceiverInfo,
    sender: Option<&str>,
    is_async: bool,
) -> fmt::Result {
    let module = receiver.module_path();
    if module.is_empty() || receiver.name().starts_with(module) {
        write!(f, "{}", receiver.name())?;
    } else {
        write!(f, "{module}::{}", receiver.name())?;
    }
    write!(f, " [sender {}", sender.unwrap_or("any"))?;
    if let Some(uid) = receiver.dispatch_uid() {
        write!(f, ", uid {uid:?}")?;
    }
    if receiver.priority() != 0 {
        write!(f, ", priority {}", receiver.priority())?;
    }
    if is_async {
        f.write_str(", async")?;
    }
    write!(f, "] at {}", receiver.location())
}

/// A human-readable listing of every signal of the program and its receivers, in dispatch
/// order, with where each is defined: the [`registry`](crate::registry) as text.
///
/// ```
/// println!("{}", signals_core::report());
/// ```
#[must_use]
pub fn report() -> String {
    registry::registry().to_string()
}

impl fmt::Display for registry::Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let receivers: usize = self.signals().iter().map(|s| s.receivers().len()).sum();
        writeln!(
            f,
            "{} signal{}, {receivers} receiver{}",
            self.signals().len(),
            plural(self.signals().len()),
            plural(receivers),
        )?;
        for signal in self.signals() {
            writeln!(f)?;
            write!(f, "{}", signal.name())?;
            match signal.sender() {
                registry::SenderKind::Value(ty) => write!(f, " (sender: a value of {ty})")?,
                registry::SenderKind::Type => f.write_str(" (sender: a type)")?,
            }
            if let Some(location) = signal.location() {
                write!(f, ", declared at {location}")?;
            }
            writeln!(f)?;
            if signal.receivers().is_empty() {
                writeln!(f, "  (no receivers)")?;
            }
            for (index, entry) in signal.receivers().iter().enumerate() {
                write!(f, "  {}. ", index + 1)?;
                describe(f, entry.receiver(), entry.sender(), entry.is_async())?;
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
