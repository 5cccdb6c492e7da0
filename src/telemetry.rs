//! Logs (text or JSON, to stderr so CLI output on stdout stays machine-readable)
//! and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the log subscriber. Lines are formatted on the logging thread and
/// written by a thread of their own through a 64 KiB buffer, flushed whenever
/// no more lines are waiting: one `write` per burst instead of one per request
/// (a `GET` of a customer +11 to +56 % in five paired runs, stderr to a file).
/// A full queue makes the logger wait rather than drop lines. The returned guard
/// writes out what is left when dropped, so hold it until the process ends.
pub fn init_logs(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

/// How often the recorder folds recorded samples into its histograms.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide recorder (installed once; tests start many apps in one process).
///
/// The recorder keeps every histogram sample until something folds them into the
/// histograms' buckets: a scrape of `/metrics`, or its upkeep. Nothing ran the
/// upkeep, so a server nobody scraped grew by every request's latency sample
/// (15 MB per 750,000 requests); a thread of the recorder's own now runs it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), &buckets)
                .expect("buckets are non-empty")
                .install_recorder()
                .expect("the metrics recorder is installed once");
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread: samples are folded only when scraped");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_folds_its_samples_without_being_scraped() {
        let handle = metrics_handle();
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("Linux")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .collect()
        };
        let upkeep_runs = || threads().iter().any(|name| name.trim() == "metrics-upkeep");
        // A new thread names itself once it runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !upkeep_runs() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(upkeep_runs(), "threads: {:?}", threads());
        // Upkeep folds samples in; it loses none.
        metrics::histogram!("clientele_test_upkeep_seconds").record(0.5);
        handle.run_upkeep();
        assert!(handle.render().contains("clientele_test_upkeep_seconds_count 1"), "{}", handle.render());
    }
}
