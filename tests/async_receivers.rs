//! Async signals: `async fn` receivers next to plain ones, under tokio (current-thread and
//! multi-thread) and a plain `block_on`. Plain receivers run first, in order; async receivers
//! then run concurrently; responses list the plain ones, then the async ones, each in order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::channel::oneshot;
use futures::executor::block_on;
use signals::{ReceiverError, TypeSender, receiver, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Region {
    Eu,
    Us,
}

/// Arguments that borrow: async receivers' futures borrow them too.
#[derive(Debug)]
struct Checkin<'a> {
    slug: &'a str,
    log: &'a Mutex<Vec<String>>,
}

fn log(log: &Mutex<Vec<String>>, line: impl Into<String>) {
    log.lock().unwrap().push(line.into());
}

/// Yields once, so that a receiver really is suspended between two polls.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

signal! {
    /// An async value-sender signal whose receivers return the length they saw.
    static checkin: async Signal<Checkin<'_>, sender = Region, output = usize>;
}

#[receiver(signal = checkin, sender = Region::Eu)]
async fn async_first(slug: &str, log: &Mutex<Vec<String>>) -> usize {
    self::log(log, "async_first started");
    yield_now().await;
    self::log(log, format!("async_first done with {slug}"));
    slug.len()
}

#[receiver(signal = checkin, sender = Region::Eu)]
fn plain_after_in_source(log: &Mutex<Vec<String>>) -> usize {
    self::log(log, "plain");
    0
}

#[receiver(signal = checkin)]
async fn async_second(slug: &str, log: &Mutex<Vec<String>>) -> usize {
    self::log(log, "async_second started");
    yield_now().await;
    self::log(log, "async_second done");
    slug.len() * 2
}

fn checkin_args<'a>(slug: &'a str, log: &'a Mutex<Vec<String>>) -> Checkin<'a> {
    Checkin { slug, log }
}

#[test]
fn plain_receivers_run_first_then_async_ones_concurrently_under_block_on() {
    let lines = Mutex::new(Vec::new());
    let slug = String::from("nightly-backup");
    let responses = block_on(checkin.send(&Region::Eu, &checkin_args(&slug, &lines))).unwrap();
    assert_eq!(
        responses.names().collect::<Vec<_>>(),
        [
            "async_receivers::plain_after_in_source",
            "async_receivers::async_first",
            "async_receivers::async_second"
        ]
    );
    assert_eq!(responses.into_outputs(), [0, 14, 28]);
    assert_eq!(
        lines.into_inner().unwrap(),
        [
            "plain",
            "async_first started",
            "async_second started",
            "async_first done with nightly-backup",
            "async_second done"
        ],
        "both async receivers started before either finished"
    );
}

#[test]
fn a_capture_lists_an_async_sends_receivers_in_the_order_it_starts_them() {
    let sent = signals::testing::capture(&checkin);
    let lines = Mutex::new(Vec::new());
    block_on(checkin.send(&Region::Eu, &checkin_args("ab", &lines))).unwrap();
    assert_eq!(
        sent.sends()[0].ran(),
        [
            "async_receivers::plain_after_in_source",
            "async_receivers::async_first",
            "async_receivers::async_second"
        ]
    );
    assert_eq!(
        lines.into_inner().unwrap()[..3],
        ["plain", "async_first started", "async_second started"],
        "a watched send starts its receivers in the same order"
    );
}

