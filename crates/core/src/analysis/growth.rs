//! How a figure grows over training: a power law `y = c · step^k` fitted by least squares on
//! log10(step) and log10(y), and the step at which it would reach a target. Used for the zoo's
//! BOS top-1/median |h| over checkpoints (is it on its way to a massive activation, ~100×–1000×?).
//! Depends on nothing else in the crate.

use serde::Serialize;

/// A fitted power law `y = 10^intercept · step^exponent` over `from..=to` (steps).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PowerLaw {
    /// k: the growth rate on log-log axes (y doubles when the step grows 2^(1/k)×).
    pub exponent: f64,
    /// log10 c.
    pub intercept: f64,
    /// First and last step of the points fitted.
    pub from: u64,
    pub to: u64,
    /// Points fitted.
    pub n: usize,
}

impl PowerLaw {
    /// Least squares on (log10 step, log10 y) over the points with step ≥ `min_step`, step > 0
    /// and a finite y > 0. `None` with fewer than 3 such points or all at one step.
    pub fn fit(points: &[(u64, f64)], min_step: u64) -> Option<Self> {
        let p: Vec<(u64, f64, f64)> = points
            .iter()
            .filter(|(s, y)| *s >= min_step && *s > 0 && y.is_finite() && *y > 0.0)
            .map(|&(s, y)| (s, (s as f64).log10(), y.log10()))
            .collect();
        if p.len() < 3 {
            return None;
        }
        let n = p.len() as f64;
        let mx = p.iter().map(|q| q.1).sum::<f64>() / n;
        let my = p.iter().map(|q| q.2).sum::<f64>() / n;
        let sxx: f64 = p.iter().map(|q| (q.1 - mx).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = p.iter().map(|q| (q.1 - mx) * (q.2 - my)).sum();
        let exponent = sxy / sxx;
        Some(Self {
            exponent,
            intercept: my - exponent * mx,
            from: p.iter().map(|q| q.0).min()?,
            to: p.iter().map(|q| q.0).max()?,
            n: p.len(),
        })
    }

    /// The fitted y at `step`.
    pub fn at(&self, step: f64) -> f64 {
        10f64.powf(self.intercept + self.exponent * step.log10())
    }

    /// The step at which the fitted y reaches `target`; `None` when it never grows (k ≤ 0).
    pub fn step_reaching(&self, target: f64) -> Option<f64> {
        (self.exponent > 0.0).then(|| 10f64.powf((target.log10() - self.intercept) / self.exponent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_power_law_and_its_crossings() {
        // y = 0.5 · step^0.3 at steps 100..=30000, plus points below min_step that would bend it.
        let mut pts: Vec<(u64, f64)> = [100u64, 300, 1000, 3000, 10000, 30000]
            .iter()
            .map(|&s| (s, 0.5 * (s as f64).powf(0.3)))
            .collect();
        pts.push((10, 1e6));
        pts.push((0, 3.0));
        let f = PowerLaw::fit(&pts, 100).unwrap();
        assert!((f.exponent - 0.3).abs() < 1e-12, "{f:?}");
        assert!((f.at(1000.0) - 0.5 * 1000f64.powf(0.3)).abs() < 1e-9);
        let s = f.step_reaching(100.0).unwrap();
        assert!((s / (200f64).powf(1.0 / 0.3) - 1.0).abs() < 1e-9, "{s}");
        assert_eq!((f.from, f.to, f.n), (100, 30000, 6));
    }

    #[test]
    fn refuses_too_few_points_and_never_reaches_when_shrinking() {
        assert!(PowerLaw::fit(&[(100, 1.0), (200, 2.0)], 0).is_none());
        assert!(PowerLaw::fit(&[(100, 1.0), (100, 2.0), (100, 3.0)], 0).is_none());
        let f = PowerLaw::fit(&[(100, 4.0), (1000, 2.0), (10000, 1.0)], 0).unwrap();
        assert!(f.exponent < 0.0 && f.step_reaching(100.0).is_none());
    }
}
