//! The command line. Flags override the config file, which overrides the defaults.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat, Output};

#[derive(Debug, Parser)]
#[command(
    name = "docker-listener",
    version,
    about = "Forward Docker events, and the processes and connections inside containers (eBPF), \
             to the Wazuh queue",
    long_about = "docker-listener streams every Docker Engine event and, with eBPF, the process \
                  executions and socket activity inside containers into Wazuh's queue socket, in \
                  the framing Wazuh's Docker rules already understand.\n\n\
                  With no command it runs the daemon.",
    after_help = "Exit codes: 0 clean shutdown (SIGINT/SIGTERM) or disabled in the config; 1 fatal \
                  runtime error (doctor: a check failed; stats: no agent running); 2 invalid \
                  configuration or command line; 3 permission denied (Docker socket, state \
                  directory, output file, eBPF with ebpf.required); 4 another instance holds the \
                  lock.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default when no command is given).
    Run(RunArgs),
    /// Validate the config file and print the effective configuration (exit 2 if invalid).
    CheckConfig(RunArgs),
    /// Check everything the daemon needs, one line per check with OK/WARN/FAIL and the fix.
    Doctor(RunArgs),
    /// Print the counters of the running agent (the same numbers as the metrics endpoint).
    Stats(RunArgs),
    /// Install this binary: `--wodle` puts it in place of Wazuh's docker-listener wodle.
    Install(InstallArgs),
}

#[derive(Debug, Args, Clone)]
pub struct InstallArgs {
    /// As `<wazuh home>/wodles/docker/DockerListener`, which wazuh-modulesd runs; prints the
    /// ossec.conf block to add.
    #[arg(long, required = true)]
    pub wodle: bool,
    /// Wazuh's installation directory.
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    pub wazuh_home: PathBuf,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// JSON config file: {"docker-listener": {...}}. Without it, defaults are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Wazuh's installation directory [default: /var/ossec]: the queue, and the wodle `doctor`
    /// checks.
    #[arg(long, value_name = "DIR")]
    pub wazuh_home: Option<PathBuf>,
    /// Wazuh queue socket [default: <wazuh_home>/queue/sockets/queue, wazuh_home=/var/ossec].
    #[arg(long, value_name = "PATH")]
    pub queue: Option<PathBuf>,
    /// Where frames go: queue (the Wazuh queue socket), stdout, or file:PATH (one frame per line).
    #[arg(long, value_name = "OUTPUT")]
    pub output: Option<Output>,
    /// Docker API socket [default: $DOCKER_HOST or unix:///var/run/docker.sock].
    #[arg(long, value_name = "unix:///PATH")]
    pub docker_host: Option<String>,
    /// Docker events only: do not load the eBPF programs.
    #[arg(long)]
    pub no_ebpf: bool,
    /// Directory for the resume cursor and the instance lock [default: /var/lib/docker-listener].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// More logging: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short = 'v', long = "debug", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl RunArgs {
    /// The config file (or the defaults) with these flags applied, validated.
    pub fn effective_config(&self) -> Result<Config, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(h) = &self.wazuh_home {
            cfg.wazuh_home = absolute(h);
        }
        if let Some(q) = &self.queue {
            cfg.queue = Some(absolute(q));
        }
        if let Some(o) = &self.output {
            cfg.output = Some(match o {
                Output::File(p) => Output::File(absolute(p)),
                other => other.clone(),
            });
        }
        if let Some(h) = &self.docker_host {
            cfg.docker_host = Some(h.clone());
        }
        if self.no_ebpf {
            cfg.ebpf.enabled = false;
        }
        if let Some(d) = &self.state_dir {
            cfg.state_dir = absolute(d);
        }
        if let Some(f) = self.log_format {
            cfg.log_format = f;
        }
        if self.verbose > 0 {
            cfg.debug = true;
        }
        cfg.validate("command line")?;
        Ok(cfg)
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}
