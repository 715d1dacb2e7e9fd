//! The density arithmetic of CLARIFY's rejection sampling on embedding distances (Mu et
//! al., ICML 2025): outlier removal, histograms over shared bins, the class ratios ρ, the
//! target density q and the acceptance probability.
//!
//! Histograms follow `numpy.histogram` with explicit edges: equal-width bins from
//! `numpy.linspace(min, max, n_bin + 1)`, each bin half-open except the last, which also
//! contains `max`. Values outside the edges are not counted. Interpolation follows
//! `numpy.interp`: linear between bin centres, clamped to the first and last value outside
//! them.

use serde::{Deserialize, Serialize};

/// The constant added to denominators of the density ratios, as in the official CLARIFY
/// code, so that empty bins give large but finite ratios.
pub const RATIO_EPSILON: f64 = 1e-6;

/// The reason a CLARIFY round ranks all candidates by disagreement instead of rejection
/// sampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClarifyFallback {
    /// The preference buffer has no left, right or can't-tell answer.
    NoReferenceAnswers,
    /// No clear (left or right) answer is left in the reference set after outlier
    /// removal, so ρ_clr is undefined.
    NoClearReference,
    /// No can't-tell answer is left in the reference set after outlier removal, so ρ_amb
    /// is undefined.
    NoAmbiguousReference,
}

impl ClarifyFallback {
    /// Returns a short description for logs.
    pub fn describe(self) -> &'static str {
        match self {
            ClarifyFallback::NoReferenceAnswers => {
                "the preference buffer has no left, right or cant_tell answer"
            }
            ClarifyFallback::NoClearReference => "the reference set has no left or right answer",
            ClarifyFallback::NoAmbiguousReference => "the reference set has no cant_tell answer",
        }
    }
}

/// Marks the values within `std_devs` population standard deviations of their mean:
/// entry i is true when |values[i] − mean| ≤ std_devs · std.
///
/// The boundary counts as inside, so a set of equal values (std = 0) is kept whole.
pub fn within_std_devs(values: &[f64], std_devs: f64) -> Vec<bool> {
    if values.is_empty() {
        return Vec::new();
    }

    let count = values.len() as f64;
    let mean = values.iter().sum::<f64>() / count;
    let variance = values
        .iter()
        .map(|value| (value - mean).powi(2))
        .sum::<f64>()
        / count;
    let limit = std_devs * variance.sqrt();

    values
        .iter()
        .map(|value| (value - mean).abs() <= limit)
        .collect()
}

/// Scales `weights` to sum 1, or returns `None` when their sum is not a positive finite
/// number (all zero, for instance).
pub fn normalize(weights: &[f64]) -> Option<Vec<f64>> {
    let total: f64 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    Some(weights.iter().map(|weight| weight / total).collect())
}

/// Linear interpolation of the points (`xs[i]`, `ys[i]`) at `x`, like `numpy.interp`:
/// `ys[0]` below `xs[0]`, the last y above the last x.
///
/// # Panics
///
/// Panics when `xs` is empty or the slices differ in length. `xs` must be increasing.
pub fn interpolate(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    assert!(!xs.is_empty(), "interpolate needs at least one point");
    assert_eq!(xs.len(), ys.len(), "interpolate needs one y per x");

    let last = xs.len() - 1;
    if x <= xs[0] {
        return ys[0];
    }
    if x >= xs[last] {
        return ys[last];
    }
    // xs[upper - 1] < x < xs[upper], so the segment between them contains x.
    let upper = xs.partition_point(|&point| point <= x);
    let lower = upper - 1;
    let fraction = (x - xs[lower]) / (xs[upper] - xs[lower]);
    ys[lower] + fraction * (ys[upper] - ys[lower])
}

/// Returns the acceptance probability clip(q / (g + 1e-6), 0, 1) from the target and
/// candidate densities at one distance.
pub fn acceptance_probability(target: f64, candidate: f64) -> f64 {
    (target / (candidate + RATIO_EPSILON)).clamp(0.0, 1.0)
}

/// Equal-width bins over a range of distances.
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceBins {
    edges: Vec<f64>,
    centres: Vec<f64>,
}

