//! The `icp` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Output piped into `head` and closed early ends the program quietly,
    // as for any Unix tool, instead of a panic on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // glibc gives each thread that allocates its own arena (up to 8 per
    // core) and keeps what is freed in each: at 1M accounts that held
    // 250-350 MB of freed column buffers above the live heap. Two arenas
    // measured no slower and lowered the peak. Set before any thread exists,
    // and not over an operator's own MALLOC_ARENA_MAX or GLIBC_TUNABLES.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && std::env::var_os("GLIBC_TUNABLES").is_none()
    {
        // SAFETY: mallopt only sets an allocator parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
    let cli = icp::cmd::Cli::parse();
    match icp::cmd::dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<icp::cmd::NotReady>().is_some() {
                std::process::ExitCode::from(icp::cmd::EXIT_NOT_READY)
            } else {
                std::process::ExitCode::from(1)
            }
        }
    }
}
