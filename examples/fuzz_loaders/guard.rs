//! The worker's guards: a counting global allocator with a limit (one allocation, or all live
//! bytes together), a per-input watchdog, and the shared "current input" page the supervisor
//! reads back when the worker dies (abort on the limit, hang, stack overflow, any signal).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use memmap2::MmapMut;

/// Bytes currently allocated through the global allocator.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Limit on one allocation and on `LIVE`; 0 = not armed.
static LIMIT: AtomicUsize = AtomicUsize::new(0);

/// The global allocator of the fuzz binary: the system allocator, counted.
pub struct Counting;

fn check(size: usize, grow: usize) {
    let limit = LIMIT.load(Ordering::Relaxed);
    if limit == 0 {
        return;
    }
    let live = LIVE.load(Ordering::Relaxed);
    if size > limit || live.saturating_add(grow) > limit {
        // Nothing here may allocate: format into a stack buffer, write, mark the page, abort.
        LIMIT.store(0, Ordering::Relaxed);
        let mut msg = StackBuf::default();
        let _ = write!(
            msg,
            "\nFINDING alloc: an allocation of {size} bytes (live {live} bytes) exceeds the limit of {limit} bytes\n"
        );
        let _ = std::io::stderr().write_all(msg.as_bytes());
        if let Some(s) = SHARED.get() {
            s.set(HDR_REASON, Reason::Alloc as u64);
            s.set(HDR_ALLOC, size as u64);
        }
        std::process::abort();
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size(), layout.size());
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size(), layout.size());
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size, new_size.saturating_sub(layout.size()));
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Arm the allocation limit (bytes).
pub fn arm_alloc_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

struct StackBuf {
    buf: [u8; 256],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Why the worker stopped, as written into the shared page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Hang = 1,
    Alloc = 2,
    Done = 3,
}

/// Header words of the shared page (u64 each), then the current input.
pub const HDR_LEN: usize = 0;
pub const HDR_REASON: usize = 1;
pub const HDR_EXECS: usize = 2;
pub const HDR_ALLOC: usize = 3;
pub const HDR_PANICS: usize = 4;
pub const HDR_SIGNATURES: usize = 5;
const HDR_WORDS: usize = 8;
/// Largest input the harness runs.
pub const MAX_INPUT: usize = 8 << 20;

/// A file-backed map shared by supervisor (reader) and worker (writer): it outlives the worker.
pub struct Shared {
    _map: MmapMut,
    ptr: *mut u8,
}

// SAFETY: the worker writes the input only from its fuzzing thread; header words are written
// as whole u64 (the allocator guard and the watchdog write one word each just before abort) and
// read by the supervisor after the worker has exited.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

static SHARED: OnceLock<Shared> = OnceLock::new();

impl Shared {
    /// Create (zeroed) or open the page at `path`.
    pub fn open(path: &Path, create: bool) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if create {
            f.set_len((HDR_WORDS * 8 + MAX_INPUT) as u64)?;
        }
        // SAFETY: the file is private to this harness run (its own temporary directory).
        let mut map = unsafe { MmapMut::map_mut(&f) }?;
        anyhow::ensure!(
            map.len() >= HDR_WORDS * 8 + MAX_INPUT,
            "{} is too short",
            path.display()
        );
        let ptr = map.as_mut_ptr();
        Ok(Self { _map: map, ptr })
    }

    pub fn get(&self, word: usize) -> u64 {
        assert!(word < HDR_WORDS);
        // SAFETY: in bounds (checked at open).
        u64::from_le(unsafe { std::ptr::read_unaligned(self.ptr.add(word * 8) as *const u64) })
    }

    pub fn set(&self, word: usize, v: u64) {
        assert!(word < HDR_WORDS);
        // SAFETY: in bounds (checked at open).
        unsafe { std::ptr::write_unaligned(self.ptr.add(word * 8) as *mut u64, v.to_le()) }
    }

    /// Record the input about to run (at most `MAX_INPUT` bytes of it).
    pub fn put_input(&self, data: &[u8]) {
        let n = data.len().min(MAX_INPUT);
        // SAFETY: in bounds (checked at open); `data` is not inside the map.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(HDR_WORDS * 8), n) };
        self.set(HDR_LEN, n as u64);
    }

    pub fn input(&self) -> Vec<u8> {
        let n = (self.get(HDR_LEN) as usize).min(MAX_INPUT);
        // SAFETY: in bounds (checked at open).
        unsafe { std::slice::from_raw_parts(self.ptr.add(HDR_WORDS * 8), n) }.to_vec()
    }

    /// Make this the page the allocator guard and the watchdog report into.
    pub fn install(self) -> &'static Shared {
        let _ = SHARED.set(self);
        SHARED.get().expect("just set")
    }
}

/// Start time of the input now running (ms since `EPOCH`, +1), 0 between inputs.
static STARTED: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// CPU seconds this process has used (Linux `/proc/self/stat`; `None` elsewhere).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut f = stat.rsplit_once(')')?.1.split_whitespace();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Start the watchdog thread: an input that uses more than `timeout` of CPU time (or ten times
/// that in wall time, on a machine shared with other jobs) is a hang (abort).
pub fn start_watchdog(timeout: Duration) {
    now_ms();
    std::thread::spawn(move || {
        let mut seen = (0u64, 0f64);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let s = STARTED.load(Ordering::Relaxed);
            if s == 0 {
                continue;
            }
            let cpu = cpu_secs();
            if s != seen.0 {
                seen = (s, cpu.unwrap_or(0.0));
                continue;
            }
            let wall = Duration::from_millis(now_ms().saturating_sub(s));
            let used = cpu.map_or(wall, |c| Duration::from_secs_f64((c - seen.1).max(0.0)));
            if used > timeout || wall > 10 * timeout {
                LIMIT.store(0, Ordering::Relaxed);
                eprintln!(
                    "\nFINDING hang: one input ran for {:.1} s of CPU time ({:.1} s wall), over the {:.1} s limit",
                    used.as_secs_f64(),
                    wall.as_secs_f64(),
                    timeout.as_secs_f64()
                );
                if let Some(sh) = SHARED.get() {
                    sh.set(HDR_REASON, Reason::Hang as u64);
                }
                std::process::abort();
            }
        }
    });
}

/// Mark an input as running (`true`) or finished (`false`) for the watchdog.
pub fn running(on: bool) {
    STARTED.store(if on { now_ms() } else { 0 }, Ordering::Relaxed);
}

/// Injected failures that check the detectors (`--self-test`).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SelfTest {
    Panic,
    Hang,
    Alloc,
    Stack,
}

impl SelfTest {
    pub fn trigger(self) {
        match self {
            Self::Panic => panic!("self-test panic"),
            Self::Hang => loop {
                std::hint::black_box(0u64);
            },
            Self::Alloc => {
                std::hint::black_box(vec![1u8; 2 << 30]);
            }
            Self::Stack => {
                fn deeper(n: u64) -> u64 {
                    let frame = std::hint::black_box([n; 64]);
                    if frame[7] == u64::MAX {
                        return 0;
                    }
                    deeper(std::hint::black_box(n + 1)) + frame[3]
                }
                std::hint::black_box(deeper(0));
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Hang => "hang",
            Self::Alloc => "alloc",
            Self::Stack => "stack",
        }
    }
}
