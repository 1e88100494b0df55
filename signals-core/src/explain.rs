//! Diagnostics: [`explain`] says which receivers of a signal run for a sender, in which order,
//! and why each other receiver does not. [`report`](crate::report), in `render`, lists the
//! program's whole wiring.

use std::fmt;

use crate::error::ExplainError;
use crate::info::{ReceiverInfo, SourceLocation};
use crate::registry::{self, AnySignal, SignalRef};
use crate::render::{describe, plural};
use crate::table::{Row, RowState, SenderKey};
use crate::watch;

/// A signal that [`explain`] can explain for a sender of its kind: `Option<&Sender>` for value
/// signals, `Option<TypeSender>` for type signals (`None`: a send without sender).
pub trait Explain: AnySignal {
    /// How a sender of this signal is given.
    type Sender<'s>;

    /// The sender, to compare with the senders the signal's receivers listen to.
    #[doc(hidden)]
    fn sender_key(sender: Self::Sender<'_>) -> Option<SenderKey>;
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
    /// It is muted on this thread, by [`testing::mute`](crate::testing::mute) (the whole signal) or
    /// [`testing::mute_receiver`](crate::testing::mute_receiver) (its `dispatch_uid`).
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
/// use signals::{Signal, Signature, Verdict};
///
/// enum Saved {}
/// impl Signature for Saved { type Args<'a> = (); type Sender = &'static str; type Output = (); }
/// # #[allow(non_upper_case_globals)]
/// static post_save: Signal<Saved> = Signal::new("post_save");
///
/// post_save.connector().sender("User").connect(|_, _: &()| {});
/// post_save.connector().sender("Team").connect(|_, _: &()| {});
///
/// let explanation = signals::explain(&post_save, Some(&"User"));
/// assert_eq!(explanation.receivers()[0].verdict, Verdict::Runs { position: 1 });
/// assert_eq!(explanation.receivers()[1].verdict, Verdict::OtherSender);
/// println!("{explanation}");
/// ```
///
/// For a type signal, the sender is a [`TypeSender`](crate::TypeSender):
///
/// ```
/// use signals::{TypeSender, Verdict, receiver, signal};
///
/// pub struct User;
/// pub struct Team;
/// pub struct Saved<'a, M> { pub instance: &'a M }
///
/// signal! {
///     pub static post_save: Signal<Saved<'_, M>, sender = type M>;
/// }
///
/// #[receiver(signal = post_save, sender = User)]
/// fn create_user_email() {}
///
/// let for_team = signals::explain(&post_save, Some(TypeSender::of::<Team>()));
/// assert_eq!(for_team.receivers()[0].verdict, Verdict::OtherSender);
/// let for_user = signals::explain(&post_save, Some(TypeSender::of::<User>()));
/// assert_eq!(for_user.running().len(), 1);
/// ```
pub fn explain<S: Explain + ?Sized>(signal: &S, sender: S::Sender<'_>) -> Explanation {
    let signal = registry::signal_ref(signal);
    build(signal, signal.rows(), S::sender_key(sender))
}

/// [`explain`] by names, for tools such as a command line.
///
/// `signal` is a signal's name (`post_save`), or its name after (part of) its module path
/// when several modules declare one of that name (`app::signals::post_save`, or
/// `signals::post_save`). `sender` is written as the signal's receivers list it: a type's
/// name, whole or from any `::` on (`User`, `models::User`), an enum variant (`Monolith` or
/// `SiloMode::Monolith`), a literal (`42`, `"billing"`); `None` for a send without sender.
/// The name picks one of the senders the signal's receivers listen to; from there the answer
/// is decided as a send decides it, by value.
///
/// # Errors
///
/// An [`ExplainError`] naming what is known when no signal or no sender has that name, or
/// several do: for a sender that no receiver listens to, only the any-sender receivers would
/// run, which `sender = None` explains.
///
/// ```
/// # use signals::{Signal, Signature};
/// # enum Saved {}
/// # impl Signature for Saved { type Args<'a> = (); type Sender = &'static str; type Output = (); }
/// # #[allow(non_upper_case_globals)]
/// # static post_save: Signal<Saved> = Signal::new("post_save");
/// # let _ = &post_save;
/// let error = signals::explain_by_name("post_sav", None).unwrap_err();
/// assert!(error.to_string().starts_with("no signal is named `post_sav`"));
/// ```
pub fn explain_by_name(signal: &str, sender: Option<&str>) -> Result<Explanation, ExplainError> {
    let signals = registry::named_signals();
    let candidates: Vec<&(&'static dyn SignalRef, String)> = signals
        .iter()
        .filter(|(_, path)| path_ends_with(path, signal))
        .collect();
    let found = match candidates[..] {
        [(found, _)] => *found,
        [] => {
            return Err(ExplainError::UnknownSignal {
                name: signal.to_owned(),
                known: signals.iter().map(|(_, path)| path.clone()).collect(),
            });
        }
        _ => {
            return Err(ExplainError::AmbiguousSignal {
                name: signal.to_owned(),
                candidates: candidates.iter().map(|(_, path)| path.clone()).collect(),
            });
        }
    };
    let rows = found.rows();
    let sender = match sender {
        None => None,
        Some(sender) => Some(sender_named(found.name(), &rows, sender)?),
    };
    Ok(build(found, rows, sender))
}

/// The one sender of `rows` that `name` names.
fn sender_named(signal: &'static str, rows: &[Row], name: &str) -> Result<SenderKey, ExplainError> {
    let mut senders: Vec<&SenderKey> = Vec::new();
    for sender in rows.iter().filter_map(|row| row.sender.as_ref()) {
        if !senders.iter().any(|seen| seen.is(sender)) {
            senders.push(sender);
        }
    }
    let best = senders
        .iter()
        .filter_map(|sender| names(&sender.label, name))
        .max();
    let candidates: Vec<&SenderKey> = senders
        .iter()
        .copied()
        .filter(|sender| best.is_some() && names(&sender.label, name) == best)
        .collect();
    match candidates[..] {
        [sender] => Ok(sender.clone()),
        [] => Err(ExplainError::UnknownSender {
            signal,
            sender: name.to_owned(),
            known: senders.iter().map(|sender| sender.label.clone()).collect(),
        }),
        _ => Err(ExplainError::AmbiguousSender {
            signal,
            sender: name.to_owned(),
            candidates: candidates
                .iter()
                .map(|sender| sender.label.clone())
                .collect(),
        }),
    }
}

/// How well a person's `name` names a sender written `label` (its `Debug` rendering, or a
/// type's path): `Whole` when they are the same text (quotes around a string aside), `Path`
/// when one is the other with a module path or type in front (`User` for `app::models::User`,
/// `SiloMode::Monolith` for `Monolith`), paths inside generic arguments aside. Never by a
/// part of a segment: `W<u8>` does not name `W<u16>`, nor `audit::invoice` a string
/// `"billing::invoice"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Names {
    Path,
    Whole,
}

pub(crate) fn names(label: &str, name: &str) -> Option<Names> {
    let (label, name) = (label.trim(), name.trim());
    if label == name {
        return Some(Names::Whole);
    }
    if let Some(text) = label.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or(name);
        return (text == name).then_some(Names::Whole);
    }
    let (label, name) = (segments(label), segments(name));
    let suffix = |long: &[String], short: &[String]| long.ends_with(short);
    (suffix(&label, &name) || suffix(&name, &label)).then_some(Names::Path)
}

/// The `::`-separated segments of a path, with the paths inside its generic arguments reduced
/// to their last segment: `app::W<app::X>` is `[app, W<X>]`.
fn segments(path: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let mut depth = 0_usize;
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("::") {
            rest = &rest[2..];
            let current = segments.last_mut().expect("never empty");
            if depth == 0 {
                segments.push(String::new());
            } else {
                // Inside generic arguments: drop the path before this `::`.
                let start = current
                    .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map_or(0, |i| i + 1);
                current.truncate(start);
            }
            continue;
        }
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
        segments.last_mut().expect("never empty").push(c);
        rest = &rest[c.len_utf8()..];
    }
    segments
}

