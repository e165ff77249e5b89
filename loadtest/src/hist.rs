//! Latency histograms: `hdrhistogram` in microseconds (3 significant
//! digits, so every reported value is within 0.1 % of the recorded one).

use hdrhistogram::Histogram;

/// The percentiles every report prints, then `max`.
pub const REPORTED: &[(&str, f64)] =
    &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

/// Microsecond latencies.
#[derive(Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Latency(n={}, {})", self.len(), self.spread())
    }
}

impl Latency {
    pub fn new() -> Self {
        // Auto-resizing: any value fits, the range grows as needed.
        Self(Histogram::new(3).expect("3 significant digits is valid"))
    }

    pub fn record(&mut self, us: u64) {
        // `record` grows the range (auto-resize); `saturating_record` would
        // clamp to the current top instead.
        if self.0.record(us).is_err() {
            self.0.saturating_record(us);
        }
    }

    pub fn record_all(&mut self, us: &[u32]) {
        for &v in us {
            self.record(u64::from(v));
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("auto-resizing histograms always merge");
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at percentile `p` (0..=100), µs; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        (!self.is_empty()).then(|| self.0.value_at_quantile((p / 100.0).clamp(0.0, 1.0)))
    }

    pub fn max(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.0.max())
    }

    /// Percentile `p` in milliseconds.
    pub fn ms(&self, p: f64) -> Option<f64> {
        self.percentile(p).map(|us| us as f64 / 1000.0)
    }

    /// `p50 1.00 ms  p90 …  p99.9 …  max …` (`-` when empty).
    pub fn spread(&self) -> String {
        let mut parts: Vec<String> = REPORTED
            .iter()
            .map(|(name, p)| format!("{name} {}", ms(self.percentile(*p))))
            .collect();
        parts.push(format!("max {}", ms(self.max())));
        parts.join("  ")
    }

    /// `p50=1.00ms`, for SUMMARY lines.
    pub fn key(&self, p: f64) -> String {
        ms(self.percentile(p)).replace(' ', "")
    }

    pub fn key_max(&self) -> String {
        ms(self.max()).replace(' ', "")
    }
}

/// `12.34 ms` from microseconds; `-` when there is no value.
pub fn ms(us: Option<u64>) -> String {
    match us {
        Some(us) => format!("{:.2} ms", us as f64 / 1000.0),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within hdrhistogram's 3-significant-digit precision.
    fn close(got: Option<u64>, want: u64) -> bool {
        got.is_some_and(|g| g.abs_diff(want) as f64 <= want as f64 / 1000.0 + 1.0)
    }

    #[test]
    fn percentiles_of_1_to_100_000() {
        let mut h = Latency::new();
        for us in 1..=100_000 {
            h.record(us);
        }
        assert_eq!(h.len(), 100_000);
        assert!(close(h.percentile(50.0), 50_000));
        assert!(close(h.percentile(90.0), 90_000));
        assert!(close(h.percentile(99.0), 99_000));
        assert!(close(h.percentile(99.9), 99_900));
        assert!(close(h.max(), 100_000));
        assert!(close(h.percentile(0.0), 1));
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Latency::new();
        h.record_all(&[0, 5, 5, 7, 2000]);
        assert_eq!(h.percentile(50.0), Some(5));
        assert_eq!(h.percentile(80.0), Some(7));
        assert_eq!(h.max(), Some(2000));
        assert_eq!(h.key(50.0), "0.01ms");
        assert_eq!(h.key_max(), "2.00ms");
    }

    #[test]
    fn empty_and_merge_and_huge() {
        let mut a = Latency::new();
        assert_eq!(a.percentile(50.0), None);
        assert_eq!(a.spread(), "p50 -  p90 -  p99 -  p99.9 -  max -");
        assert_eq!(a.key(99.0), "-");
        let mut b = Latency::new();
        b.record(10);
        b.record(3_600_000_000); // an hour: the range grows
        a.merge(&b);
        a.record(20);
        assert_eq!(a.len(), 3);
        assert_eq!(a.percentile(50.0), Some(20));
        assert!(close(a.max(), 3_600_000_000));
        assert!(a.spread().starts_with("p50 0.02 ms  p90 "));
    }
}
