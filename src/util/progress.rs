//! Stage timings and progress on stderr.
//!
//! One object serves both: a run marks where each stage starts, a person at a
//! terminal sees which stage is running and how long each took, and `icp
//! bench` reads the same timings back (through `ICP_TIMINGS`). Pipes, CI and
//! `--quiet` see nothing.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Environment variable naming a JSON file to write the stage timings to.
pub const TIMINGS_ENV: &str = "ICP_TIMINGS";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
    /// CPU seconds (user + system, all threads) the process spent in the
    /// stage: steadier than wall time on a shared machine
    pub cpu_seconds: f64,
    /// rows the stage worked through, where that means something
    pub rows: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub command: String,
    pub stages: Vec<StageTime>,
    pub total_seconds: f64,
    /// the process's peak resident set size (VmHWM), when the OS reports it
    pub peak_rss_bytes: Option<u64>,
    pub threads: usize,
}

struct Inner {
    current: Option<(String, Instant, f64)>,
    done: Vec<StageTime>,
}

pub struct Stages {
    command: String,
    started: Instant,
    show: bool,
    inner: Mutex<Inner>,
}

impl Stages {
    /// Progress for `command`, shown only when stderr is a terminal and not quiet.
    pub fn new(command: &str, quiet: bool) -> Stages {
        Stages {
            command: command.into(),
            started: Instant::now(),
            show: !quiet && std::io::stderr().is_terminal(),
            inner: Mutex::new(Inner {
                current: None,
                done: Vec::new(),
            }),
        }
    }

    /// Records timings, shows nothing (library callers and tests).
    pub fn silent() -> Stages {
        let mut s = Stages::new("", true);
        s.show = false;
        s
    }

    /// End the current stage (if any) and start `stage`. A stage entered
    /// twice (features are learnt for the holdout model and again for the
    /// final one) accumulates its time.
    pub fn start(&self, stage: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.end_current(&mut g);
        if self.show {
            eprint!("\r\x1b[2K{} {stage} ...", self.command);
            let _ = std::io::stderr().flush();
        }
        g.current = Some((stage.to_string(), Instant::now(), cpu_seconds()));
        // counted in the stage it makes room for
        release_free_memory();
        Trace::start().lap(&format!("stage {stage} starts"));
    }

    /// Rows the current stage works through.
    pub fn rows(&self, n: usize) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, _, _)) = g.current.clone()
            && let Some(s) = g.done.iter_mut().find(|s| s.stage == name)
        {
            s.rows = Some(n);
            return;
        }
        if let Some((name, _, _)) = g.current.clone() {
            g.done.push(StageTime {
                stage: name,
                seconds: 0.0,
                cpu_seconds: 0.0,
                rows: Some(n),
            });
        }
    }

    fn end_current(&self, g: &mut Inner) {
        let Some((name, t0, c0)) = g.current.take() else {
            return;
        };
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        match g.done.iter_mut().find(|s| s.stage == name) {
            Some(s) => {
                s.seconds += secs;
                s.cpu_seconds += cpu;
            }
            None => g.done.push(StageTime {
                stage: name.clone(),
                seconds: secs,
                cpu_seconds: cpu,
                rows: None,
            }),
        }
        if self.show {
            eprintln!("\r\x1b[2K{} {name:<10} {secs:>8.2} s", self.command);
        }
    }

    /// End the last stage; write the timings where `ICP_TIMINGS` says.
    pub fn finish(&self) -> Timings {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.end_current(&mut g);
        let t = Timings {
            command: self.command.clone(),
            stages: g.done.clone(),
            total_seconds: self.started.elapsed().as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
            threads: rayon::current_num_threads(),
        };
        if let Some(path) = std::env::var_os(TIMINGS_ENV).map(PathBuf::from)
            && let Ok(text) = serde_json::to_string_pretty(&t)
            && let Err(e) = std::fs::write(&path, text)
        {
            eprintln!("warning: cannot write timings to {}: {e}", path.display());
        }
        t
    }
}

/// CPU time of this process so far (user + system, every thread).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Peak resident set size of this process (Linux: VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Sub-step timer for profiling a stage: with `ICP_TRACE` set, each lap
/// prints its label and the seconds since the previous one to stderr.
pub struct Trace(Option<std::cell::Cell<Instant>>);

impl Trace {
    pub fn start() -> Trace {
        Trace(std::env::var_os("ICP_TRACE").map(|_| std::cell::Cell::new(Instant::now())))
    }

    /// Start the next lap now: what ran since the last lap is not its cost
    /// (a writer's file laps would otherwise include the stages between files).
    pub fn restart(&self) {
        if let Some(t) = &self.0 {
            t.set(Instant::now());
        }
    }

    /// Also prints the resident set now and at its peak, and the bytes
    /// the allocator holds for live allocations: where memory goes.
    /// [`Trace::lap`] with a label made only when tracing.
    pub fn lap_with(&mut self, label: impl FnOnce() -> String) {
        if self.0.is_some() {
            self.lap(&label());
        }
    }

    pub fn lap(&mut self, label: &str) {
        if let Some(t) = &self.0 {
            let mb = |b: Option<u64>| b.map_or("-".to_string(), |b| (b / (1 << 20)).to_string());
            eprintln!(
                "  trace {label:<28} {:7.3} s  rss {:>5} MiB  peak {:>5} MiB  live {:>5} MiB",
                t.get().elapsed().as_secs_f64(),
                mb(status_bytes("VmRSS:")),
                mb(status_bytes("VmHWM:")),
                mb(live_heap_bytes()),
            );
            t.set(Instant::now());
        }
    }
}

/// Hand the pages of freed memory back to the OS between stages (glibc
/// keeps them otherwise, and the next stage's peak stacks on them).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn status_bytes(key: &str) -> Option<u64> {
    proc_bytes("/proc/self/status", key)
}

/// A "Key:  N kB" field of a Linux /proc file, in bytes.
pub fn proc_bytes(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes in live heap allocations (glibc: in-use chunks of every arena
/// plus mmapped blocks), as against the resident set the allocator keeps.
/// `mallinfo2` is looked up when called, not linked: it is glibc 2.33's,
/// and the binary should still start on an older glibc (the figure is then
/// not shown).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn live_heap_bytes() -> Option<u64> {
    // SAFETY: dlsym with RTLD_DEFAULT only looks a symbol up; a non-null
    // result for "mallinfo2" is glibc's function of that signature, which
    // takes no arguments and returns a plain struct.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr());
        if f.is_null() {
            return None;
        }
        let mallinfo2: extern "C" fn() -> libc::mallinfo2 = std::mem::transmute(f);
        let m = mallinfo2();
        Some((m.uordblks + m.hblkhd) as u64)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn live_heap_bytes() -> Option<u64> {
    None
}
