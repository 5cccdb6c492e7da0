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
            describe();
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

/// The HELP line of every family the service exports (the exporter writes TYPE).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("http_requests_total", "Requests answered, by method, route template and status.");
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "From a request's arrival to its reply's last byte (a streamed reply's too), by method, route and status."
    );
    describe_counter!("clientele_rate_limited_total", "Requests refused by a rate limit, by limit.");
    describe_counter!("clientele_requests_timed_out_total", "Requests answered 503 at their deadline.");
    describe_counter!("clientele_connections_closed_total", "Connections the server closed, by reason.");
    describe_counter!(
        "clientele_reads_moved_to_blocking_pool_total",
        "SQLite reads that found every inline reader busy and ran on the blocking pool."
    );
    describe_counter!(
        "clientele_search_index_pages_moved_total",
        "PostgreSQL: pages of new search terms moved from the index's pending list in the background."
    );
    describe_histogram!("clientele_write_batch_size", "Writes committed together by the SQLite group writer.");
    describe_histogram!("clientele_commit_seconds", Unit::Seconds, "Time of one SQLite group commit (its fsync).");
    describe_counter!("clientele_webhook_attempts_total", "Webhook delivery attempts, by outcome.");
    describe_histogram!("clientele_webhook_attempt_seconds", Unit::Seconds, "Time of one webhook attempt.");
    describe_counter!(
        "clientele_notification_attempts_total",
        "Notification (SMS, email) attempts, by channel and outcome."
    );
    describe_gauge!("clientele_webhook_deliveries_pending", "Webhook deliveries waiting to be sent or retried.");
    describe_gauge!("clientele_notifications_pending", "Notifications waiting to be sent or retried.");
    describe_gauge!("clientele_db_connections", "Database connections of this node, by pool and state (in_use, idle).");
    describe_gauge!(
        "clientele_db_connections_waiting",
        "PostgreSQL: requests of this node waiting for a database connection."
    );
    describe_gauge!("clientele_db_connections_max", "Database connections a pool may open, by pool.");
    describe_gauge!("clientele_db_writes_waiting", "Writes queued for the SQLite group writer, not yet in a batch.");
    describe_gauge!("clientele_build_info", "1, labelled with the version, the commit and the database backend.");
    process_collector().describe();
}

/// The process's CPU, memory and file metrics (`process_*`), read at each scrape.
pub fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The commit this binary was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("CLIENTELE_COMMIT");

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
