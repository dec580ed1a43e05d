//! `demo`, `emulators` and `chaos` (the `demo` feature, on by default): hands
//! the service behind `start` ([`crate::app::run`]) to the testkit's demo,
//! which runs it against the Teleport and Discord emulators. The production
//! image is built without this module and without the testkit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use teleport_discord_testkit::demo::{Service, ServiceRun};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, RunOptions};
use crate::config;
use crate::logging::{self, LogHandle};

/// `teleport-discord start`'s code, as the demo runs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartService;

impl Service for StartService {
    fn shutdown_grace(&self) -> Duration {
        app::SHUTDOWN_GRACE
    }

    fn start(
        &self,
        config_path: &Path,
        listener: TcpListener,
        stop: CancellationToken,
        verbose: bool,
    ) -> Result<ServiceRun, String> {
        // No environment overrides: a TELEPORT_DISCORD_TOKEN meant for a real
        // deployment must not leak into the demo.
        let env = BTreeMap::<String, String>::new();
        let loaded = config::load(config_path, &env).map_err(|e| e.to_string())?;
        let log = if verbose {
            logging::init(&loaded.config.log, false).map_err(|e| e.to_string())?
        } else {
            LogHandle::noop()
        };
        let options = RunOptions {
            env: Arc::new(env),
            log,
            handle_signals: false,
        };
        Ok(Box::pin(async move {
            app::run(loaded, listener, stop, options)
                .await
                .map_err(|e| e.to_string())
        }))
    }
}

impl From<&crate::cli::DemoArgs> for teleport_discord_testkit::demo::Options {
    fn from(a: &crate::cli::DemoArgs) -> Self {
        Self {
            keep_running: a.keep_running,
            fast: a.fast,
            listen: a.listen,
            burst: a.burst,
            verbose: a.verbose,
        }
    }
}

/// `demo`: the story against the emulators; the exit code.
pub async fn run_demo(args: &crate::cli::DemoArgs) -> i32 {
    match teleport_discord_testkit::demo::run(args.into(), Arc::new(StartService)).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// `chaos`: replicas of this binary against the emulators, with faults; the
/// exit code (0 only for a clean run).
pub fn run_chaos(args: crate::cli::ChaosArgs) -> i32 {
    use teleport_discord_testkit::chaos::{self, ChaosOptions, Fault};
    let result = chaos::run_cli(args.dir.clone(), args.json.clone(), |binary, dir| {
        ChaosOptions {
            requests: args.requests,
            rate: args.rate,
            replicas: args.replicas,
            channels: args.channels.max(1),
            fault_every: Duration::from_millis(args.fault_every_ms.max(50)),
            settle_timeout: Duration::from_secs(args.settle_timeout),
            seed: args.seed,
            faults: if args.no_faults {
                Vec::new()
            } else {
                Fault::ALL.to_vec()
            },
            sample_every: Duration::from_secs(args.sample_every.max(1)),
            expire_after: args.expire_after.map(Duration::from_secs),
            ..ChaosOptions::new(binary, dir)
        }
    });
    match result {
        Ok(true) => 0,
        Ok(false) => crate::cli::EXIT_FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            crate::cli::EXIT_FAILURE
        }
    }
}

/// `emulators`: both emulators and a config for `start` in `dir`, until a signal.
pub async fn run_emulators(args: &crate::cli::EmulatorsArgs) -> i32 {
    match teleport_discord_testkit::sandbox::run_until_signal(&args.dir, &args.extra).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            crate::cli::EXIT_FAILURE
        }
    }
}
