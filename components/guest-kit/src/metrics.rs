//! Prometheus metrics kept in the app's `default` key-value store, through `wasi:keyvalue`'s
//! atomic `increment`: an instance serves a bounded number of requests and then goes, and
//! several serve at once, so a counter has to live in the host, and an increment is exact
//! however many instances add to it. Only interfaces real Spin provides are used; on SpinKube
//! the store is per pod (see deploy/spinkube), as Prometheus expects each pod to report its own.
//!
//! A request's samples cost no store call on its path: they wait in the instance's memory,
//! summed by key, and [`flush_after_response`] adds them to the store in a task that runs after
//! the response, which the host (Spin's, and spinyard) lets finish before it drops the instance.
//! Requests that end in the same instance before the flush runs share one increment per key, so
//! under load a request costs a fraction of one store call. The flush waits as long as the
//! instance has lived, between 1 and 100 ms: a young instance (the only kind with
//! `--max-instance-reuse-count 1`) does not linger for it, and an older, busy one gathers 100 ms
//! of requests per flush. A scrape sees a sample once its flush has run. Samples are lost only with
//! the instance itself (a trap in a concurrent request) or when the store cannot be reached.
//!
//! Keys: `metrics|<service>|<family>|<label values…>|<cell>`, where the cell is `n` for a
//! counter, `g` for a stored gauge, `b<i>` for a histogram bucket (not cumulative) and `s` for
//! a histogram's sum in microseconds. Values are read back with `increment(key, 0)`: Spin's SQLite store keeps
//! counters as little-endian bytes and its Redis store as decimal text, and only `increment`
//! reads both. Recording never fails a request: a store that cannot be reached loses the
//! sample and `/metrics` answers 503.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode, header};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};
use spin_sdk::http::FullBody;

use crate::{ApiError, ApiResult, Response};

/// The key-value store label; Spin defines `default` for every app.
pub const STORE: &str = "default";

const KEY_PREFIX: &str = "metrics";
const SEPARATOR: char = '|';

