//! Standard output that a closed pipe ends quietly: once the reader is gone (`| head`), writes
//! stop, the command finishes its work (and removes its temporary database) and exits 0.

use std::fmt::Display;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// What this thread writes while a test captures it.
    static CAPTURED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns what it wrote on this thread, instead of writing it.
#[cfg(test)]
pub(crate) fn capture(f: impl FnOnce()) -> String {
    CAPTURED.with_borrow_mut(|captured| *captured = Some(String::new()));
    f();
    CAPTURED.with_borrow_mut(Option::take).unwrap_or_default()
}

/// Writes `text` and a newline.
pub(crate) fn line(text: impl Display) {
    write(format_args!("{text}\n"));
}

/// Writes `text` as it is.
pub(crate) fn text(text: impl Display) {
    write(format_args!("{text}"));
}

fn write(text: std::fmt::Arguments<'_>) {
    #[cfg(test)]
    {
        let captured = CAPTURED.with_borrow_mut(|captured| {
            captured
                .as_mut()
                .map(|captured| std::fmt::Write::write_fmt(captured, text))
        });
        if captured.is_some() {
            return;
        }
    }
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if error.kind() != ErrorKind::BrokenPipe {
            eprintln!("warning: cannot write to standard output: {error}");
        }
        CLOSED.store(true, Ordering::Relaxed);
    }
}
