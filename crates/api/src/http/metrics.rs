//! Prometheus metrics: request counts and durations by route pattern (never the raw path,
//! which would give one series per id), database pool use, and table sizes.
//!
//! Series are kept and rendered by `metrics-exporter-prometheus`, whose recorder belongs
//! to [`Metrics`] (in `AppState`) rather than being installed globally: a test process
//! runs many apps, and each must count only its own requests.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::AppState;

const REQUESTS: &str = "iops_http_requests_total";
const DURATIONS: &str = "iops_http_request_duration_seconds";
const POOL: &str = "iops_db_pool_connections";
const TABLE_ROWS: &str = "iops_table_rows";
const EVENTS_DROPPED: &str = "iops_analytics_events_dropped_total";
const VIEWS_COUNTED: &str = "iops_report_views_counted_total";
const VIEW_STATEMENTS: &str = "iops_report_view_statements_total";

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Counting rows scans tables, so the counts are refreshed at most this often.
const TABLE_ROWS_TTL: Duration = Duration::from_secs(60);
/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";
/// Durations wait in the recorder until folded into their histogram; with no exporter
/// task to do that, it is done every this many requests (and at each scrape), so memory
/// stays bounded when nobody scrapes.
const UPKEEP_EVERY: u64 = 1024;

/// The app's metrics: what the middleware observes and `/metrics` renders.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The series of each (method, status) and route pattern, registered on first use.
    /// Registering hashes the name and labels and allocates the label strings; this runs
    /// on every request, so each series is looked up in the recorder once and its handle
    /// kept. Bounded: route patterns are the app's own, methods outside the standard ones
    /// share one label (see [`method_label`]), statuses are three digits.
    series: RwLock<SeriesByKey>,
    observed: AtomicU64,
    /// When the table row gauges were last set.
    table_rows_at: Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATIONS.to_owned()), &BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_counter!(REQUESTS, "HTTP requests answered, by route pattern.");
            describe_histogram!(DURATIONS, "Time to answer, by route pattern.");
            describe_gauge!(POOL, "Database pool connections by state.");
            describe_gauge!(
                TABLE_ROWS,
                "Rows per table (refreshed at most once a minute)."
            );
            describe_counter!(
                EVENTS_DROPPED,
                "Product events dropped since start: the ingest buffer was full, or the rows could not be written."
            );
            describe_counter!(
                VIEWS_COUNTED,
                "Public report views counted by this process's counting statements."
            );
            describe_counter!(
                VIEW_STATEMENTS,
                "Statements that counted those views: views arriving together share one."
            );
        });
        Self {
            recorder,
            handle,
            series: RwLock::new(HashMap::new()),
            observed: AtomicU64::new(0),
            table_rows_at: Mutex::new(None),
        }
    }

    pub fn observe(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let known = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(method, status))
            .and_then(|routes| routes.get(route))
            .cloned();
        let series = known.unwrap_or_else(|| self.register(method, route, status));
        series.requests.increment(1);
        series.durations.record(elapsed);
        if self.observed.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// The series of a (method, route, status) seen for the first time.
    fn register(&self, method: &'static str, route: &str, status: u16) -> Series {
        let series = metrics::with_local_recorder(&self.recorder, || Series {
            requests: counter!(
                REQUESTS,
                "method" => method,
                "route" => route.to_owned(),
                "status" => status.to_string(),
            ),
            durations: histogram!(DURATIONS, "method" => method, "route" => route.to_owned()),
        });
        self.series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry((method, status))
            .or_default()
            .insert(route.into(), series.clone());
        series
    }

    /// Whether the table row counts are old enough (or missing) to be taken again.
    pub fn table_rows_stale(&self) -> bool {
        let at = self.table_rows_at.lock().unwrap_or_else(|e| e.into_inner());
        at.is_none_or(|at| at.elapsed() >= TABLE_ROWS_TTL)
    }

    /// The text exposition format. `pool` is the main pool's `(open, idle)` connections;
    /// `table_rows` are fresh counts ([`domain::Stats::table_counts`]), or `None` to show
    /// the previous ones: a failed count should not fail the scrape, the other metrics are
    /// still worth having. `events_dropped` is [`domain::Events::dropped`], `views`
    /// [`domain::Reports::view_counting`].
    pub fn render(
        &self,
        pool: (u32, u32),
        table_rows: Option<&[domain::TableCount]>,
        events_dropped: u64,
        views: domain::ViewCounting,
    ) -> String {
        let (open, idle) = pool;
        metrics::with_local_recorder(&self.recorder, || {
            counter!(EVENTS_DROPPED).absolute(events_dropped);
            counter!(VIEWS_COUNTED).absolute(views.views);
            counter!(VIEW_STATEMENTS).absolute(views.statements);
            gauge!(POOL, "state" => "idle").set(f64::from(idle));
            gauge!(POOL, "state" => "in_use").set(f64::from(open.saturating_sub(idle)));
            for count in table_rows.unwrap_or_default() {
                gauge!(TABLE_ROWS, "table" => count.table).set(count.rows as f64);
            }
        });
        if table_rows.is_some() {
            *self.table_rows_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        self.handle.render()
    }
}

