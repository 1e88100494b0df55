//! Who a receiver is: its name, module, source location, `dispatch_uid`, priority and kind
//! ([`ReceiverInfo`]), as every response, error, listing and log names it. The bottom layer:
//! it uses nothing else of the crate.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::panic::{RefUnwindSafe, UnwindSafe};

mod thin;

use thin::{Meta, Thin, Uid};

/// Where a receiver was defined (`#[receiver]`) or connected (`connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceLocation {
    file: &'static str,
    line: u32,
    column: u32,
}

impl SourceLocation {
    /// A location from its parts, as `file!()`, `line!()` and `column!()` give them.
    #[must_use]
    pub const fn new(file: &'static str, line: u32, column: u32) -> Self {
        Self { file, line, column }
    }

    /// The location of the caller of the `#[track_caller]` function that calls this.
    #[must_use]
    #[track_caller]
    pub fn caller() -> Self {
        let location = Location::caller();
        Self::new(location.file(), location.line(), location.column())
    }

    /// The source file, relative to the crate's workspace as `file!()` gives it.
    #[must_use]
    pub const fn file(&self) -> &'static str {
        self.file
    }

    /// The 1-based line.
    #[must_use]
    pub const fn line(&self) -> u32 {
        self.line
    }

    /// The 1-based column.
    #[must_use]
    pub const fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How a receiver was connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiverKind {
    /// Registered at link time by `#[receiver]` (or by hand through the registry).
    Static,
    /// Connected at run time with `connect`; holds its closure strongly.
    Runtime,
    /// Connected at run time with `connect_weak`; stops firing once its target is dropped.
    Weak,
}

/// What is known about a receiver: everything except how to call it.
#[derive(Debug)]
pub struct ReceiverMeta {
    pub(crate) name: &'static str,
    /// `None`: the module part of `name`, a type name, worked out when asked for.
    pub(crate) module_path: Option<&'static str>,
    pub(crate) location: SourceLocation,
    pub(crate) dispatch_uid: Option<Cow<'static, str>>,
    pub(crate) priority: i32,
    pub(crate) kind: ReceiverKind,
    /// How an async static receiver is started, set by its registration (a shape-specific
    /// constant of the call layer); `None` for plain ones.
    pub(crate) async_owner: Option<AnyOwner>,
}

impl ReceiverMeta {
    /// Metadata of a static receiver, built in a `const` by generated code.
    #[doc(hidden)]
    #[must_use]
    pub const fn new_static(
        name: &'static str,
        module_path: &'static str,
        location: SourceLocation,
        dispatch_uid: Option<&'static str>,
        priority: i32,
    ) -> Self {
        Self {
            name,
            module_path: Some(module_path),
            location,
            dispatch_uid: match dispatch_uid {
                Some(uid) => Some(Cow::Borrowed(uid)),
                None => None,
            },
            priority,
            kind: ReceiverKind::Static,
            async_owner: None,
        }
    }

    /// This metadata, for an async receiver started through `owner`.
    pub(crate) const fn started_by(mut self, owner: AnyOwner) -> Self {
        self.async_owner = Some(owner);
        self
    }
}

/// What is known about a receiver connected at run time, in 32 bytes (40 with the reference
/// count `thin` keeps beside it): what its code's type says, where it was connected (the
/// location the compiler keeps for `#[track_caller]`), and its `dispatch_uid`. Its module is
/// worked out from its name when asked for, and its priority is 0.
pub(crate) struct RuntimeMeta {
    code: &'static RuntimeCode,
    location: &'static Location<'static>,
    dispatch_uid: Option<Uid>,
}

impl RuntimeMeta {
    pub(crate) fn kind(&self) -> ReceiverKind {
        self.code.kind
    }

    pub(crate) fn dispatch_uid(&self) -> Option<&str> {
        self.dispatch_uid.as_ref().map(Uid::as_str)
    }

    /// A runtime receiver's metadata with `dispatch_uid`, for the identity's unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(dispatch_uid: Option<Uid>) -> Self {
        Self {
            code: const {
                &RuntimeCode::new(
                    std::any::type_name::<()>,
                    ReceiverKind::Runtime,
                    AnyOwner(&()),
                )
            },
            location: Location::caller(),
            dispatch_uid,
        }
    }
}

/// A shape-specific constant of the call layer that says how a receiver's code is shared,
/// released and started, as the identity holds it; downcast where the shape is known.
#[derive(Clone, Copy)]
pub(crate) struct AnyOwner(
    pub(crate) &'static (dyn Any + Send + Sync + RefUnwindSafe + UnwindSafe),
);

impl AnyOwner {
    /// The constant, if it is a `T`.
    pub(crate) fn downcast<T: Any>(self) -> Option<&'static T> {
        let owner: &'static (dyn Any + Send + Sync) = self.0;
        owner.downcast_ref()
    }
}

impl fmt::Debug for AnyOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyOwner")
    }
}

/// What a runtime receiver's code type says about it: one constant per type (and shape).
pub(crate) struct RuntimeCode {
    /// `type_name` of the receiver's code.
    name: fn() -> &'static str,
    kind: ReceiverKind,
    /// How the receiver's code is shared, released and started: a shape-specific constant of
    /// the call layer.
    owner: AnyOwner,
}

impl RuntimeCode {
    pub(crate) const fn new(
        name: fn() -> &'static str,
        kind: ReceiverKind,
        owner: AnyOwner,
    ) -> Self {
        Self { name, kind, owner }
    }
}