#[test]
fn the_registry_lists_which_receivers_are_async() {
    let registry = signals::registry();
    let receivers: Vec<(&str, bool)> = registry
        .signal("checkin")
        .unwrap()
        .receivers()
        .iter()
        .map(|entry| (entry.receiver().name(), entry.is_async()))
        .collect();
    assert!(receivers.contains(&("async_receivers::async_first", true)));
    assert!(receivers.contains(&("async_receivers::plain_after_in_source", false)));
    assert!(registry.to_mermaid().contains("[\"async async_first\"]"));
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_send_filters_senders_under_tokio_current_thread() {
    let lines = Mutex::new(Vec::new());
    let responses = checkin
        .send(&Region::Us, &checkin_args("cron", &lines))
        .await
        .unwrap();
    assert_eq!(responses.into_outputs(), [8]);
    assert_eq!(
        lines.into_inner().unwrap(),
        ["async_second started", "async_second done"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_send_is_a_send_future_that_runs_on_a_multi_thread_runtime() {
    let handle = tokio::spawn(async {
        let lines = Mutex::new(Vec::new());
        let responses = checkin
            .send(&Region::Eu, &checkin_args("cron", &lines))
            .await
            .unwrap();
        responses.into_outputs()
    });
    assert_eq!(handle.await.unwrap(), [0, 4, 8]);
}

/// Arguments for the concurrency proof: two receivers hand each other a value.
struct Handshake<'a> {
    to_second: &'a Mutex<Option<oneshot::Sender<u32>>>,
    from_first: &'a Mutex<Option<oneshot::Receiver<u32>>>,
    to_first: &'a Mutex<Option<oneshot::Sender<u32>>>,
    from_second: &'a Mutex<Option<oneshot::Receiver<u32>>>,
}

signal! {
    static handshake: async Signal<Handshake<'_>, output = u32>;
}

#[receiver(signal = handshake)]
async fn first(
    to_second: &Mutex<Option<oneshot::Sender<u32>>>,
    from_second: &Mutex<Option<oneshot::Receiver<u32>>>,
) -> u32 {
    to_second.lock().unwrap().take().unwrap().send(1).unwrap();
    let from_second = from_second.lock().unwrap().take().unwrap();
    from_second.await.unwrap() + 10
}

#[receiver(signal = handshake)]
async fn second(
    to_first: &Mutex<Option<oneshot::Sender<u32>>>,
    from_first: &Mutex<Option<oneshot::Receiver<u32>>>,
) -> u32 {
    let from_first = from_first.lock().unwrap().take().unwrap();
    let got = from_first.await.unwrap();
    to_first.lock().unwrap().take().unwrap().send(2).unwrap();
    got + 20
}

#[test]
fn async_receivers_run_concurrently_so_they_can_wait_for_each_other() {
    let (to_second, from_first) = oneshot::channel();
    let (to_first, from_second) = oneshot::channel();
    let args = Handshake {
        to_second: &Mutex::new(Some(to_second)),
        from_first: &Mutex::new(Some(from_first)),
        to_first: &Mutex::new(Some(to_first)),
        from_second: &Mutex::new(Some(from_second)),
    };
    // Awaited one after the other, `first` would wait forever for `second`.
    let outputs = block_on(handshake.send(None, &args))
        .unwrap()
        .into_outputs();
    assert_eq!(outputs, [12, 21]);
}

#[derive(Debug)]
struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("webhook unreachable")
    }
}

impl std::error::Error for Unreachable {}

/// Arguments of the failure signals: counts completed receivers.
struct Counted<'a> {
    done: &'a AtomicUsize,
}

signal! {
    static robust: async Signal<Counted<'_>>;
    static strict: async Signal<Counted<'_>>;
}

#[receiver(signal = [robust, strict], priority = 3)]
async fn fails_after_a_yield() -> Result<(), Unreachable> {
    yield_now().await;
    Err(Unreachable)
}

#[receiver(signal = robust, priority = 2)]
async fn panics_after_a_yield() {
    yield_now().await;
    panic!("async receiver bug");
}

