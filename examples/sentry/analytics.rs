//! Typed analytics events and the backend that records them. The backend can be switched to
//! failing, to show `send_robust` logging a failure while the other receivers run.

use std::sync::atomic::{AtomicBool, Ordering};
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

/// Records analytics events in memory; fails while switched off.
#[derive(Debug, Default)]
pub(crate) struct Analytics {
    events: Mutex<Vec<AnalyticsEvent>>,
    down: AtomicBool,
}

impl Analytics {
    /// Records `event`.
    pub(crate) fn record(&self, event: AnalyticsEvent) -> Result<(), AnalyticsDown> {
        if self.down.load(Ordering::SeqCst) {
            return Err(AnalyticsDown(event.name()));
        }
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
        Ok(())
    }

    /// Makes the backend fail (`true`) or work (`false`).
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every event recorded so far.
    pub(crate) fn events(&self) -> Vec<AnalyticsEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The names of the events recorded so far.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.events().iter().map(AnalyticsEvent::name).collect()
    }
}
