//! Command-line interface: the same verbs and flags as the Go plugin
//! (`start`, `configure`, `version`), plus `check`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{DEFAULT_CONFIG_PATH, env_vars};

/// Exit code for a usage or configuration error (sysexits `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: i32 = 1;

/// Teleport Access Requests in Discord.
#[derive(Debug, Parser)]
#[command(name = "teleport-discord", version = crate::version::VERSION, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the plugin: watch Teleport for access requests and post them to Discord.
    Start(ConfigArgs),
    /// Print an example configuration file with every key.
    Configure,
    /// Print the version.
    Version,
    /// Validate a configuration file (listing every problem), then connect to Teleport and Discord and report what works.
    Check(CheckArgs),
    /// Run the Teleport and Discord emulators and write a config for `start` (for tests and trying things out).
    #[cfg(feature = "demo")]
    #[command(hide = true)]
    Emulators(EmulatorsArgs),
    /// Run replicas of `start` against the emulators while injecting faults, then check nothing was lost (see RELIABILITY.md).
    #[cfg(feature = "demo")]
    #[command(hide = true)]
    Chaos(ChaosArgs),
    /// Probe a running instance's /healthz (for container health checks; exits 0 when healthy).
    Healthcheck(HealthcheckArgs),
    /// Try it without Teleport or Discord: run the service against built-in emulators, play a short story, show each channel.
    Demo(DemoArgs),
}

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// After the story, keep everything running and print how to create, review and resolve requests (Ctrl-C exits).
    #[arg(long)]
    pub keep_running: bool,
    /// A short run without pauses (tests, CI); exits non-zero unless every expected message state was seen.
    #[arg(long)]
    pub fast: bool,
    /// Address of the demo page and the emulator control API [default: 127.0.0.1:8080, or a free port if taken].
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Requests in the rate-limit burst [default: 12, 7 with --fast].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub burst: Option<u32>,
    /// Also write the service's log to stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Flags of `emulators`.
#[cfg(feature = "demo")]
#[derive(Debug, clap::Args)]
pub struct EmulatorsArgs {
    /// Directory for credentials and the config file.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Appended to the written config (e.g. an [http] section).
    #[arg(long, default_value = "", value_name = "TOML")]
    pub extra: String,
}

/// Flags of `chaos`.
#[cfg(feature = "demo")]
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Access requests to create.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Requests created per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Replicas of `start` running at once.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Recipient channels.
    #[arg(long, default_value_t = 20)]
    pub channels: usize,
    /// Mean milliseconds between two faults.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub fault_every_ms: u64,
    /// Seconds to wait for the final picture once the faults stop.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub settle_timeout: u64,
    /// Seed of the random plan.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep credentials, config and replica logs here (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write the report as JSON to this file too.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Inject no faults (a soak: a steady rate, resources sampled).
    #[arg(long)]
    pub no_faults: bool,
    /// Seconds between samples of the replicas' memory and file descriptors.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub sample_every: u64,
    /// Delete each request this many seconds after it was acted upon (as
    /// Teleport does when requests expire), for a steady state.
    #[arg(long, value_name = "SECONDS")]
    pub expire_after: Option<u64>,
}

/// Flags of `healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// Address of the running instance (an unspecified IP such as 0.0.0.0 means this host).
    #[arg(long, env = env_vars::LISTEN_ADDR, default_value = crate::config::DEFAULT_LISTEN_ADDR, value_name = "IP:PORT")]
    pub addr: std::net::SocketAddr,
    /// Path to probe.
    #[arg(long, default_value = "/healthz", value_name = "PATH")]
    pub path: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Flags of `start`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Path to the TOML configuration file.
    #[arg(short = 'c', long = "config", env = env_vars::CONFIG, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
    pub config: PathBuf,
    /// Log at debug level whatever `[log] severity` says.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
}

/// Flags of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Path to the TOML configuration file.
    #[arg(short = 'c', long = "config", env = env_vars::CONFIG, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
    pub config: PathBuf,
    /// Only validate the file; do not connect to Teleport or Discord.
    #[arg(long)]
    pub config_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn start_takes_upstream_flags() {
        let cli = Cli::try_parse_from(["teleport-discord", "start", "-c", "/tmp/x.toml", "-d"])
            .expect("parse");
        match cli.command {
            Command::Start(a) => {
                assert_eq!(a.config, PathBuf::from("/tmp/x.toml"));
                assert!(a.debug);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "teleport-discord",
            "start",
            "--config",
            "/a.toml",
            "--debug",
        ])
        .expect("parse");
        assert!(matches!(
            cli.command,
            Command::Start(ConfigArgs { debug: true, .. })
        ));
    }
}
