//! Typed analytics events and the backend that records them. The backend can be switched to
//! failing, to show `send_robust` logging a failure while the other receivers run, and a
//! durable signal's delivery waiting until it is back.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

/// An analytics event, typed as Sentry's `@analytics.eventclass` events are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnalyticsEvent {
    /// `first_event_for_project.sent`: a project's first event (once per project).
    FirstEventForProjectSent {
        user_id: i64,
        organization_id: i64,
        project_id: i64,
        platform: Option<String>,
    },
    /// `first_event.sent`: an organisation's first event (once per organisation).
    FirstEventSent {
        user_id: i64,
        organization_id: i64,
        project_id: i64,
    },
    /// `first_transaction.sent`.
    FirstTransactionSent {
        organization_id: i64,
        project_id: i64,
    },
    /// `first_event_with_minified_stack_trace_for_project.sent` (exactly once per project).
    FirstMinifiedStackTrace {
        organization_id: i64,
        project_id: i64,
    },
    /// `project.created`.
    ProjectCreated {
        organization_id: i64,
        project_id: i64,
    },
    /// `user_report.created`: the first user feedback of a project.
    FirstUserReport {
        organization_id: i64,
        project_id: i64,
    },
    /// `member.joined`.
    MemberJoined { organization_id: i64, user_id: i64 },
}

impl AnalyticsEvent {
    /// The event's name, as the analytics pipeline knows it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::FirstEventForProjectSent { .. } => "first_event_for_project.sent",
            Self::FirstEventSent { .. } => "first_event.sent",
            Self::FirstTransactionSent { .. } => "first_transaction.sent",
            Self::FirstMinifiedStackTrace { .. } => {
                "first_event_with_minified_stack_trace_for_project.sent"
            }
            Self::ProjectCreated { .. } => "project.created",
            Self::FirstUserReport { .. } => "user_report.created",
            Self::MemberJoined { .. } => "member.joined",
        }
    }
}

/// The analytics backend could not record an event.
#[derive(Debug, thiserror::Error)]
#[error("analytics backend unavailable: could not record {0}")]
pub(crate) struct AnalyticsDown(pub(crate) &'static str);

/// Records analytics events in memory; fails while switched off, or for a number of calls.
/// A journaled backend also appends each event to a file, as a service outside the process
/// would keep it: what a crashed process recorded stays recorded.
#[derive(Debug, Default)]
pub(crate) struct Analytics {
    events: Mutex<Recorded>,
    down: AtomicBool,
    /// How many more calls fail.
    failures: AtomicU32,
    journal: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Recorded {
    events: Vec<AnalyticsEvent>,
    /// The idempotency keys of the events recorded with one.
    keys: HashSet<String>,
}

impl Analytics {
    /// A backend that appends `key<TAB>name` lines to the file at `path`, and remembers the
    /// keys already there.
    #[cfg(test)]
    pub(crate) fn journaled(path: &std::path::Path) -> std::io::Result<Self> {
        use std::io::{self, BufRead as _};
        let keys = match std::fs::File::open(path) {
            Ok(file) => io::BufReader::new(file)
                .lines()
                .map(|line| Ok(line?.split('\t').next().unwrap_or_default().to_owned()))
                .collect::<io::Result<_>>()?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => HashSet::new(),
            Err(error) => return Err(error),
        };
        Ok(Self {
            events: Mutex::new(Recorded {
                events: Vec::new(),
                keys,
            }),
            journal: Some(path.to_owned()),
            ..Self::default()
        })
    }

    /// Records `event`.
    pub(crate) fn record(&self, event: AnalyticsEvent) -> Result<(), AnalyticsDown> {
        self.available(&event)?;
        self.keep(&mut self.lock(), "-", event)
    }

    /// Records `event` unless an event with `key` was recorded already, as analytics pipelines
    /// deduplicate by message id: what makes a retried delivery's event count once.
    pub(crate) fn record_once(
        &self,
        key: &str,
        event: AnalyticsEvent,
    ) -> Result<(), AnalyticsDown> {
        self.available(&event)?;
        let mut recorded = self.lock();
        if recorded.keys.insert(key.to_owned()) {
            self.keep(&mut recorded, key, event)?;
        }
        Ok(())
    }

    /// Keeps `event`, in the journal first if there is one.
    fn keep(
        &self,
        recorded: &mut Recorded,
        key: &str,
        event: AnalyticsEvent,
    ) -> Result<(), AnalyticsDown> {
        if let Some(journal) = &self.journal {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(journal)
                .and_then(|mut file| writeln!(file, "{key}\t{}", event.name()))
                .map_err(|_| AnalyticsDown(event.name()))?;
        }
        recorded.events.push(event);
        Ok(())
    }

    fn available(&self, event: &AnalyticsEvent) -> Result<(), AnalyticsDown> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if failing || self.down.load(Ordering::SeqCst) {
            return Err(AnalyticsDown(event.name()));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the backend fail (`true`) or work (`false`).
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes the backend's next `calls` calls fail.
    #[cfg(test)]
    pub(crate) fn fail_next(&self, calls: u32) {
        self.failures.store(calls, Ordering::SeqCst);
    }

    /// Every event recorded so far.
    pub(crate) fn events(&self) -> Vec<AnalyticsEvent> {
        self.lock().events.clone()
    }

    /// The names of the events recorded so far.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.events().iter().map(AnalyticsEvent::name).collect()
    }
}