/// Series by (method label, status), then by route pattern (looked up as `&str`).
type SeriesByKey = HashMap<(&'static str, u16), HashMap<Box<str>, Series>>;

/// The handles of one request series.
#[derive(Clone)]
struct Series {
    requests: Counter,
    durations: Histogram,
}

/// The method label: the standard methods by name, any other (a client may send any
/// token) as `OTHER`, so strangers cannot add series at will.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("OTHER", |m| m.as_str())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().clone();
    let started = Instant::now();
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            if let Some(metrics) = metrics {
                let status = err.as_response_error().status_code().as_u16();
                metrics.observe(&method, UNMATCHED, status, started.elapsed());
            }
            return Err(err);
        }
    };
    if let Some(metrics) = metrics {
        let route = res.request().match_pattern();
        metrics.observe(
            &method,
            route.as_deref().unwrap_or(UNMATCHED),
            res.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_pattern_with_a_histogram() {
        let m = Metrics::new();
        m.observe(
            &Method::GET,
            "/api/v1/datasets/{id}",
            200,
            Duration::from_millis(3),
        );
        m.observe(
            &Method::GET,
            "/api/v1/datasets/{id}",
            200,
            Duration::from_millis(300),
        );
        m.observe(
            &Method::GET,
            "/api/v1/datasets/{id}",
            404,
            Duration::from_millis(1),
        );
        let out = m.handle.render();
        for needle in [
            "# HELP iops_http_requests_total HTTP requests answered, by route pattern.",
            "# TYPE iops_http_requests_total counter",
            "iops_http_requests_total{method=\"GET\",route=\"/api/v1/datasets/{id}\",status=\"200\"} 2",
            "# TYPE iops_http_request_duration_seconds histogram",
            "iops_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/datasets/{id}\",le=\"0.005\"} 2",
            "iops_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/datasets/{id}\",le=\"+Inf\"} 3",
            "iops_http_requests_total{method=\"GET\",route=\"/api/v1/datasets/{id}\",status=\"404\"} 1",
            "iops_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/datasets/{id}\"} 3",
        ] {
            assert!(out.contains(needle), "missing {needle} in:\n{out}");
        }
    }

    #[test]
    fn each_app_counts_only_its_own_requests() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.observe(&Method::GET, "/a", 200, Duration::from_millis(1));
        assert!(a.handle.render().contains("route=\"/a\""));
        assert!(!b.handle.render().contains("route=\"/a\""));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let m = Metrics::new();
        for name in ["FOO", "BAR"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            m.observe(&method, UNMATCHED, 405, Duration::from_millis(1));
        }
        let out = m.handle.render();
        assert!(
            out.contains(
                "iops_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"405\"} 2"
            ),
            "{out}"
        );
        assert!(!out.contains("FOO") && !out.contains("BAR"), "{out}");
    }

    #[test]
    fn dropped_events_are_a_counter() {
        let m = Metrics::new();
        let out = m.render((1, 1), None, 7, domain::ViewCounting::default());
        assert!(
            out.contains("# TYPE iops_analytics_events_dropped_total counter"),
            "{out}"
        );
        assert!(
            out.contains("iops_analytics_events_dropped_total 7"),
            "{out}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.observe(&Method::GET, "a\"b\nc", 200, Duration::from_millis(1));
        let out = m.handle.render();
        assert!(out.contains(r#"route="a\"b\nc""#), "{out}");
    }
}
