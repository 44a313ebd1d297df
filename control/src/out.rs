//! Writing results to stdout when stdout may be a closed pipe
//! (`ctrack connection print | head -1`).
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader is gone fails with
//! `BrokenPipe`; `println!` then panics (exit 101). Here instead:
//! - a listing (`connection print`, `replay`) writes through `io::Write`,
//!   stops at the first failed write, and [`quiet_broken_pipe`] turns that
//!   error into success: the reader asked for no more, so the command ends
//!   quietly with status 0, as `head` leaves a pipeline;
//! - `ctrack run` prints with [`outln!`](crate::outln), which drops what it
//!   cannot write: the dataplane keeps running and still writes its
//!   `--summary-json` file.

use std::io::{ErrorKind, Write};

/// Writes `args` and a newline to stdout, ignoring a failed write (a closed
/// pipe, a full disk): for `run`'s progress lines and summary, which must
/// never stop the dataplane.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// `println!` that never panics: see [`line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

/// Whether `e` comes from writing to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(ErrorKind::BrokenPipe))
    })
}

/// `Ok` for a closed pipe (the reader wants no more), else `r` as it is.
pub fn quiet_broken_pipe(r: anyhow::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn broken_pipe_is_found_through_context() {
        let e: anyhow::Result<()> = Err(std::io::Error::from(ErrorKind::BrokenPipe).into());
        let e = e.context("writing the listing");
        assert!(quiet_broken_pipe(e).is_ok());
        let other: anyhow::Result<()> =
            Err(std::io::Error::from(ErrorKind::PermissionDenied).into());
        assert!(quiet_broken_pipe(other).is_err());
        // serde_json keeps the io error inside its own.
        let json: anyhow::Result<()> = serde_json::to_writer(Closed, &[1, 2])
            .map_err(anyhow::Error::from)
            .context("writing JSON");
        assert!(quiet_broken_pipe(json).is_ok());
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