/// Bucket bounds in seconds: the Python client's defaults, which the seeds' histograms use.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A counter family: its name (ending in `_total`), help text and label names.
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// A histogram family over [`BUCKETS`].
pub struct Histogram {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// A gauge family: its values are computed when scraped ([`GaugeValue`]), or kept in the
/// store and moved up and down ([`Metrics::adjust`]).
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// One gauge sample, measured at scrape time.
pub struct GaugeValue {
    pub gauge: &'static Gauge,
    pub labels: Vec<String>,
    pub value: f64,
}

/// A service's request counter and duration histogram, recorded together: every request adds
/// to one bucket cell keyed by method, route and status, and both families are derived from
/// those cells, so a request costs two increments (bucket and sum), not three.
pub struct HttpMetrics {
    /// Labelled `method`, [`Self::route_label`], `status`.
    pub requests: &'static str,
    pub requests_help: &'static str,
    /// Labelled `method`, [`Self::route_label`] (and `status` if [`Self::duration_by_status`]).
    pub duration: &'static str,
    pub duration_help: &'static str,
    /// What the seed calls the route: `endpoint` (seed 000) or `path`.
    pub route_label: &'static str,
    /// Whether the histogram is labelled by status too (prometheus-flask-exporter's default).
    pub duration_by_status: bool,
}

/// The request families of seed 001's backend (`http_requests_total`, by `path`), also used
/// where a seed names none.
pub const HTTP_REQUESTS: HttpMetrics = HttpMetrics {
    requests: "http_requests_total",
    requests_help: "Total HTTP requests",
    duration: "http_request_duration_seconds",
    duration_help: "HTTP request latency in seconds",
    route_label: "path",
    duration_by_status: false,
};

/// prometheus-flask-exporter's request families (seeds 002 and 003).
pub const FLASK_EXPORTER: HttpMetrics = HttpMetrics {
    requests: "flask_http_request_total",
    requests_help: "Total number of HTTP requests by method and status",
    duration: "flask_http_request_duration_seconds",
    duration_help: "Flask HTTP request duration in seconds",
    route_label: "path",
    duration_by_status: true,
};

/// One family's stored series: label values → cell (`n`, `b<i>`, `s`, `g`) → value.
type Series = BTreeMap<Vec<String>, BTreeMap<String, i64>>;

/// What the HTTP cells are filed under.
const HTTP_FAMILY: &str = "http";

/// The bounds of how long a flush waits for more requests of its instance to end and join it.
const FLUSH_DELAY: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_millis(100);

thread_local! {
    /// Deltas recorded in this instance and not yet added to the store, by key.
    static PENDING: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
    /// Keys this instance has added to, so that a series whose deltas cancel out (a gauge moved
    /// up and down within one flush) still appears, once.
    static WRITTEN: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    /// Whether a flush is scheduled.
    static FLUSH_SCHEDULED: Cell<bool> = const { Cell::new(false) };
    /// About when the instance started: its first flush.
    static STARTED: Instant = Instant::now();
}

/// Adds the samples recorded so far to the store after the current response, unless a flush
/// is already scheduled (which will take them). Call it as a request ends.
pub fn flush_after_response() {
    if PENDING.with_borrow(HashMap::is_empty) || FLUSH_SCHEDULED.replace(true) {
        return;
    }
    // A task of the current request's: it runs on once the response is sent.
    let delay = STARTED
        .with(Instant::elapsed)
        .clamp(*FLUSH_DELAY.start(), *FLUSH_DELAY.end());
    spin_sdk::wasip3::spawn(async move {
        spin_sdk::time::sleep(delay).await;
        FLUSH_SCHEDULED.set(false);
        if let Ok(bucket) = store::open(STORE) {
            flush(&bucket);
        }
    });
}

/// Adds every pending delta to the store (best effort, see the module docs).
fn flush(bucket: &store::Bucket) {
    let pending = PENDING.take();
    WRITTEN.with_borrow_mut(|written| {
        for (key, delta) in pending {
            if delta != 0 || !written.contains(&key) {
                let _ = atomics::increment(bucket, &key, delta);
                written.insert(key);
            }
        }
    });
}

/// A service's metrics.
pub struct Metrics {
    service: &'static str,
}

impl Metrics {
    pub fn new(service: &'static str) -> Self {
        Self { service }
    }

    fn key(&self, family: &str, labels: &[&str], cell: &str) -> String {
        let mut key = String::with_capacity(96);
        for part in [KEY_PREFIX, self.service, family] {
            key.push_str(part);
            key.push(SEPARATOR);
        }
        for value in labels {
            // The separator cannot appear inside a value; no label here needs it.
            key.extend(value.chars().map(|c| if c == SEPARATOR { '_' } else { c }));
            key.push(SEPARATOR);
        }
        key.push_str(cell);
        key
    }

    fn add(&self, key: String, delta: i64) {
        PENDING.with_borrow_mut(|pending| *pending.entry(key).or_default() += delta);
    }

    /// Adds `by` to the counter's series for `labels` (in the family's label order).
    pub fn count(&self, counter: &Counter, labels: &[&str], by: u64) {
        self.add(self.key(counter.name, labels, "n"), by as i64);
    }

    /// Moves the stored gauge's series for `labels` by `delta`.
    pub fn adjust(&self, gauge: &Gauge, labels: &[&str], delta: i64) {
        self.add(self.key(gauge.name, labels, "g"), delta);
    }

    /// Records `count` observations that took `seconds` in all (each about `seconds / count`).
    pub fn observe(&self, histogram: &Histogram, labels: &[&str], seconds: f64, count: u64) {
        self.observe_cells(histogram.name, labels, seconds, count);
    }

    /// Records one request for the service's [`HttpMetrics`].
    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.observe_cells(HTTP_FAMILY, &[method, route, &status], seconds, 1);
    }

