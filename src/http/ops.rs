//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::services::Services;

pub struct OpsApi;

#[derive(Object)]
struct Health {
    status: String,
}

#[derive(ApiResponse)]
enum Readiness {
    /// The database answers and takes writes.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The database does not answer, or does not take writes (full disk, read-only).
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness: the process is up.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Readiness: the database is reachable and takes writes; answers within a second.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self, Data(svc): Data<&Services>) -> Readiness {
        match svc.db().ready().await {
            Ok(()) => Readiness::Ready(Json(Health { status: "ready".into() })),
            Err(err) => {
                tracing::warn!(error = %err, "readiness check failed");
                Readiness::NotReady(Json(Health { status: "database unavailable".into() }))
            }
        }
    }

    /// Prometheus metrics in the text exposition format.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(
        &self,
        Data(metrics): Data<&Arc<Metrics>>,
        Data(svc): Data<&Services>,
    ) -> PlainText<String> {
        let mut text = metrics.render();
        text.push_str(&format!(
            "# HELP latchkey_password_checks_rejected_total Password checks turned away (503) because the hasher's queue was full.\n\
             # TYPE latchkey_password_checks_rejected_total counter\n\
             latchkey_password_checks_rejected_total {}\n",
            svc.hasher().rejected()
        ));
        PlainText(text)
    }
}

/// Request counts by status class and a latency histogram; lock-free counters.
#[derive(Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS_MS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

const BUCKETS_MS: [u64; 8] = [1, 5, 10, 25, 50, 100, 250, 1000];

impl Metrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let ms = elapsed.as_millis() as u64;
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP latchkey_http_requests_total HTTP requests by status class.\n# TYPE latchkey_http_requests_total counter\n",
        );
        for (i, counter) in self.by_class.iter().enumerate() {
            out.push_str(&format!(
                "latchkey_http_requests_total{{class=\"{}xx\"}} {}\n",
                i + 1,
                counter.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP latchkey_http_request_duration_seconds Time to answer a request.\n# TYPE latchkey_http_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            out.push_str(&format!(
                "latchkey_http_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                *bound as f64 / 1000.0,
                self.buckets[i].load(Ordering::Relaxed)
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("latchkey_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "latchkey_http_request_duration_seconds_sum {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("latchkey_http_request_duration_seconds_count {count}\n"));
        out
    }
}
