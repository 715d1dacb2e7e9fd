//! Hand-computed checks of CLARIFY's density arithmetic: outlier removal, bins, the class
//! ratios ρ, the target q and the acceptance probability.

use clarify::select::ClarifyFallback;
use clarify::select::density::{
    DistanceBins, RATIO_EPSILON, ReferenceDensity, acceptance_probability, interpolate, normalize,
    within_std_devs,
};

const TOLERANCE: f64 = 1e-12;

fn assert_close(found: f64, expected: f64, what: &str) {
    assert!(
        (found - expected).abs() <= TOLERANCE,
        "{what}: found {found}, expected {expected}"
    );
}

fn assert_all_close(found: &[f64], expected: &[f64], what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (bin, (f, e)) in found.iter().zip(expected).enumerate() {
        assert_close(*f, *e, &format!("{what} bin {bin}"));
    }
}

#[test]
fn outlier_beyond_limit_removed() {
    // Nine zeros and a 10: mean 1, population variance (9 · 1 + 81) / 10 = 9, std 3.
    let values = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0];

    let two_std = within_std_devs(&values, 2.0);
    let three_std = within_std_devs(&values, 3.0);

    // |10 − 1| = 9 > 2 · 3, so the 10 goes, and every zero (|0 − 1| = 1) stays.
    assert_eq!(&two_std[..9], &[true; 9]);
    assert!(!two_std[9]);
    // 9 = 3 · 3 lies on the boundary, which counts as inside.
    assert_eq!(three_std, vec![true; 10]);
}

#[test]
fn outlier_removal_keeps_equal_values() {
    assert_eq!(within_std_devs(&[2.5, 2.5, 2.5], 3.0), vec![true; 3]);
    assert!(within_std_devs(&[], 3.0).is_empty());
}

#[test]
fn far_outlier_removed_at_three_std() {
    // Nineteen zeros and a 100: mean 5, variance (19 · 25 + 95²) / 20 = 475, 3 std ≈ 65.4.
    let mut values = vec![0.0; 19];
    values.push(100.0);

    let keep = within_std_devs(&values, 3.0);

    assert!(!keep[19]);
    assert_eq!(keep.iter().filter(|kept| **kept).count(), 19);
}

