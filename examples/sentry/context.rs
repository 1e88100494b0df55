//! What receivers reach besides the database: settings, the analytics backend, the region
//! caches, metrics, the operator prompt and the console. Django reaches these through globals;
//! here every signal's arguments carry a `&Context`, so tests get their own.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use crate::analytics::Analytics;

/// The installation's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Django's `DEBUG`: a non-interactive upgrade creates `admin@localhost`.
    pub(crate) debug: bool,
    /// A self-hosted install (receivers skip SaaS-only work).
    pub(crate) self_hosted: bool,
    /// The regions control-silo writes are replicated to.
    pub(crate) regions: Vec<&'static str>,
    /// How organisation signals reach their silo (`remote::schedule_signal`).
    pub(crate) signal_service: SignalService,
}

/// How `remote::schedule_signal` delivers a signal, by deployment mode (Sentry's
/// `OnCommitBackedOrganizationSignalService` and `OutboxBackedOrganizationSignalService`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalService {
    /// One process: sent locally, once the sender's transaction commits.
    OnCommit,
    /// Across silos: a durable `send_signal` message, delivered by the outbox worker.
    Outbox,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            debug: true,
            self_hosted: true,
            regions: vec!["eu", "us"],
            signal_service: SignalService::OnCommit,
        }
    }
}

/// Asks the operator questions during an interactive upgrade.
pub(crate) trait Prompt: Send + Sync {
    /// Asks a yes/no question.
    fn confirm(&self, question: &str) -> io::Result<bool>;
    /// Asks for a line of text.
    fn ask(&self, question: &str) -> io::Result<String>;
}

/// A prompt that gives scripted answers, in order; fails once they run out.
#[derive(Debug, Default)]
pub(crate) struct ScriptedPrompt {
    answers: Mutex<Vec<String>>,
}

impl ScriptedPrompt {
    /// A prompt that answers `answers`, in order.
    pub(crate) fn new(answers: &[&str]) -> Self {
        let mut answers: Vec<String> = answers.iter().map(|&a| a.to_owned()).collect();
        answers.reverse();
        Self {
            answers: Mutex::new(answers),
        }
    }

    fn next(&self, question: &str) -> io::Result<String> {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("no answer to {question:?}"),
                )
            })
    }
}

impl Prompt for ScriptedPrompt {
    fn confirm(&self, question: &str) -> io::Result<bool> {
        Ok(matches!(self.next(question)?.as_str(), "y" | "yes"))
    }

    fn ask(&self, question: &str) -> io::Result<String> {
        self.next(question)
    }
}

/// The region-side caches the control silo invalidates (Sentry's `region_caching_service`).
#[derive(Debug, Default)]
pub(crate) struct RegionCache {
    entries: Mutex<HashMap<(String, String), String>>,
}

impl RegionCache {
    /// Stores `value` under `key` in `region`.
    pub(crate) fn set(&self, region: &str, key: &str, value: &str) {
        self.lock()
            .insert((region.to_owned(), key.to_owned()), value.to_owned());
    }

    /// Removes `key` from `region`'s cache; returns whether it was there.
    pub(crate) fn clear_key(&self, key: &str, region: &str) -> bool {
        self.lock()
            .remove(&(region.to_owned(), key.to_owned()))
            .is_some()
    }

    /// Whether `region`'s cache holds `key`.
    pub(crate) fn contains(&self, region: &str, key: &str) -> bool {
        self.lock()
            .contains_key(&(region.to_owned(), key.to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counters, as Sentry's `metrics.incr`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Adds one to `name`.
    pub(crate) fn incr(&self, name: &str) {
        *self
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default() += 1;
    }

    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

/// Where the application writes what it does: printed by the main command, kept by tests.
#[derive(Debug, Default)]
pub(crate) struct Console {
    echo: bool,
    lines: Mutex<Vec<String>>,
}

impl Console {
    /// A console that prints every line as well as keeping it.
    pub(crate) fn printing() -> Self {
        Self {
            echo: true,
            lines: Mutex::default(),
        }
    }

    /// Writes a line.
    pub(crate) fn line(&self, line: impl Into<String>) {
        let line = line.into();
        if self.echo {
            crate::out::line(&line);
        }
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Every line written so far.
    #[cfg(test)]
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Everything receivers reach besides the database. Clones share everything but the
/// settings: a clone is what an outbox worker lends its deliveries (`Delivery::state`).
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) analytics: Arc<Analytics>,
    pub(crate) cache: Arc<RegionCache>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) prompt: Arc<dyn Prompt>,
    pub(crate) console: Arc<Console>,
}

impl Context {
    /// A context with `settings` and a prompt that answers `answers`, keeping console lines.
    pub(crate) fn new(settings: Settings, answers: &[&str]) -> Self {
        Self {
            settings,
            analytics: Arc::default(),
            cache: Arc::default(),
            metrics: Arc::default(),
            prompt: Arc::new(ScriptedPrompt::new(answers)),
            console: Arc::default(),
        }
    }
}
