//! `/metrics` as the tests read it: one scrape of an admin listener, parsed
//! by a Prometheus parser (prometheus-parse), and queried by name and labels.
//!
//! One reader for every test, so that a sample is found the way Prometheus
//! would find it (labels matched by name and value, in any order), and not
//! by text patterns that would also match a longer metric name or a label
//! value that merely contains the one looked for.

use prometheus_parse::{Sample, Scrape, Value};

use super::get_bytes;

/// One scrape: the exposition text as served, and its samples.
pub struct Scraped {
    pub text: String,
    pub scrape: Scrape,
}

/// GETs `{admin}/metrics` (200, UTF-8, parsed).
pub async fn scrape(admin: &str) -> Scraped {
    let (status, body) = get_bytes(&format!("{admin}/metrics")).await;
    assert_eq!(status, 200, "GET {admin}/metrics");
    let text = String::from_utf8(body.to_vec()).expect("a UTF-8 exposition");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    Scraped { text, scrape }
}

/// Whether `sample` carries every one of `labels` (it may carry more).
pub fn labelled(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

impl Scraped {
    /// The samples of `name` carrying every one of `labels`. A histogram's
    /// `_sum` and `_count` are samples of their own names.
    pub fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.scrape
            .samples
            .iter()
            .filter(move |s| s.metric == name && labelled(s, labels))
    }

    /// The sum of the values of `name` with `labels`, `None` when no sample
    /// matches (for a series that must exist).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for sample in self.samples(name, labels) {
            let value = match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(_) | Value::Summary(_) => {
                    panic!("{name} is a histogram: ask for {name}_count or {name}_sum")
                }
            };
            *found.get_or_insert(0.0) += value;
        }
        found
    }

    /// Like [`Scraped::get`], with 0 for a series not (yet) written.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}
