//! Exact percentiles over every sample (samples are nanoseconds).

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

pub fn summarize(mut samples: Vec<u64>) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1] as f64 / 1000.0
    };
    Summary {
        count: samples.len(),
        mean_us: samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len() as f64 / 1000.0,
        p50_us: at(0.50),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: *samples.last().unwrap() as f64 / 1000.0,
    }
}

impl Summary {
    pub fn json(&self) -> Value {
        json!({ "count": self.count, "mean_us": round(self.mean_us), "p50_us": round(self.p50_us),
                "p99_us": round(self.p99_us), "p999_us": round(self.p999_us), "max_us": round(self.max_us) })
    }
}

pub fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_are_nearest_rank() {
        let s = super::summarize((1..=1000).map(|i| i * 1000).collect());
        assert_eq!(s.p50_us, 500.0);
        assert_eq!(s.p99_us, 990.0);
        assert_eq!(s.p999_us, 999.0);
        assert_eq!(s.max_us, 1000.0);
    }
}