impl DistanceBins {
    /// Creates `bin_count` bins over [min, max] of `values`, or returns `None` when
    /// `values` is empty or `bin_count` is 0. When all values are equal the range is
    /// [value − 0.5, value + 0.5], as in `numpy.histogram`.
    pub fn spanning(values: &[f64], bin_count: usize) -> Option<Self> {
        if bin_count == 0 {
            return None;
        }
        let mut min = *values.first()?;
        let mut max = min;
        for &value in values {
            min = min.min(value);
            max = max.max(value);
        }
        if min == max {
            min -= 0.5;
            max += 0.5;
        }

        // numpy.linspace: start + i · step, with the last edge set to the stop exactly.
        let step = (max - min) / bin_count as f64;
        let mut edges: Vec<f64> = (0..=bin_count).map(|i| min + i as f64 * step).collect();
        edges[bin_count] = max;
        let centres = edges
            .windows(2)
            .map(|edge| (edge[0] + edge[1]) / 2.0)
            .collect();
        Some(Self { edges, centres })
    }

    /// Returns the bin count.
    pub fn bin_count(&self) -> usize {
        self.centres.len()
    }

    /// Returns the bin_count + 1 edges in increasing order.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Returns the bin centres, the midpoints of neighbouring edges.
    pub fn centres(&self) -> &[f64] {
        &self.centres
    }

    /// Returns the bin that contains `value`, or `None` outside the edges.
    pub fn bin_of(&self, value: f64) -> Option<usize> {
        let last = self.bin_count();
        if !(value >= self.edges[0] && value <= self.edges[last]) {
            return None;
        }
        let upper = self.edges.partition_point(|&edge| edge <= value);
        Some(upper.saturating_sub(1).min(last - 1))
    }

    /// Counts the values in each bin. Values outside the edges are not counted.
    pub fn counts(&self, values: &[f64]) -> Vec<usize> {
        let mut counts = vec![0; self.bin_count()];
        for &value in values {
            if let Some(bin) = self.bin_of(value) {
                counts[bin] += 1;
            }
        }
        counts
    }

    /// Returns the histogram of `values` normalised to sum 1, or `None` when no value lies
    /// inside the edges.
    pub fn histogram(&self, values: &[f64]) -> Option<Vec<f64>> {
        let counts: Vec<f64> = self
            .counts(values)
            .into_iter()
            .map(|count| count as f64)
            .collect();
        normalize(&counts)
    }
}

/// The target density q of CLARIFY's rejection sampling, fitted to the reference
/// distances of past clear and ambiguous queries.
///
/// With p the histogram of all reference distances and h_clr, h_amb those of the clear
/// and the ambiguous ones over the same bins, each normalised to sum 1:
///
/// - ρ_clr = normalise(h_clr / (p + 1e-6)) and ρ_amb = normalise(h_amb / (p + 1e-6));
/// - ρ1 = normalise(max(ρ_clr − ρ_amb, 0) · p), the difference term;
/// - ρ2 = normalise(max(ρ_clr / (ρ_amb + 1e-6), 0) · p), the ratio term;
/// - q = 0.5 · (ρ1 + ρ2).
///
/// ρ1 is all zero when ρ_clr ≤ ρ_amb in every bin, and then q = ρ2 alone, which keeps q a
/// density instead of halving it or dividing by zero. ρ2 is positive in every bin with a
/// clear distance, so it cannot vanish while the clear set is non-empty. Were both zero,
/// q would be p, which accepts candidates in proportion to the reference distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceDensity {
    bins: DistanceBins,
    reference: Vec<f64>,
    rho_clear: Vec<f64>,
    rho_ambiguous: Vec<f64>,
    rho_difference: Option<Vec<f64>>,
    rho_ratio: Option<Vec<f64>>,
    target: Vec<f64>,
}

impl ReferenceDensity {
    /// Fits the bins and densities to the reference distances of clear and ambiguous
    /// queries, after outlier removal. Fails with the reason to fall back when a class is
    /// empty.
    ///
    /// # Panics
    ///
    /// Panics when `bin_count` is 0 or a distance is not finite.
    pub fn fit(
        clear_distances: &[f64],
        ambiguous_distances: &[f64],
        bin_count: usize,
    ) -> Result<Self, ClarifyFallback> {
        match (clear_distances.is_empty(), ambiguous_distances.is_empty()) {
            (true, true) => return Err(ClarifyFallback::NoReferenceAnswers),
            (true, false) => return Err(ClarifyFallback::NoClearReference),
            (false, true) => return Err(ClarifyFallback::NoAmbiguousReference),
            (false, false) => {}
        }

        let all: Vec<f64> = clear_distances
            .iter()
            .chain(ambiguous_distances)
            .copied()
            .collect();
        let bins = DistanceBins::spanning(&all, bin_count).expect("bin_count must be at least 1");
        // Every distance lies inside bins spanning them, so no histogram here is empty.
        let reference = bins
            .histogram(&all)
            .expect("reference distances are in range");
        let clear = bins
            .histogram(clear_distances)
            .expect("clear distances are in range");
        let ambiguous = bins
            .histogram(ambiguous_distances)
            .expect("ambiguous distances are in range");

        let rho_clear = class_ratio(&clear, &reference).ok_or(ClarifyFallback::NoClearReference)?;
        let rho_ambiguous =
            class_ratio(&ambiguous, &reference).ok_or(ClarifyFallback::NoAmbiguousReference)?;
        let (rho_difference, rho_ratio) = target_terms(&reference, &rho_clear, &rho_ambiguous);
        let target = combine_terms(&reference, rho_difference.as_deref(), rho_ratio.as_deref());

        Ok(Self {
            bins,
            reference,
            rho_clear,
            rho_ambiguous,
            rho_difference,
            rho_ratio,
            target,
        })
    }

