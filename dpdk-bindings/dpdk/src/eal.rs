use std::ffi::{CString, c_char, c_int};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};

use crate::error::{DpdkError, Result, check};

/// An EAL logical core id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl LcoreId {
    /// The CPU the EAL assigned to this lcore.
    pub fn cpu(self) -> Option<usize> {
        // SAFETY: plain lookup in EAL's lcore config; any id is accepted and
        // an invalid one returns -1.
        let cpu = unsafe { dpdk_sys::rte_lcore_to_cpu_id(self.0 as c_int) };
        usize::try_from(cpu).ok()
    }
}

// The EAL's life: never started, running, being cleaned up (or cleaned).
const EAL_NEW: u8 = 0;
const EAL_RUNNING: u8 = 1;
const EAL_CLOSING: u8 = 2;
const EAL_DONE: u8 = 3;

static EAL_STATE: AtomicU8 = AtomicU8::new(EAL_NEW);
/// DPDK objects alive: ports (and so their queues), mempool handles, hash
/// tables, registered threads. [`Eal::cleanup`] refuses while any is.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Mempools whose last handle was dropped; freed by [`Eal::cleanup`] (see
/// [`retire_mempool`]). Addresses, as raw pointers are not `Send`.
static RETIRED_POOLS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// One live DPDK object, counted in [`LIVE`] from creation until drop. Held
/// as the last field of the object, so that it is dropped after the object's
/// own `Drop` released the DPDK resource.
#[derive(Debug)]
pub(crate) struct Live(());

impl Live {
    /// Counts a new object, if the EAL is running. The increment comes
    /// before the state check, and [`Eal::cleanup`] sets the state before
    /// reading the count (both `SeqCst`): so either cleanup sees this object
    /// and refuses, or this sees cleanup and fails. `op` names the call for
    /// the error.
    pub(crate) fn enter(op: &'static str) -> Result<Live> {
        LIVE.fetch_add(1, SeqCst);
        if EAL_STATE.load(SeqCst) != EAL_RUNNING {
            LIVE.fetch_sub(1, SeqCst);
            return Err(DpdkError::new(op, libc::ENODEV));
        }
        Ok(Live(()))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, SeqCst);
    }
}

/// Hands a mempool whose last handle is gone to [`Eal::cleanup`] instead of
/// freeing it now: mbufs allocated from it may still be alive, on any
/// thread, and each one frees itself into the pool it came from. Counting
/// those mbufs would cost an atomic operation per packet; keeping the pool
/// until cleanup costs only its memory, and cleanup checks that every mbuf
/// came back.
pub(crate) fn retire_mempool(raw: *mut dpdk_sys::rte_mempool) {
    RETIRED_POOLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(raw as usize);
}

/// The initialised Environment Abstraction Layer. One per process: DPDK's EAL
/// cannot be initialised twice, not even after cleanup.
///
/// Not `Send`: [`Eal::cleanup`] runs on the thread that initialised the EAL
/// (the main lcore), which cannot be using its mempool cache at the same time.
///
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<dpdk::Eal>();
/// ```
#[derive(Debug)]
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises the EAL with `args` (without the program name). Errors are
    /// returned, never a process exit.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_STATE
            .compare_exchange(EAL_NEW, EAL_CLOSING, SeqCst, SeqCst)
            .is_err()
        {
            return Err(DpdkError::new("rte_eal_init", libc::EALREADY));
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("ctrack").expect("no NUL"));
        for a in args {
            owned.push(
                CString::new(a.as_ref())
                    .map_err(|_| DpdkError::new("rte_eal_init", libc::EINVAL))?,
            );
        }
        // EAL may keep pointers into argv (e.g. for the program name), so the
        // strings live for the rest of the process.
        let owned: &'static [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] =
            Vec::leak(owned.iter().map(|s| s.as_ptr() as *mut c_char).collect());
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the
        // process; EAL is initialised at most once (checked above).
        let rc = unsafe { dpdk_sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        if rc < 0 {
            // A failed init cannot be retried either (DPDK keeps its state):
            // the state stays "closing", so nothing runs against it.
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        EAL_STATE.store(EAL_RUNNING, SeqCst);
        Ok(Eal {
            _not_send: PhantomData,
        })
    }

    /// Frees the retired mempools and releases the EAL. Refused with `EBUSY`
    /// (and the `Eal` given back) while any port, queue, mempool handle,
    /// hash table or registered thread ([`register_thread`]) is alive, or any
    /// mbuf has not come back to its pool: then nothing is freed, and what is
    /// alive keeps working. After cleanup, creating any DPDK object fails
    /// with `ENODEV`.
    ///
    /// Why this is enough: a DPDK object (or a queue, which holds its port)
    /// is counted until it is dropped; an mbuf is counted by its pool until
    /// it is freed, and pools are only freed here. An mbuf freed on a thread
    /// without an lcore id goes straight to the pool's ring, whose count is
    /// updated last; one freed on a registered thread may still be writing
    /// to its lcore cache after the count moved, but that thread is
    /// registered, so cleanup refuses; the main lcore is this thread.
    pub fn cleanup(self) -> std::result::Result<(), (Eal, DpdkError)> {
        let busy = |eal| {
            EAL_STATE.store(EAL_RUNNING, SeqCst);
            Err((eal, DpdkError::new("rte_eal_cleanup", libc::EBUSY)))
        };
        // Closing first, then the count: see Live::enter.
        EAL_STATE.store(EAL_CLOSING, SeqCst);
        if LIVE.load(SeqCst) != 0 {
            return busy(self);
        }
        let mut pools = RETIRED_POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let in_use = |p: usize| {
            // SAFETY: a retired pool is only freed below, under this lock.
            unsafe { dpdk_sys::ctrack_rte_mempool_in_use_count(p as *mut dpdk_sys::rte_mempool) }
        };
        if pools.iter().any(|&p| in_use(p) != 0) {
            drop(pools);
            return busy(self);
        }
        for p in pools.drain(..) {
            // SAFETY: no handle, port or mbuf refers to the pool any more
            // (checked above), and it is freed once (drained).
            unsafe { dpdk_sys::rte_mempool_free(p as *mut dpdk_sys::rte_mempool) };
        }
        drop(pools);
        EAL_STATE.store(EAL_DONE, SeqCst);
        // SAFETY: nothing DPDK is alive (checked above), no object can be
        // created any more (state), and the Eal is consumed.
        check("rte_eal_cleanup", unsafe { dpdk_sys::rte_eal_cleanup() })
            .map(|_| ())
            .map_err(|e| {
                (
                    Eal {
                        _not_send: PhantomData,
                    },
                    e,
                )
            })
    }

    /// Number of Ethernet ports the EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised (we hold an Eal).
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }
}