    fn observe_cells(&self, family: &str, labels: &[&str], seconds: f64, count: u64) {
        if count == 0 {
            return;
        }
        let each = seconds / count as f64;
        let bucket = BUCKETS
            .iter()
            .position(|bound| each <= *bound)
            .unwrap_or(BUCKETS.len());
        self.add(
            self.key(family, labels, &format!("b{bucket}")),
            count as i64,
        );
        self.add(
            self.key(family, labels, "s"),
            (seconds * 1e6).round() as i64,
        );
    }

    /// Every series of this service, by family, this instance's pending samples included.
    fn read(&self) -> ApiResult<BTreeMap<String, Series>> {
        let unavailable = |e: store::Error| ApiError::unavailable(format!("metrics store: {e:?}"));
        let bucket = store::open(STORE).map_err(unavailable)?;
        flush(&bucket);
        let keys = bucket.list_keys(None).map_err(unavailable)?.keys;
        let prefix = format!("{KEY_PREFIX}{SEPARATOR}{}{SEPARATOR}", self.service);
        let mut families: BTreeMap<String, Series> = BTreeMap::new();
        for key in keys {
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let mut parts: Vec<String> = rest.split(SEPARATOR).map(str::to_owned).collect();
            if parts.len() < 2 {
                continue;
            }
            let cell = parts.pop().expect("two parts or more");
            let family = parts.remove(0);
            let value = atomics::increment(&bucket, &key, 0).map_err(unavailable)?;
            families
                .entry(family)
                .or_default()
                .entry(parts)
                .or_default()
                .insert(cell, value);
        }
        Ok(families)
    }

    /// The Prometheus text exposition of every family, with `gauges` measured by the caller.
    pub fn render(
        &self,
        http: &HttpMetrics,
        counters: &[&Counter],
        histograms: &[&Histogram],
        stored_gauges: &[&'static Gauge],
        mut gauges: Vec<GaugeValue>,
    ) -> ApiResult<Response> {
        let stored = self.read()?;
        let empty = BTreeMap::new();
        let cells = |family: &str| stored.get(family).unwrap_or(&empty);
        let mut families = Vec::new();

        // HTTP: the counter sums each series' buckets; the histogram merges statuses unless
        // it is labelled by them.
        let http_cells = cells(HTTP_FAMILY);
        let mut requests = BTreeMap::new();
        let mut durations = Series::new();
        for (labels, series) in http_cells {
            let count: i64 = series
                .iter()
                .filter(|(cell, _)| cell.starts_with('b'))
                .map(|(_, v)| v)
                .sum();
            *requests.entry(labels.clone()).or_insert(0) += count;
            let mut key = labels.clone();
            if !http.duration_by_status {
                key.truncate(2);
            }
            let merged = durations.entry(key).or_default();
            for (cell, value) in series {
                *merged.entry(cell.clone()).or_insert(0) += value;
            }
        }
        let route = http.route_label;
        families.push(counter_family(
            http.requests,
            http.requests_help,
            &["method", route, "status"],
            &requests,
        ));
        let duration_labels: &[&str] = if http.duration_by_status {
            &["method", route, "status"]
        } else {
            &["method", route]
        };
        families.push(histogram_family(
            http.duration,
            http.duration_help,
            duration_labels,
            &durations,
        ));

        for counter in counters {
            let values = cells(counter.name)
                .iter()
                .map(|(labels, series)| (labels.clone(), series.get("n").copied().unwrap_or(0)))
                .collect();
            families.push(counter_family(
                counter.name,
                counter.help,
                counter.labels,
                &values,
            ));
        }
        for histogram in histograms {
            families.push(histogram_family(
                histogram.name,
                histogram.help,
                histogram.labels,
                cells(histogram.name),
            ));
        }
        for gauge in stored_gauges {
            gauges.extend(cells(gauge.name).iter().map(|(labels, series)| GaugeValue {
                gauge,
                labels: labels.clone(),
                value: series.get("g").copied().unwrap_or(0) as f64,
            }));
        }
        let mut by_gauge: BTreeMap<&str, (&Gauge, Vec<proto::Metric>)> = BTreeMap::new();
        for sample in gauges {
            let mut metric = metric(sample.gauge.labels, &sample.labels);
            let mut value = proto::Gauge::default();
            value.set_value(sample.value);
            metric.set_gauge(value);
            by_gauge
                .entry(sample.gauge.name)
                .or_insert((sample.gauge, Vec::new()))
                .1
                .push(metric);
        }
        for (gauge, metrics) in by_gauge.into_values() {
            families.push(family(gauge.name, gauge.help, MetricType::GAUGE, metrics));
        }

        // A family without samples is left out, as the encoder requires.
        families.retain(|family| !family.get_metric().is_empty());
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut text)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("metrics encoding: {e}"),
                )
            })?;
        let mut response = Response::new(FullBody::new(text.into()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus::TEXT_FORMAT),
        );
        *response.status_mut() = StatusCode::OK;
        Ok(response)
    }
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn metric(names: &[&str], values: &[String]) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(
        names
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value(value.clone());
                pair
            })
            .collect(),
    );
    metric
}

