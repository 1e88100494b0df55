//! Errors, one enum per failure domain: a failed [`send`](crate::Signal::send), a failed receiver
//! under [`send_robust`](crate::Signal::send_robust), and a wiring problem found by
//! [`check`](crate::check).

use crate::info::{ReceiverInfo, SourceLocation};

/// The error type receivers return, boxed: any `std::error::Error + Send + Sync + 'static`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`send`](crate::Signal::send) or an [`emit`](crate::Signal::emit) stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A receiver returned `Err`, which stopped dispatch: the receivers before it ran, the
    /// ones after it did not. Use `send_robust` to run every receiver whatever the others
    /// return.
    #[error("receiver {receiver} failed, which stopped the send: {source}")]
    Failed {
        /// The receiver that failed.
        receiver: ReceiverInfo,
        /// The error it returned.
        #[source]
        source: BoxError,
    },
    /// The send was nested in `depth - 1` other sends on this thread, with too little stack
    /// left to run its receivers (less than [`STACK_RESERVE`](crate::STACK_RESERVE)): a
    /// receiver sends, directly or through other receivers, the signal it receives. No
    /// receiver ran. `send_robust`, which has no error to return, panics with this message
    /// instead, which an outer `send_robust` records as its receiver's panic.
    #[error(
        "signal `{signal}` was sent {depth} sends deep on this thread, with too little stack \
         left to run its receivers: a receiver sends, directly or through others, the signal \
         it receives. Stop the recursion, or run deep work on a thread with a larger stack"
    )]
    TooDeep {
        /// The signal whose send was refused.
        signal: &'static str,
        /// How deep the refused send was, counting it.
        depth: u32,
    },
}

impl SendError {
    pub(crate) fn new(receiver: ReceiverInfo, source: BoxError) -> Self {
        Self::Failed { receiver, source }
    }

    /// The receiver that failed; `None` when no receiver ran ([`SendError::TooDeep`]).
    #[must_use]
    pub fn receiver(&self) -> Option<&ReceiverInfo> {
        match self {
            Self::Failed { receiver, .. } => Some(receiver),
            Self::TooDeep { .. } => None,
        }
    }

    /// The error the receiver returned; `None` when no receiver ran.
    #[must_use]
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Self::Failed { source, .. } => Some(&**source),
            Self::TooDeep { .. } => None,
        }
    }
}

/// How one receiver failed under [`send_robust`](crate::Signal::send_robust); it stands in the
/// responses in place of the receiver's output, and the other receivers still ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiverError {
    /// The receiver returned `Err`.
    #[error("receiver returned an error: {0}")]
    Failed(#[source] BoxError),
    /// The receiver panicked; the panic was caught and its message kept.
    #[error("receiver panicked: {message}")]
    Panicked {
        /// The panic message, or a note that the payload was not a string.
        message: String,
    },
}

/// A wiring problem found by [`check`](crate::check): an error (something that does not run
/// as written) or a warning (something that is usually a mistake); see
/// [`is_error`](Self::is_error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// Two static receivers of one signal claim the same `dispatch_uid` for the same sender.
    /// Only the first (in dispatch order) runs; rename or remove one of them. An error.
    #[error(
        "signal `{signal}`: dispatch_uid {dispatch_uid:?} is used twice for sender {sender}, \
         at {first} and at {second}; only the one at {first} runs. Give one of them another \
         dispatch_uid or remove it"
    )]
    DuplicateDispatchUid {
        /// The signal's name.
        signal: &'static str,
        /// The duplicated uid.
        dispatch_uid: String,
        /// The sender both receivers are connected to, `Debug`-formatted (`any` for any sender).
        sender: String,
        /// The receiver that is kept.
        first: SourceLocation,
        /// The receiver that is ignored.
        second: SourceLocation,
    },
    /// A signal has no receiver at all: no `#[receiver]` for it is linked into the program and
    /// none is connected at run time. A warning: usually its receivers live in a crate that
    /// nothing names, which the linker leaves out (see `signals::link!`).
    #[error(
        "signal `{signal}`{} has no receivers: no `#[receiver]` for it is linked into the \
         program, and none is connected at run time. If its receivers are in a crate that \
         nothing names, the linker left that crate out: name it with `signals::link!(crate)` \
         in the binary. A signal whose receivers are all connected at run time has none \
         before they are",
        declared_at.map(|at| format!(" (declared at {at})")).unwrap_or_default()
    )]
    NoReceivers {
        /// The signal's name.
        signal: &'static str,
        /// Where `signal!` declared it, when it did.
        declared_at: Option<SourceLocation>,
    },
}

impl WiringError {
    /// Whether this is an error (it does not run as written), not a warning (it usually is a
    /// mistake). A program's wiring test can allow warnings:
    ///
    /// ```
    /// let errors: Vec<_> = signals::check().into_iter().filter(|p| p.is_error()).collect();
    /// assert!(errors.is_empty(), "{errors:#?}");
    /// ```
    #[must_use]
    pub fn is_error(&self) -> bool {
        match self {
            Self::DuplicateDispatchUid { .. } => true,
            Self::NoReceivers { .. } => false,
        }
    }
}

/// [`explain_by_name`](crate::explain_by_name) could not tell which signal or sender a name
/// means. Each variant lists the names it knows, to pick from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// No signal of the program has this name.
    #[error("no signal is named `{name}`; the program's signals are: {}", known.join(", "))]
    UnknownSignal {
        /// The name asked for.
        name: String,
        /// Every signal of the program, by module path and name.
        known: Vec<String>,
    },
    /// Several signals have this name, in different modules or crates.
    #[error(
        "`{name}` names several signals: {}; add its module path, as in `{}`",
        candidates.join(", "),
        candidates[0]
    )]
    AmbiguousSignal {
        /// The name asked for.
        name: String,
        /// The signals it could mean, by module path and name.
        candidates: Vec<String>,
    },
    /// No receiver of the signal listens to a sender of this name.
    #[error(
        "no receiver of `{signal}` listens to a sender named `{sender}`; the senders it has \
         receivers for are: {}. For any other sender only the any-sender receivers run, as \
         for a send without sender",
        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
    )]
    UnknownSender {
        /// The signal's name.
        signal: &'static str,
        /// The sender asked for.
        sender: String,
        /// The senders the signal's receivers listen to, as the signal writes them.
        known: Vec<String>,
    },
    /// Several senders of the signal's receivers match this name.
    #[error(
        "`{sender}` names several senders of `{signal}`: {}; write it in full",
        candidates.join(", ")
    )]
    AmbiguousSender {
        /// The signal's name.
        signal: &'static str,
        /// The sender asked for.
        sender: String,
        /// The senders it could mean, as the signal writes them.
        candidates: Vec<String>,
    },
}

/// The message of a panic, if its payload is a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(the panic payload is not a string)".to_owned()
    }
}
