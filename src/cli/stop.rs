//! The stop flag of the long-running commands (`node`, `policy run`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit status after a second SIGINT or SIGTERM: 128 + SIGINT, the shell's convention.
const FORCED_EXIT_STATUS: i32 = 130;

/// Returns the flag that stops a long-running command. SIGINT (Ctrl-C, also what ROS 2
/// launch sends first) and SIGTERM set it, and so does the end of `duration_secs` when
/// given. A second signal while the command is stopping ends the process at once.
pub fn stop_flag(duration_secs: Option<f64>) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // The exit check must be registered first: it runs before the flag is set, so only
        // a signal that finds the flag already set ends the process.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            FORCED_EXIT_STATUS,
            Arc::clone(&stop),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    if let Some(seconds) = duration_secs {
        anyhow::ensure!(
            seconds.is_finite() && seconds > 0.0,
            "--duration is {seconds}, expected a positive number of seconds"
        );
        let timer = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            timer.store(true, Ordering::SeqCst);
        });
    }
    Ok(stop)
}