/// What connecting says of a runtime receiver, besides its code: where it was connected, and
/// its `dispatch_uid`.
pub(crate) struct Connecting {
    pub(crate) location: &'static Location<'static>,
    pub(crate) dispatch_uid: Option<Cow<'static, str>>,
}

impl Connecting {
    /// The identity of a runtime receiver so connected, whose code `code` describes.
    pub(crate) fn info(self, code: &'static RuntimeCode) -> ReceiverInfo {
        ReceiverInfo(Thin::runtime(RuntimeMeta {
            code,
            location: self.location,
            dispatch_uid: self.dispatch_uid.map(|uid| match uid {
                Cow::Borrowed(uid) => Uid::borrowed(uid),
                Cow::Owned(uid) => Uid::owned(uid.into_boxed_str()),
            }),
        }))
    }
}

/// The module part of a type name such as `app::receivers::setup::{{closure}}`.
fn module_of(type_name: &'static str) -> &'static str {
    let path = type_name.split("::{{").next().unwrap_or(type_name);
    let path = path.split('<').next().unwrap_or(path);
    path.rsplit_once("::").map_or("", |(module, _)| module)
}

/// The identity of one receiver: its name, module, source location, `dispatch_uid`, priority
/// and kind. Cheap to clone; carried by every response and error.
#[derive(Clone)]
pub struct ReceiverInfo(Thin);

/// What [`ReceiverInfo::placeholder`] describes.
static PLACEHOLDER: ReceiverMeta =
    ReceiverMeta::new_static("(released)", "", SourceLocation::new("", 0, 0), None, 0);

impl ReceiverInfo {
    /// An identity that owns nothing, put in place of one that is being given up.
    pub(crate) fn placeholder() -> Self {
        Self::from_static(&PLACEHOLDER)
    }

    pub(crate) fn from_static(meta: &'static ReceiverMeta) -> Self {
        Self(Thin::of_static(meta))
    }

    /// The receiver's name: the function's path for static receivers and fns, the closure's
    /// type name (`crate::module::function::{{closure}}`) for closures.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.0.meta() {
            Meta::Static(meta) => meta.name,
            Meta::Runtime(meta) => (meta.code.name)(),
        }
    }

    /// The module the receiver is defined in.
    #[must_use]
    pub fn module_path(&self) -> &'static str {
        match self.0.meta() {
            Meta::Static(meta) => meta.module_path.unwrap_or_else(|| module_of(meta.name)),
            Meta::Runtime(_) => module_of(self.name()),
        }
    }

    /// Where the receiver was defined (static) or connected (runtime).
    #[must_use]
    pub fn location(&self) -> SourceLocation {
        match self.0.meta() {
            Meta::Static(meta) => meta.location,
            Meta::Runtime(meta) => SourceLocation::new(
                meta.location.file(),
                meta.location.line(),
                meta.location.column(),
            ),
        }
    }

    /// The `dispatch_uid` it was connected with, if any.
    #[must_use]
    pub fn dispatch_uid(&self) -> Option<&str> {
        match self.0.meta() {
            Meta::Static(meta) => meta.dispatch_uid.as_deref(),
            Meta::Runtime(meta) => meta.dispatch_uid(),
        }
    }

    /// Its priority: higher runs first among static receivers; runtime receivers have 0.
    #[must_use]
    pub fn priority(&self) -> i32 {
        match self.0.meta() {
            Meta::Static(meta) => meta.priority,
            Meta::Runtime(_) => 0,
        }
    }

    /// How it was connected.
    #[must_use]
    pub fn kind(&self) -> ReceiverKind {
        match self.0.meta() {
            Meta::Static(meta) => meta.kind,
            Meta::Runtime(meta) => meta.kind(),
        }
    }
}

impl ReceiverInfo {
    /// What the call layer needs to share, release and start the receiver's code: a runtime
    /// receiver's owner, an async static receiver's; `None` for a plain static receiver.
    pub(crate) fn owner(&self) -> Option<AnyOwner> {
        match self.0.meta() {
            Meta::Static(meta) => meta.async_owner,
            Meta::Runtime(meta) => Some(meta.code.owner),
        }
    }

    /// Whether both describe the same receiver (not merely equal metadata).
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.0.same(&other.0)
    }
}

impl fmt::Debug for ReceiverInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverInfo")
            .field("name", &self.name())
            .field("dispatch_uid", &self.dispatch_uid())
            .field("location", &self.location())
            .field("priority", &self.priority())
            .field("kind", &self.kind())
            .finish()
    }
}

impl fmt::Display for ReceiverInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.name())?;
        if let Some(uid) = self.dispatch_uid() {
            write!(f, " (dispatch_uid {uid:?})")?;
        }
        write!(f, " at {}", self.location())
    }
}

#[cfg(test)]
mod tests {
    use super::module_of;

    #[test]
    fn module_of_strips_the_item_and_closure_suffixes() {
        assert_eq!(
            module_of("app::receivers::setup::{{closure}}"),
            "app::receivers"
        );
        assert_eq!(module_of("app::receivers::setup"), "app::receivers");
        assert_eq!(module_of("setup"), "");
        assert_eq!(
            module_of("app::hooks::make<u8>::{{closure}}::{{closure}}"),
            "app::hooks"
        );
    }
}
