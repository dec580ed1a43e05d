//! Logging: tracing-subscriber set up from `[log]` (output, severity, format),
//! with the severity reloadable at run time.
//!
//! Our own crate logs at the configured severity; dependencies log at `warn`
//! (or `error` when that is the severity) so that `debug`/`trace` stay
//! readable and no library dumps request headers. `RUST_LOG`, when set,
//! replaces the filter entirely (for experts).

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat, LogOutput, Severity};

type Reload = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Handle kept by the service to change the severity on reload.
#[derive(Debug, Clone)]
pub struct LogHandle {
    reload: Option<Reload>,
    forced_debug: bool,
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be opened.
    #[error("cannot open log file {} (`log.output`): {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// The filter for a severity, unless `RUST_LOG` overrides it.
pub fn filter_for(severity: Severity) -> EnvFilter {
    if let Ok(spec) = std::env::var("RUST_LOG")
        && !spec.trim().is_empty()
        && let Ok(f) = EnvFilter::try_new(spec)
    {
        return f;
    }
    let deps = if severity == Severity::Error {
        "error"
    } else {
        "warn"
    };
    EnvFilter::new(format!("{deps},teleport_discord={}", severity.as_str()))
}

/// Installs the global subscriber. `force_debug` is `start --debug`.
pub fn init(config: &LogConfig, force_debug: bool) -> Result<LogHandle, LogError> {
    let severity = if force_debug {
        Severity::Debug.min(config.severity)
    } else {
        config.severity
    };
    let (filter, handle) = reload::Layer::new(filter_for(severity));
    let fmt = tracing_subscriber::fmt::layer().with_target(true);
    let layer: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> =
        match (&config.output, config.format) {
            (LogOutput::Stderr, LogFormat::Text) => fmt.with_writer(std::io::stderr).boxed(),
            (LogOutput::Stderr, LogFormat::Json) => fmt.json().with_writer(std::io::stderr).boxed(),
            (LogOutput::Stdout, LogFormat::Text) => fmt.with_writer(std::io::stdout).boxed(),
            (LogOutput::Stdout, LogFormat::Json) => fmt.json().with_writer(std::io::stdout).boxed(),
            (LogOutput::File(path), format) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| LogError::File {
                        path: path.clone(),
                        source,
                    })?;
                let fmt = fmt.with_ansi(false).with_writer(Mutex::new(file));
                match format {
                    LogFormat::Text => fmt.boxed(),
                    LogFormat::Json => fmt.json().boxed(),
                }
            }
        };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .map_err(|_| LogError::AlreadySet)?;
    Ok(LogHandle {
        reload: Some(handle),
        forced_debug: force_debug,
    })
}

impl LogHandle {
    /// A handle that changes nothing (tests, or when logging is set up elsewhere).
    pub fn noop() -> Self {
        Self {
            reload: None,
            forced_debug: false,
        }
    }

    /// Applies a new severity (keeps `--debug` in force).
    pub fn set_severity(&self, severity: Severity) {
        let severity = if self.forced_debug {
            Severity::Debug.min(severity)
        } else {
            severity
        };
        if let Some(h) = &self.reload
            && let Err(e) = h.reload(filter_for(severity))
        {
            tracing::warn!(error = %e, "could not change the log severity");
        }
    }
}
