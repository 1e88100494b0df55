//! Runtime connections: the [`Connection`] handle `connect` returns, the [`ScopedConnection`]
//! guard that disconnects its receiver when dropped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A signal a [`ScopedConnection`] can disconnect from: every signal type.
#[doc(hidden)]
pub trait Disconnect: Sync {
    /// Disconnects the receiver connected with `connection`.
    fn disconnect_connection(&self, connection: Connection) -> bool;
}

/// A connection that lasts until this guard is dropped, returned by `connect_scoped`: the
/// receiver is disconnected at the end of the scope, also when the scope unwinds.
///
/// ```
/// # use signals::{Signal, Signature};
/// # enum Ping {}
/// # impl Signature for Ping { type Args<'a> = (); type Sender = u32; type Output = (); }
/// # static ping: Signal<Ping> = Signal::new("ping");
/// {
///     let _guard = ping.connector().connect_scoped(|_, _: &()| {});
///     assert!(ping.has_listeners(&1));
/// }
/// assert!(!ping.has_listeners(&1));
/// ```
#[must_use = "the receiver is disconnected as soon as the guard is dropped"]
pub struct ScopedConnection<'s> {
    signal: &'s dyn Disconnect,
    connection: Connection,
}

impl<'s> ScopedConnection<'s> {
    pub(crate) fn new(signal: &'s dyn Disconnect, connection: Connection) -> Self {
        Self { signal, connection }
    }

    /// The handle of the connection.
    #[must_use]
    pub fn connection(&self) -> Connection {
        self.connection
    }

    /// Disconnects now; returns whether the receiver was still connected.
    #[allow(clippy::must_use_candidate)]
    pub fn disconnect(self) -> bool {
        let signal = self.signal;
        let connection = self.connection;
        std::mem::forget(self);
        signal.disconnect_connection(connection)
    }
}

impl Drop for ScopedConnection<'_> {
    fn drop(&mut self) {
        self.signal.disconnect_connection(self.connection);
    }
}

impl fmt::Debug for ScopedConnection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedConnection")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// A handle to one runtime connection, returned by `connect`; pass it to `disconnect`.
///
/// Dropping it does nothing: the receiver stays connected. Use a [`ScopedConnection`] to
/// disconnect at the end of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connection {
    id: u64,
}

impl Connection {
    /// No handle: that of a connect that changed nothing because its `dispatch_uid` (or its
    /// receiver) was already connected for that sender, and of static receivers.
    pub(crate) const NONE: Self = Self { id: 0 };

    /// Whether the connect that returned this handle was a no-op, because a receiver with the
    /// same lookup key (`dispatch_uid`, or the same function, and sender) was already
    /// connected. Disconnecting such a handle does nothing.
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        self.id == 0
    }
}

/// A fresh handle.
pub(crate) fn next_connection() -> Connection {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Connection {
        id: NEXT.fetch_add(1, Ordering::Relaxed),
    }
}
