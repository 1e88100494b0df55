//! Standard output that a closed pipe ends quietly: once the reader is gone (`| head`), writes
//! stop, the command finishes its work (and removes its temporary database) and exits 0.

use std::fmt::Display;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` and a newline.
pub(crate) fn line(text: impl Display) {
    write(format_args!("{text}\n"));
}

/// Writes `text` as it is.
pub(crate) fn text(text: impl Display) {
    write(format_args!("{text}"));
}

fn write(text: std::fmt::Arguments<'_>) {
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
