//! Prometheus metrics: request counts and durations by route pattern (never the raw path,
//! which would give one series per id), database pool use, and table sizes.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::AppState;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Tables whose row counts are exported.
const TABLES: [&str; 7] = [
    "users",
    "usage_tracking",
    "datasets",
    "analyses",
    "reports",
    "access_tokens",
    "attempt_limits",
];
/// Counting rows scans tables, so the counts are refreshed at most this often.
const TABLE_ROWS_TTL: Duration = Duration::from_secs(60);
/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Row counts per table, and when they were taken.
type TableRows = Option<(Instant, Vec<(&'static str, i64)>)>;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: Mutex<BTreeMap<(String, String), Histogram>>,
    table_rows: tokio::sync::Mutex<TableRows>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        drop(requests);

        let secs = elapsed.as_secs_f64();
        let mut durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        let h = durations
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The text exposition format.
    pub async fn render(&self, db: &DatabaseConnection) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        render_pool(&mut out, db);
        self.render_table_rows(&mut out, db).await;
        out
    }

    fn render_requests(&self, out: &mut String) {
        out.push_str("# HELP iops_http_requests_total HTTP requests answered, by route pattern.\n");
        out.push_str("# TYPE iops_http_requests_total counter\n");
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "iops_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        drop(requests);

        out.push_str(
            "# HELP iops_http_request_duration_seconds Time to answer, by route pattern.\n",
        );
        out.push_str("# TYPE iops_http_request_duration_seconds histogram\n");
        let durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route), h) in durations.iter() {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "iops_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "iops_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "iops_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "iops_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }

    async fn render_table_rows(&self, out: &mut String, db: &DatabaseConnection) {
        let mut cache = self.table_rows.lock().await;
        let stale = cache
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= TABLE_ROWS_TTL);
        if stale {
            // A failed count leaves the previous values (or none) rather than failing
            // the scrape: the other metrics are still worth having.
            if let Some(rows) = count_tables(db).await {
                *cache = Some((Instant::now(), rows));
            }
        }
        out.push_str("# HELP iops_table_rows Rows per table (refreshed at most once a minute).\n");
        out.push_str("# TYPE iops_table_rows gauge\n");
        if let Some((_, rows)) = cache.as_ref() {
            for (table, n) in rows {
                let _ = writeln!(out, "iops_table_rows{{table=\"{table}\"}} {n}");
            }
        }
    }
}

fn render_pool(out: &mut String, db: &DatabaseConnection) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => return,
    };
    let idle = idle as u64;
    let in_use = u64::from(size).saturating_sub(idle);
    out.push_str("# HELP iops_db_pool_connections Database pool connections by state.\n");
    out.push_str("# TYPE iops_db_pool_connections gauge\n");
    let _ = writeln!(out, "iops_db_pool_connections{{state=\"idle\"}} {idle}");
    let _ = writeln!(out, "iops_db_pool_connections{{state=\"in_use\"}} {in_use}");
}

async fn count_tables(db: &DatabaseConnection) -> Option<Vec<(&'static str, i64)>> {
    let backend = db.get_database_backend();
    let mut rows = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let stmt = Statement::from_string(backend, format!("SELECT COUNT(*) FROM {table}"));
        match db.query_one_raw(stmt).await {
            Ok(Some(row)) => rows.push((table, row.try_get_by_index::<i64>(0).ok()?)),
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(table, error = %e, "could not count table rows for metrics");
                return None;
            }
        }
    }
    Some(rows)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().to_string();
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
            "GET",
            "/api/v1/datasets/{id}",
            200,
            Duration::from_millis(3),
        );
        m.observe(
            "GET",
            "/api/v1/datasets/{id}",
            200,
            Duration::from_millis(300),
        );
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains(
            "iops_http_requests_total{method=\"GET\",route=\"/api/v1/datasets/{id}\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "iops_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/datasets/{id}\",le=\"0.005\"} 1"
        ));
        assert!(out.contains(
            "iops_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/datasets/{id}\",le=\"+Inf\"} 2"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