/// Whether the path `path` (`app::signals::ping`) ends with `name` (`ping`,
/// `signals::ping`), at a segment boundary.
fn path_ends_with(path: &str, name: &str) -> bool {
    path == name
        || path
            .strip_suffix(name)
            .is_some_and(|front| front.ends_with("::"))
}

fn build<S: SignalRef + ?Sized>(
    signal: &S,
    rows: Vec<Row>,
    sender: Option<SenderKey>,
) -> Explanation {
    let seen = watch::seen(signal.address());
    let mut running: Vec<(bool, Explained)> = Vec::new();
    let mut others = Vec::new();
    for row in rows {
        let listens = match (&row.sender, &sender) {
            (None, _) => true,
            (Some(listened), Some(sent)) => listened.is(sent),
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
            sender: row.sender.map(|sender| sender.label),
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
        sender: sender.map(|sender| sender.label),
        receivers,
    }
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

#[cfg(test)]
mod tests {
    use super::{Names, names, path_ends_with, segments};

    #[test]
    fn a_name_names_a_sender_whole_or_by_whole_path_segments() {
        assert_eq!(
            names("app::models::User", "app::models::User"),
            Some(Names::Whole)
        );
        assert_eq!(names("app::models::User", "User"), Some(Names::Path));
        assert_eq!(
            names("app::models::User", "models::User"),
            Some(Names::Path)
        );
        assert_eq!(names("Monolith", "SiloMode::Monolith"), Some(Names::Path));
        assert_eq!(names("app::a::User", "b::User"), None);
        assert_eq!(names("app::models::User", "Use"), None);
        assert_eq!(names("app::models::SuperUser", "User"), None);
        assert_eq!(names("app::W<u16>", "W<u16>"), Some(Names::Path));
        assert_eq!(names("app::W<u16>", "W<u8>"), None);
        assert_eq!(names("app::W<app::X>", "W<X>"), Some(Names::Path));
        assert_eq!(names("42", "42"), Some(Names::Whole));
        assert_eq!(
            names("\"billing::invoice\"", "billing::invoice"),
            Some(Names::Whole)
        );
        assert_eq!(
            names("\"billing::invoice\"", "\"billing::invoice\""),
            Some(Names::Whole)
        );
        assert_eq!(names("\"billing::invoice\"", "audit::invoice"), None);
        assert_eq!(names("\"billing::invoice\"", "invoice"), None);
    }

    #[test]
    fn segments_reduce_paths_inside_generic_arguments() {
        assert_eq!(
            segments("app::W<app::X, std::vec::Vec<u8>>"),
            ["app", "W<X, Vec<u8>>"]
        );
        assert_eq!(segments("User"), ["User"]);
    }

    #[test]
    fn signal_paths_match_at_segment_boundaries() {
        assert!(path_ends_with("app::signals::ping", "ping"));
        assert!(path_ends_with("app::signals::ping", "signals::ping"));
        assert!(!path_ends_with("app::signals::ping", "ing"));
        assert!(!path_ends_with("app::signals::ping", "als::ping"));
    }
}