#[test]
fn bins_follow_numpy_histogram_edges() {
    let bins = DistanceBins::spanning(&[0.0, 4.0, 1.0], 4).expect("values are not empty");

    assert_eq!(bins.edges(), [0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(bins.centres(), [0.5, 1.5, 2.5, 3.5]);
    assert_eq!(bins.bin_of(0.0), Some(0));
    // Bins are closed on the left, so an inner edge belongs to the bin above it.
    assert_eq!(bins.bin_of(1.0), Some(1));
    // The last bin also contains the maximum.
    assert_eq!(bins.bin_of(4.0), Some(3));
    assert_eq!(bins.bin_of(-0.1), None);
    assert_eq!(bins.bin_of(4.1), None);
    assert_eq!(bins.counts(&[0.0, 0.5, 1.0, 3.9, 4.0, 7.0]), [2, 1, 0, 2]);
}

#[test]
fn bins_of_equal_values_widen_by_half() {
    let bins = DistanceBins::spanning(&[2.0, 2.0], 2).expect("values are not empty");

    assert_eq!(bins.edges(), [1.5, 2.0, 2.5]);
    assert_eq!(bins.bin_of(2.0), Some(1));
}

#[test]
fn bins_need_values() {
    assert!(DistanceBins::spanning(&[], 4).is_none());
}

#[test]
fn histogram_normalises_in_range_values_only() {
    let bins = DistanceBins::spanning(&[0.0, 2.0], 2).expect("values are not empty");

    let histogram = bins
        .histogram(&[0.5, 1.5, 1.7, 9.0])
        .expect("some in range");

    assert_all_close(&histogram, &[1.0 / 3.0, 2.0 / 3.0], "histogram");
    assert!(bins.histogram(&[5.0, -1.0]).is_none());
}

#[test]
fn normalize_rejects_zero_sum() {
    assert_eq!(normalize(&[1.0, 3.0]), Some(vec![0.25, 0.75]));
    assert_eq!(normalize(&[0.0, 0.0]), None);
}

#[test]
fn interpolation_clamps_at_edges() {
    let xs = [0.5, 1.5, 2.5, 3.5];
    let ys = [0.1, 0.3, 0.2, 0.4];

    assert_close(interpolate(0.0, &xs, &ys), 0.1, "below the first centre");
    assert_close(interpolate(0.5, &xs, &ys), 0.1, "at the first centre");
    assert_close(interpolate(1.0, &xs, &ys), 0.2, "between the first two");
    assert_close(interpolate(1.5, &xs, &ys), 0.3, "at an inner centre");
    assert_close(interpolate(3.0, &xs, &ys), 0.3, "between the last two");
    assert_close(interpolate(9.0, &xs, &ys), 0.4, "above the last centre");
}

#[test]
fn acceptance_probability_is_clipped_ratio() {
    assert_close(
        acceptance_probability(0.2, 0.4),
        0.2 / (0.4 + RATIO_EPSILON),
        "ratio below 1",
    );
    assert_eq!(acceptance_probability(0.5, 0.1), 1.0);
    assert_eq!(acceptance_probability(0.0, 0.0), 0.0);
    // An empty candidate bin gives q / 1e-6, clipped to 1.
    assert_eq!(acceptance_probability(1e-3, 0.0), 1.0);
}

/// Fits the worked example: two bins over [0, 1] (centres 0.25 and 0.75), clear distances
/// 0, 0.25, 0.75 and one ambiguous distance 1.
///
/// p = (2/4, 2/4), h_clr = (2/3, 1/3), h_amb = (0, 1), so ρ_clr = (2/3, 1/3) (dividing both
/// bins by the same p + ε keeps the ratio) and ρ_amb = (0, 1).
/// ρ1 ∝ (max(2/3 − 0, 0) · 1/2, max(1/3 − 1, 0) · 1/2) = (1/3, 0), so ρ1 = (1, 0).
/// ρ2 ∝ ((2/3) / ε · 1/2, (1/3) / (1 + ε) · 1/2).
fn worked_example() -> ReferenceDensity {
    ReferenceDensity::fit(&[0.0, 0.25, 0.75], &[1.0], 2).expect("both classes present")
}

fn worked_example_ratio_term() -> [f64; 2] {
    let bin0 = (2.0 / 3.0) / RATIO_EPSILON * 0.5;
    let bin1 = (1.0 / 3.0) / (1.0 + RATIO_EPSILON) * 0.5;
    [bin0 / (bin0 + bin1), bin1 / (bin0 + bin1)]
}

#[test]
fn rho_of_worked_example() {
    let density = worked_example();
    let rho2 = worked_example_ratio_term();

    assert_eq!(density.bins().centres(), [0.25, 0.75]);
    assert_all_close(density.reference(), &[0.5, 0.5], "p");
    assert_all_close(density.rho_clear(), &[2.0 / 3.0, 1.0 / 3.0], "rho_clr");
    assert_all_close(density.rho_ambiguous(), &[0.0, 1.0], "rho_amb");
    assert_all_close(
        density.rho_difference().expect("rho1 is not zero"),
        &[1.0, 0.0],
        "rho1",
    );
    assert_all_close(
        density.rho_ratio().expect("rho2 is not zero"),
        &rho2,
        "rho2",
    );
    assert_all_close(
        density.target(),
        &[0.5 * (1.0 + rho2[0]), 0.5 * rho2[1]],
        "q",
    );
}

#[test]
fn acceptance_of_worked_example() {
    let density = worked_example();
    let q = density.target().to_vec();
    // Candidate distances 0.1, 0.2 in bin 0 and 0.6 in bin 1, plus 3.0 outside the bins.
    let g = density
        .candidate_density(&[0.1, 0.2, 0.6, 3.0])
        .expect("three candidates in range");
    assert_all_close(&g, &[2.0 / 3.0, 1.0 / 3.0], "g");

    // Three quarters of the way from centre 0.25 to centre 0.75.
    let q_at = q[0] + 0.75 * (q[1] - q[0]);
    let g_at = g[0] + 0.75 * (g[1] - g[0]);
    assert_close(
        density.acceptance(0.625, &g),
        q_at / (g_at + RATIO_EPSILON),
        "a(0.625)",
    );
    assert!(density.acceptance(0.625, &g) < 1.0);

    // Below the first centre q and g are clamped to bin 0, where q / g > 1.
    assert_eq!(density.acceptance(0.0, &g), 1.0);
    // Above the last centre they are clamped to bin 1, also for distances outside the bins.
    let clamped_high = q[1] / (g[1] + RATIO_EPSILON);
    assert_close(density.acceptance(0.75, &g), clamped_high, "a(0.75)");
    assert_close(density.acceptance(5.0, &g), clamped_high, "a(5.0)");
    assert!(clamped_high < 1e-5, "{clamped_high}");
}

#[test]
fn candidate_density_undefined_outside_reference_bins() {
    let density = worked_example();
    assert!(density.candidate_density(&[2.0, 3.0]).is_none());
}

#[test]
fn equal_class_histograms_give_ratio_term_alone() {
    // Clear and ambiguous distances have the same histogram, so ρ_clr = ρ_amb = (1/2, 1/2)
    // and max(ρ_clr − ρ_amb, 0) is zero in every bin.
    let density = ReferenceDensity::fit(&[0.0, 1.0], &[0.0, 1.0], 2).expect("both classes");

    assert_eq!(density.rho_difference(), None);
    let rho2 = density.rho_ratio().expect("rho2 is not zero").to_vec();
    assert_all_close(&rho2, &[0.5, 0.5], "rho2");
    assert_all_close(density.target(), &rho2, "q");
}

#[test]
fn missing_class_gives_fallback_reason() {
    assert_eq!(
        ReferenceDensity::fit(&[0.1, 0.2], &[], 4),
        Err(ClarifyFallback::NoAmbiguousReference)
    );
    assert_eq!(
        ReferenceDensity::fit(&[], &[0.1], 4),
        Err(ClarifyFallback::NoClearReference)
    );
    assert_eq!(
        ReferenceDensity::fit(&[], &[], 4),
        Err(ClarifyFallback::NoReferenceAnswers)
    );
}
