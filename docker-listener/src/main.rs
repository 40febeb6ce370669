//! The `docker-listener` binary: parses the command line, maps every error to a message that
//! names the cause and the fix, and to a documented exit code.
use std::process::ExitCode;

use clap::Parser;
use docker_listener::{
    cli::{Cli, Command, RunArgs},
    config::{Config, Output},
    daemon, doctor, logging,
};

/// The static build's allocator: mimalloc, not musl's (Cargo.toml and `allocator` say why). The
/// dynamic build keeps glibc's.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (README, "Exit codes").
const EXIT_FATAL: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // SAFETY: first in `main`: no other thread exists yet.
    unsafe { docker_listener::allocator::configure() };
    // Started by wazuh-modulesd as its docker-listener wodle: everything from the Wazuh home.
    if let Some(layout) = docker_listener::wodle::Layout::detect() {
        return wodle(layout);
    }
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::CheckConfig(args)) => check_config(args),
        Some(Command::Doctor(args)) => doctor(args),
        Some(Command::Stats(args)) => stats(args),
        Some(Command::Install(args)) => install(args),
    }
}

/// As the wodle (`docker_listener::wodle`): errors only on stderr, one line each.
fn wodle(layout: docker_listener::wodle::Layout) -> ExitCode {
    let cfg = match layout.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("docker-listener: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match layout.open_log() {
        Ok(file) => logging::init_wodle(cfg.log_format, u8::from(cfg.debug), file),
        Err(e) => {
            eprintln!(
                "docker-listener: cannot write its log {}: {e}; logging errors here only",
                layout.log_file().display()
            );
            logging::init_wodle_errors_only();
        }
    }
    serve(cfg)
}

fn install(args: docker_listener::cli::InstallArgs) -> ExitCode {
    match docker_listener::wodle::install(&args.wazuh_home) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "docker-listener: cannot install the wodle in {}: {e}. Run it as root, with --wazuh-home \
                 naming Wazuh's installation directory",
                args.wazuh_home.display()
            );
            ExitCode::from(if e.kind() == std::io::ErrorKind::PermissionDenied { 3 } else { EXIT_FATAL })
        }
    }
}

fn stats(args: RunArgs) -> ExitCode {
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match docker_listener::metrics::fetch(&cfg.state_dir) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("docker-listener: {e}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn load(args: &RunArgs) -> Result<Config, ExitCode> {
    args.effective_config().map_err(|e| {
        eprintln!("docker-listener: invalid configuration: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// One thread: the pipeline's stages hand work to each other many thousand times a second, and
/// on one thread that is a function call; across threads every hand-over was an eventfd write
/// and a wake-up (measured: 4.6 -> 3.0 us of CPU per Docker event with one HTTP chunk per
/// event). The load is far below one core (BENCHMARKS.md).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread().thread_name("docker-listener").enable_all().build().map_err(|e| {
        eprintln!("docker-listener: cannot start the async runtime: {e}");
        ExitCode::from(EXIT_FATAL)
    })
}

fn run(args: RunArgs) -> ExitCode {
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(cfg.log_format, args.verbose.max(u8::from(cfg.debug)));
    serve(cfg)
}

/// Runs the daemon to its end; its error, logged, becomes the documented exit code.
fn serve(cfg: Config) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn check_config(args: RunArgs) -> ExitCode {
    let mut cfg = match load(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Print what the daemon will really use, defaults resolved.
    cfg.queue = Some(cfg.queue_path());
    cfg.output = Some(cfg.output.clone().unwrap_or(Output::Queue));
    match cfg.docker_socket() {
        Ok(p) => cfg.docker_host = Some(format!("unix://{}", p.display())),
        Err(e) => {
            eprintln!("docker-listener: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let wrapped = serde_json::json!({ "docker-listener": cfg });
    match serde_json::to_string_pretty(&wrapped) {
        Ok(text) => {
            println!("{text}");
            eprintln!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("docker-listener: cannot print the configuration: {e}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn doctor(args: RunArgs) -> ExitCode {
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging::init(cfg.log_format, args.verbose);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let checks = rt.block_on(doctor::run(&cfg));
    for c in &checks {
        println!("{c}");
    }
    let failed = checks.iter().filter(|c| c.status == doctor::Status::Fail).count();
    if failed > 0 {
        println!("{failed} essential check(s) failed: see the fixes above");
        ExitCode::from(EXIT_FATAL)
    } else {
        println!("all essential checks passed");
        ExitCode::SUCCESS
    }
}
