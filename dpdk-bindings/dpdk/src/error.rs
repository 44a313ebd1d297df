use std::ffi::CStr;

/// A failed DPDK call: which call, and DPDK's errno for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} failed: {} (errno {errno})", strerror(*errno))]
pub struct DpdkError {
    pub op: &'static str,
    pub errno: i32,
}

pub type Result<T> = std::result::Result<T, DpdkError>;

impl DpdkError {
    pub fn new(op: &'static str, errno: i32) -> Self {
        DpdkError {
            op,
            errno: errno.abs(),
        }
    }

    /// For calls that return NULL or -1 and leave the reason in `rte_errno`.
    pub fn from_rte_errno(op: &'static str) -> Self {
        // SAFETY: reads the calling thread's rte_errno through the shim (a
        // thread-local that cannot be bound as a plain static).
        let errno = unsafe { dpdk_sys::ctrack_rte_errno() };
        DpdkError::new(op, errno)
    }
}

fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any errno value.
    let s = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) };
    s.to_string_lossy().into_owned()
}

/// Converts DPDK's "negative errno on failure" return convention.
pub(crate) fn check(op: &'static str, rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(DpdkError::new(op, rc))
    } else {
        Ok(rc)
    }
}