/// The main lcore (the one that called [`Eal::init`]).
pub fn main_lcore() -> LcoreId {
    // SAFETY: reads EAL configuration; valid after init, returns 0 before.
    LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
}

/// The enabled lcores other than the main one, in id order.
pub fn worker_lcores() -> Vec<LcoreId> {
    let main = main_lcore();
    let mut out = Vec::new();
    for id in 0..dpdk_sys::RTE_MAX_LCORE {
        // SAFETY: any id below RTE_MAX_LCORE is a valid argument.
        let enabled = unsafe { dpdk_sys::rte_lcore_is_enabled(id) } != 0;
        if enabled && id != main.0 {
            out.push(LcoreId(id));
        }
    }
    out
}

/// Registers the calling (non-EAL) thread with DPDK, so that it gets an lcore
/// id and mempool per-lcore caches work for it. The thread stays registered
/// until the returned guard is dropped (on this thread: it is not `Send`);
/// [`Eal::cleanup`] waits for that.
pub fn register_thread() -> Result<ThreadRegistration> {
    let live = Live::enter("rte_thread_register")?;
    // SAFETY: registers the calling thread; fails cleanly if no lcore id is free.
    let rc = unsafe { dpdk_sys::rte_thread_register() };
    if rc < 0 {
        return Err(DpdkError::from_rte_errno("rte_thread_register"));
    }
    Ok(ThreadRegistration {
        lcore: lcore_id(),
        _not_send: PhantomData,
        _live: live,
    })
}

/// The calling thread's registration with DPDK; unregisters it on drop.
#[derive(Debug)]
pub struct ThreadRegistration {
    lcore: LcoreId,
    _not_send: PhantomData<*const ()>,
    _live: Live,
}

impl ThreadRegistration {
    /// The lcore id the thread got.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: the guard is not Send, so this is the thread that
        // registered; the EAL is running (cleanup waits for this guard).
        unsafe { dpdk_sys::rte_thread_unregister() };
    }
}

/// The calling thread's lcore id (`LCORE_ID_ANY` for unregistered threads).
pub fn lcore_id() -> LcoreId {
    // SAFETY: reads a thread-local through the shim.
    LcoreId(unsafe { dpdk_sys::ctrack_rte_lcore_id() })
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::ctrack_rte_rdtsc() }
}

/// TSC ticks per second, as calibrated by EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads EAL's calibration result.
    unsafe { dpdk_sys::ctrack_rte_get_tsc_hz() }
}

/// Nanoseconds from the TSC: one `rdtsc` and a multiply, for reading the time
/// once per burst.
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    base: u64,
    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    mult: u64,
}

impl TscClock {
    /// A clock starting at 0 now. Needs an initialised EAL (for the TSC rate).
    pub fn new() -> TscClock {
        let hz = tsc_hz().max(1);
        TscClock {
            base: rdtsc(),
            mult: ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        }
    }

    /// Nanoseconds since [`TscClock::new`].
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        let ticks = rdtsc().wrapping_sub(self.base);
        ((u128::from(ticks) * u128::from(self.mult)) >> 32) as u64
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}
