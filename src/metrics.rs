//! Metrics: the Prometheus registry every component registers into, the
//! build-info metric, cheap process metrics read from `/proc`, and the
//! exposition used by `GET /metrics`.
//!
//! Components define their own metric structs next to their code and register
//! them into the [`prometheus_client::registry::Registry`] built by
//! [`new_registry`] at start-up; after that the registry is shared read-only.
//! Label values never carry secrets or unbounded user input.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::version;

/// Content type of [`encode`]'s output: OpenMetrics text, which Prometheus
/// asks for in its `Accept` header.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`encode_prometheus_text`]'s output: the classic text
/// format, for clients that do not ask for OpenMetrics (curl, promtool).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry with build info and process metrics already in it.
pub fn new_registry() -> Registry {
    let mut registry = Registry::default();
    // A gauge fixed at 1 rather than an OpenMetrics `info` metric, so that
    // parsers of the classic text format (promtool among them) accept it.
    let build_info = Family::<[(&'static str, &'static str); 3], Gauge>::default();
    build_info
        .get_or_create(&[
            ("version", version::VERSION),
            ("commit", version::GIT_COMMIT),
            ("rustc", version::RUSTC),
        ])
        .set(1);
    registry.register(
        "teleport_discord_build_info",
        "Build information: version, git commit and compiler; always 1",
        build_info,
    );
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// Encodes the registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// Encodes the registry in the classic Prometheus text format (0.0.4).
pub fn encode_prometheus_text(registry: &Registry) -> Result<String, std::fmt::Error> {
    Ok(openmetrics_to_text(&encode(registry)?))
}

/// Rewrites OpenMetrics text into the classic format: a counter family is
/// named with its `_total` suffix in `# HELP`/`# TYPE` (as its samples are),
/// and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 256);
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// Standard `process_*` metrics, read from `/proc/self` at scrape time.
/// On systems without `/proc` it exports nothing.
#[derive(Debug, Clone, Copy)]
pub struct ProcessCollector;

/// A reading of the process metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on file descriptors.
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`), which Linux
/// fixes at 100 for user space on the architectures we build for.
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    /// Reads `/proc/self`. `None` when it is not available.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state); utime is field 14, stime 15, starttime 22.
        let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
        let cpu_seconds = (ticks(14)? + ticks(15)?) / USER_HZ;
        let kb = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse().ok())
            });
        let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let start_time_seconds = match (btime, ticks(22)) {
            (Some(b), Some(t)) => Some(b + t / USER_HZ),
            _ => None,
        };
        Some(Self {
            cpu_seconds,
            resident_bytes: kb("VmRSS:").unwrap_or(0) * 1024,
            virtual_bytes: kb("VmSize:").unwrap_or(0) * 1024,
            open_fds,
            max_fds,
            threads: kb("Threads:").unwrap_or(0),
            start_time_seconds,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(s) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauge = |name: &str, help: &str, v: f64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            s.resident_bytes as f64,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            s.virtual_bytes as f64,
        )?;
        gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            s.open_fds as f64,
        )?;
        if let Some(max) = s.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            )?;
        }
        gauge(
            "process_threads",
            "Number of OS threads in the process.",
            s.threads as f64,
        )?;
        if let Some(start) = s.start_time_seconds {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_plausible_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let s = ProcessStats::read().expect("readable /proc");
        assert!(s.resident_bytes > 1024 * 1024, "{s:?}");
        assert!(s.open_fds >= 3, "{s:?}");
        assert!(s.threads >= 1, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let start = s.start_time_seconds.expect("start time");
        assert!(
            start <= now + 2.0 && start > now - 86_400.0,
            "start {start} now {now}"
        );
    }

    #[test]
    fn classic_text_names_counters_with_total() {
        let om = "# HELP reqs Requests.\n# TYPE reqs counter\n# UNIT reqs requests\nreqs_total{a=\"b\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total{a=\"b\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.3"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }

    #[test]
    fn registry_exports_build_info_and_process_metrics() {
        let text = encode(&new_registry()).expect("encode");
        assert!(
            text.contains("teleport_discord_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains(&format!("version=\"{}\"", version::VERSION)));
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(text.contains("process_cpu_seconds_total "), "{text}");
            assert!(text.contains("process_resident_memory_bytes "), "{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
