//! Logs go to stderr (stdout may carry frames with `--output stdout`), as text or JSON.
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// `verbosity`: 0 info, 1 debug, 2+ trace. `RUST_LOG` wins when set.
pub fn init(format: LogFormat, verbosity: u8) {
    let level = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // aya's own crates log at debug a line per relocation; keep them at warn unless asked.
    let default = format!("{level},aya=warn,aya_obj=warn,hyper=info,hyper_util=info,bollard=info");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