fn counter_family(
    name: &str,
    help: &str,
    labels: &[&str],
    values: &BTreeMap<Vec<String>, i64>,
) -> MetricFamily {
    let metrics = values
        .iter()
        .map(|(label_values, value)| {
            let mut metric = metric(labels, label_values);
            let mut counter = proto::Counter::default();
            counter.set_value(*value as f64);
            metric.set_counter(counter);
            metric
        })
        .collect();
    family(name, help, MetricType::COUNTER, metrics)
}

fn histogram_family(name: &str, help: &str, labels: &[&str], series: &Series) -> MetricFamily {
    let metrics = series
        .iter()
        .map(|(label_values, cells)| {
            let mut metric = metric(labels, label_values);
            metric.set_histogram(histogram(cells));
            metric
        })
        .collect();
    family(name, help, MetricType::HISTOGRAM, metrics)
}

/// Cumulative buckets from the stored per-bucket counts; `+Inf` is the total.
fn histogram(cells: &BTreeMap<String, i64>) -> proto::Histogram {
    let in_bucket = |i: usize| cells.get(&format!("b{i}")).copied().unwrap_or(0).max(0) as u64;
    let mut cumulative = 0;
    let buckets = BUCKETS
        .iter()
        .enumerate()
        .map(|(i, bound)| {
            cumulative += in_bucket(i);
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(*bound);
            bucket.set_cumulative_count(cumulative);
            bucket
        })
        .collect();
    let mut histogram = proto::Histogram::default();
    histogram.set_bucket(buckets);
    histogram.set_sample_count(cumulative + in_bucket(BUCKETS.len()));
    histogram.set_sample_sum(cells.get("s").copied().unwrap_or(0) as f64 / 1e6);
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_count_includes_the_overflow() {
        let cells = BTreeMap::from([
            ("b0".to_owned(), 2),
            ("b3".to_owned(), 1),
            ("b14".to_owned(), 4),
            ("s".to_owned(), 61_250_000),
        ]);
        let histogram = histogram(&cells);
        let counts: Vec<u64> = histogram
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(counts[..4], [2, 2, 2, 3]);
        assert_eq!(*counts.last().unwrap(), 3);
        assert_eq!(histogram.get_sample_count(), 7);
        assert_eq!(histogram.get_sample_sum(), 61.25);
    }

    #[test]
    fn the_text_format_names_counters_as_the_seeds_do() {
        let values = BTreeMap::from([(
            vec!["GET".to_owned(), "/products".to_owned(), "200".to_owned()],
            5,
        )]);
        let family = counter_family(
            "http_requests_total",
            "Total HTTP requests",
            &["method", "path", "status"],
            &values,
        );
        let mut text = Vec::new();
        TextEncoder::new().encode(&[family], &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("# TYPE http_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",path="/products",status="200"} 5"#),
            "{text}"
        );
    }
}
