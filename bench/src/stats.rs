//! Statistics of repeated runs: the median, and for throughput on a shared machine the
//! best run (interference from other tenants only ever adds time).

/// Best and median of repeated runs, in ns per item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The fastest run: the figure with the least interference in it.
    pub best: f64,
    /// The median run.
    pub median: f64,
}

/// Best and median of `samples`, or `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let best = samples.iter().copied().reduce(f64::min)?;
    Some(Summary {
        best,
        median: median(samples)?,
    })
}

/// The median of `samples` (the mean of the middle two for an even count), or `None` when
/// there are none. NaNs are not expected (every sample is a measured duration).
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Million operations per second for a cost of `ns` nanoseconds per operation.
pub fn mops(ns: f64) -> f64 {
    1e3 / ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
