//! Logs go to stderr (stdout may carry frames with `--output stdout`), as text or JSON; as
//! Wazuh's wodle, to a log file, with only errors on stderr (`crate::wodle`).
use tracing_subscriber::{EnvFilter, Layer, filter::LevelFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

fn filter(verbosity: u8) -> EnvFilter {
    let level = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // aya's own crates log at debug a line per relocation; keep them at warn unless asked.
    let default = format!("{level},aya=warn,aya_obj=warn,hyper=info,hyper_util=info,bollard=info");
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// As the wodle: everything to `file`; on stderr, which wazuh-modulesd copies into ossec.log as
/// errors, only errors, one line each, without time or colour.
pub fn init_wodle(format: LogFormat, verbosity: u8, file: std::fs::File) {
    let to_file = fmt::layer().with_writer(std::sync::Mutex::new(file)).with_target(false).with_ansi(false);
    let to_file = match format {
        LogFormat::Text => to_file.boxed(),
        LogFormat::Json => to_file.json().flatten_event(true).boxed(),
    };
    let _ = tracing_subscriber::registry().with(to_file.with_filter(filter(verbosity))).with(errors_only()).try_init();
}

/// On stderr, errors only, one line each, without time, level or colour (the wodle's).
fn errors_only<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>()
-> impl tracing_subscriber::Layer<S> {
    fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_filter(LevelFilter::ERROR)
}

/// The wodle's logging when its log file cannot be opened: errors only, on stderr, which
/// wazuh-modulesd copies into ossec.log as errors (anything else would flood it).
pub fn init_wodle_errors_only() {
    let _ = tracing_subscriber::registry().with(errors_only()).try_init();
}

/// `verbosity`: 0 info, 1 debug, 2+ trace. `RUST_LOG` wins when set.
pub fn init(format: LogFormat, verbosity: u8) {
    let filter = filter(verbosity);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