#[receiver(signal = [robust, strict], priority = 1)]
async fn completes(done: &AtomicUsize) {
    yield_now().await;
    yield_now().await;
    done.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_robust_records_an_async_err_and_panic_and_the_others_complete() {
    let done = AtomicUsize::new(0);
    let responses = robust.send_robust(None, &Counted { done: &done }).await;
    assert_eq!(done.load(Ordering::SeqCst), 1);
    assert_eq!(responses.len(), 3);
    assert!(
        matches!(&responses[0].output, Err(ReceiverError::Failed(e)) if e.to_string() == "webhook unreachable")
    );
    assert!(
        matches!(&responses[1].output, Err(ReceiverError::Panicked { message }) if message == "async receiver bug")
    );
    assert!(responses[2].output.is_ok());
    // The signal is still usable.
    let again = robust.send_robust(None, &Counted { done: &done }).await;
    assert_eq!(again.failures().count(), 2);
}

#[test]
fn send_stops_at_the_first_async_err_and_drops_the_others() {
    let done = AtomicUsize::new(0);
    let error = block_on(strict.send(None, &Counted { done: &done })).unwrap_err();
    assert_eq!(
        error.receiver().unwrap().name(),
        "async_receivers::fails_after_a_yield"
    );
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "`completes` was dropped before it finished"
    );
}

signal! {
    static runtime: async Signal<Checkin<'_>, sender = Region, output = usize>;
}

#[test]
fn async_closures_connect_at_run_time_with_uids_weak_targets_and_guards() {
    let connection = runtime
        .connector()
        .dispatch_uid("len")
        .connect_async(|_, args: &Checkin<'_>| Box::pin(async move { args.slug.len() }));
    assert!(
        runtime
            .connector()
            .dispatch_uid("len")
            .connect_async(|_, _: &Checkin<'_>| Box::pin(async { 0_usize }))
            .is_duplicate()
    );
    let factor = std::sync::Arc::new(3_usize);
    runtime.connector().sender(Region::Us).connect_weak_async(
        &factor,
        |factor: std::sync::Arc<usize>, _, args: &Checkin<'_>| {
            Box::pin(async move { *factor * args.slug.len() })
        },
    );
    let lines = Mutex::new(Vec::new());
    {
        let _guard = runtime
            .connector()
            .connect_scoped_async(|_, _: &Checkin<'_>| Box::pin(async { 100_usize }));
        let outputs = block_on(runtime.send(&Region::Us, &checkin_args("ab", &lines)))
            .unwrap()
            .into_outputs();
        assert_eq!(outputs, [2, 6, 100]);
    }
    drop(factor);
    let outputs = block_on(runtime.send(&Region::Us, &checkin_args("ab", &lines)))
        .unwrap()
        .into_outputs();
    assert_eq!(outputs, [2]);
    assert!(runtime.disconnect(connection));
    assert!(!runtime.has_listeners(&Region::Us));
}

/// A model, for the async type-sender signal.
struct User {
    email: String,
}

struct Saved<'a, M> {
    instance: &'a M,
}

signal! {
    static post_save: async Signal<Saved<'_, M>, sender = type M, output = String>;
}

#[receiver(signal = post_save, sender = User)]
async fn welcome(instance: &User) -> String {
    yield_now().await;
    format!("welcome {}", instance.email)
}

#[receiver(signal = post_save)]
fn audit(sender: TypeSender) -> String {
    format!("saved a {}", sender.name().rsplit("::").next().unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn async_type_signals_give_typed_instances_to_async_receivers() {
    let user = User {
        email: "ada@example.com".into(),
    };
    let outputs = post_save
        .send::<User>(&Saved { instance: &user })
        .await
        .unwrap()
        .into_outputs();
    assert_eq!(outputs, ["saved a User", "welcome ada@example.com"]);
    let other = post_save.send_robust::<u8>(&Saved { instance: &7 }).await;
    assert_eq!(other.len(), 1, "only the any-sender receiver runs for u8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_type_signal_sends_are_send_futures_that_run_on_a_multi_thread_runtime() {
    let handle = tokio::spawn(async {
        let user = User {
            email: "grace@example.com".into(),
        };
        let robust_responses = post_save
            .send_robust::<User>(&Saved { instance: &user })
            .await;
        let sent = post_save.send::<User>(&Saved { instance: &user }).await;
        (robust_responses.len(), sent.unwrap().into_outputs())
    });
    let (robust_count, outputs) = handle.await.unwrap();
    assert_eq!(robust_count, 2);
    assert_eq!(outputs, ["saved a User", "welcome grace@example.com"]);
}