    /// Returns the bins over the reference distances.
    pub fn bins(&self) -> &DistanceBins {
        &self.bins
    }

    /// Returns p, the normalised histogram of all reference distances.
    pub fn reference(&self) -> &[f64] {
        &self.reference
    }

    /// Returns ρ_clr.
    pub fn rho_clear(&self) -> &[f64] {
        &self.rho_clear
    }

    /// Returns ρ_amb.
    pub fn rho_ambiguous(&self) -> &[f64] {
        &self.rho_ambiguous
    }

    /// Returns ρ1, or `None` when max(ρ_clr − ρ_amb, 0) · p is zero in every bin.
    pub fn rho_difference(&self) -> Option<&[f64]> {
        self.rho_difference.as_deref()
    }

    /// Returns ρ2, or `None` when max(ρ_clr / (ρ_amb + 1e-6), 0) · p is zero in every bin.
    pub fn rho_ratio(&self) -> Option<&[f64]> {
        self.rho_ratio.as_deref()
    }

    /// Returns the target density q per bin.
    pub fn target(&self) -> &[f64] {
        &self.target
    }

    /// Returns g, the normalised histogram of candidate distances in the reference bins, or
    /// `None` when no candidate distance lies inside them.
    pub fn candidate_density(&self, candidate_distances: &[f64]) -> Option<Vec<f64>> {
        self.bins.histogram(candidate_distances)
    }

    /// Returns a(d) = clip(q(d) / (g(d) + 1e-6), 0, 1), with q(d) and g(d) interpolated
    /// from the bin centres and clamped at the edges.
    ///
    /// # Panics
    ///
    /// Panics when `candidate_density` does not have one value per bin.
    pub fn acceptance(&self, distance: f64, candidate_density: &[f64]) -> f64 {
        let centres = self.bins.centres();
        let target = interpolate(distance, centres, &self.target);
        let candidate = interpolate(distance, centres, candidate_density);
        acceptance_probability(target, candidate)
    }
}

/// Computes ρ = normalise(h / (p + 1e-6)) for a class histogram h, or `None` when h is
/// zero wherever p is.
pub fn class_ratio(class_histogram: &[f64], reference: &[f64]) -> Option<Vec<f64>> {
    let ratio: Vec<f64> = class_histogram
        .iter()
        .zip(reference)
        .map(|(class, all)| class / (all + RATIO_EPSILON))
        .collect();
    normalize(&ratio)
}

/// Computes the difference term ρ1 and the ratio term ρ2; a term is `None` when it is zero
/// in every bin.
pub fn target_terms(
    reference: &[f64],
    rho_clear: &[f64],
    rho_ambiguous: &[f64],
) -> (Option<Vec<f64>>, Option<Vec<f64>>) {
    let bins = reference.iter().zip(rho_clear).zip(rho_ambiguous);
    let difference: Vec<f64> = bins
        .clone()
        .map(|((p, clear), ambiguous)| (clear - ambiguous).max(0.0) * p)
        .collect();
    let ratio: Vec<f64> = bins
        .map(|((p, clear), ambiguous)| (clear / (ambiguous + RATIO_EPSILON)).max(0.0) * p)
        .collect();
    (normalize(&difference), normalize(&ratio))
}

/// Combines the terms into q: their mean when both exist, the one that exists otherwise,
/// and the reference density p when neither does.
pub fn combine_terms(
    reference: &[f64],
    rho_difference: Option<&[f64]>,
    rho_ratio: Option<&[f64]>,
) -> Vec<f64> {
    match (rho_difference, rho_ratio) {
        (Some(difference), Some(ratio)) => difference
            .iter()
            .zip(ratio)
            .map(|(a, b)| 0.5 * (a + b))
            .collect(),
        (Some(only), None) | (None, Some(only)) => only.to_vec(),
        (None, None) => reference.to_vec(),
    }
}
