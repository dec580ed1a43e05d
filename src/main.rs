//! `teleport-discord`: parse the command line, load the config, set up TLS and
//! logging, then hand over to the library.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use clap::error::ErrorKind;
use teleport_discord::cli::{Cli, Command, EXIT_FAILURE, EXIT_USAGE};
use teleport_discord::config::{self, ProcessEnv};
use teleport_discord::{app, logging, version};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => EXIT_USAGE,
            };
            let _ = e.print();
            return exit(code);
        }
    };
    match cli.command {
        Command::Configure => {
            print!("{}", config::EXAMPLE_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("{}", version::version_line());
            ExitCode::SUCCESS
        }
        #[cfg(feature = "demo")]
        Command::Emulators(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            match runtime() {
                Ok(rt) => exit(rt.block_on(teleport_discord::demo::run_emulators(&args))),
                Err(code) => code,
            }
        }
        #[cfg(feature = "demo")]
        Command::Chaos(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            exit(teleport_discord::demo::run_chaos(args))
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            match runtime() {
                Ok(rt) => exit(rt.block_on(teleport_discord::demo::run_demo(&args))),
                Err(code) => code,
            }
        }
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => {
            eprintln!(
                "error: this build has no demo: it was built without the emulators (cargo feature `demo`), as the container image is; run `cargo run --release -- demo` from a clone of the repository"
            );
            exit(EXIT_USAGE)
        }
        Command::Healthcheck(args) => {
            let timeout = std::time::Duration::from_secs(args.timeout.max(1));
            match teleport_discord::healthcheck::probe(args.addr, &args.path, timeout) {
                Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("unhealthy: {} answered HTTP {status}", args.addr);
                    exit(EXIT_FAILURE)
                }
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    exit(EXIT_FAILURE)
                }
            }
        }
        Command::Check(args) => {
            let loaded = match config::load(&args.config, &ProcessEnv) {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit(EXIT_USAGE);
                }
            };
            for w in &loaded.warnings {
                eprintln!("warning: {}: {w}", loaded.path.display());
            }
            println!("{}: configuration is valid", loaded.path.display());
            if args.config_only {
                return ExitCode::SUCCESS;
            }
            let _ = rustls::crypto::ring::default_provider().install_default();
            let report = match runtime() {
                Ok(rt) => rt.block_on(teleport_discord::check::connectivity(&loaded.config)),
                Err(code) => return code,
            };
            print!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                exit(EXIT_FAILURE)
            }
        }
        Command::Start(args) => {
            let loaded = match config::load(&args.config, &ProcessEnv) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit(EXIT_USAGE);
                }
            };
            let _ = rustls::crypto::ring::default_provider().install_default();
            let log = match logging::init(&loaded.config.log, args.debug) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return exit(EXIT_USAGE);
                }
            };
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let options = app::RunOptions {
                env: Arc::new(ProcessEnv),
                log,
                handle_signals: true,
            };
            match runtime.block_on(app::start(loaded, options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "Terminating with fatal error");
                    eprintln!("error: {e}");
                    exit(EXIT_FAILURE)
                }
            }
        }
    }
}

/// A Tokio runtime, or the exit code after saying why there is none.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        exit(EXIT_FAILURE)
    })
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
