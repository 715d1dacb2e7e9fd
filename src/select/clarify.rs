//! The steps of a CLARIFY round (Mu et al., ICML 2025) that need the selector's models and
//! random stream. The arithmetic lives in [`super::density`].

use rand_xoshiro::Xoshiro256PlusPlus;

use super::density::{ClarifyFallback, ReferenceDensity, within_std_devs};
use super::error::SelectError;
use super::model::{DisagreementScorer, Embedder, disagreement_scores, pair_distances};
use super::random::{uniform_index, uniform_unit};
use super::segment::{AskedPairs, LabelledPair, SegmentPair};
use super::selector::sort_by_falling_score;
use super::selector::{
    ClarifyTrace, ExaminedCandidate, QuerySelector, ReferencePoint, RoundSelection, SelectedPair,
    SelectorKind,
};
use crate::answer::Answer;

/// Draws M · L reference queries with replacement from the answered ones (skips left
/// out), embeds them, removes distance outliers and fits the target density.
///
/// Returns the density with the reference points it was fitted to. The outer error is a
/// failed model call. The inner error is the reason to fall back, returned before any
/// embedding when the buffer already lacks a class.
pub(super) fn reference_density(
    selector: &QuerySelector,
    rng: &mut Xoshiro256PlusPlus,
    buffer: &[LabelledPair],
    embedder: &mut impl Embedder,
) -> Result<Result<(ReferenceDensity, Vec<ReferencePoint>), ClarifyFallback>, SelectError> {
    let answered: Vec<&LabelledPair> = buffer
        .iter()
        .filter(|entry| entry.answer != Answer::Skip)
        .collect();
    if answered.is_empty() {
        return Ok(Err(ClarifyFallback::NoReferenceAnswers));
    }
    if !answered.iter().any(|entry| entry.answer.is_clear()) {
        return Ok(Err(ClarifyFallback::NoClearReference));
    }
    if !answered
        .iter()
        .any(|entry| entry.answer == Answer::CantTell)
    {
        return Ok(Err(ClarifyFallback::NoAmbiguousReference));
    }

    let reference: Vec<&LabelledPair> = (0..selector.pool_size())
        .map(|_| answered[uniform_index(rng, answered.len())])
        .collect();
    let pairs: Vec<SegmentPair> = reference.iter().map(|entry| entry.pair).collect();
    let config = selector.config();
    let distances = pair_distances(embedder, &pairs, config.batch_size)?;

    let keep = within_std_devs(&distances, config.outlier_std_devs);
    let mut clear = Vec::new();
    let mut ambiguous = Vec::new();
    let mut points = Vec::with_capacity(reference.len());
    for ((entry, &distance), kept) in reference.iter().zip(&distances).zip(keep) {
        let is_clear = entry.answer.is_clear();
        points.push(ReferencePoint {
            distance,
            clear: is_clear,
            kept,
        });
        if !kept {
            continue;
        }
        if is_clear {
            clear.push(distance);
        } else {
            ambiguous.push(distance);
        }
    }
    Ok(
        ReferenceDensity::fit(&clear, &ambiguous, config.bin_count)
            .map(|density| (density, points)),
    )
}

/// Draws M · L candidates, accepts each with probability a(d) and returns the M accepted
/// candidates with the highest disagreement, filled up to M with the rejected candidates
/// of highest disagreement.
///
/// Distance outliers among the candidates (outside mean ± k · std) are never accepted, and
/// they fill a shortfall only after every other rejected candidate. When no candidate
/// distance falls inside the reference bins, g is undefined and every candidate is
/// rejected, so the round is filled by disagreement alone.
pub(super) fn select(
    selector: &QuerySelector,
    rng: &mut Xoshiro256PlusPlus,
    asked: &AskedPairs,
    density: &ReferenceDensity,
    reference: Vec<ReferencePoint>,
    embedder: &mut impl Embedder,
    scorer: &mut impl DisagreementScorer,
) -> Result<RoundSelection, SelectError> {
    let config = selector.config();
    let draw = selector.draw_candidates(selector.pool_size(), asked, rng);
    let distances = pair_distances(embedder, &draw.pairs, config.batch_size)?;
    let scores = disagreement_scores(scorer, &draw.pairs, config.batch_size)?;

    let keep = within_std_devs(&distances, config.outlier_std_devs);
    let kept_distances: Vec<f64> = distances
        .iter()
        .zip(&keep)
        .filter(|(_, kept)| **kept)
        .map(|(distance, _)| *distance)
        .collect();
    let candidate_density = density.candidate_density(&kept_distances);

    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let mut outliers = Vec::new();
    let mut examined = Vec::with_capacity(distances.len());
    for (index, &distance) in distances.iter().enumerate() {
        let mut candidate = ExaminedCandidate {
            pair: draw.pairs[index],
            distance,
            disagreement: scores[index],
            acceptance: 0.0,
            accepted: false,
        };
        if !keep[index] {
            outliers.push(index);
            examined.push(candidate);
            continue;
        }
        candidate.acceptance = candidate_density
            .as_deref()
            .map_or(0.0, |density_g| density.acceptance(distance, density_g));
        candidate.accepted = uniform_unit(rng) < candidate.acceptance;
        if candidate.accepted {
            accepted.push(index);
        } else {
            rejected.push(index);
        }
        examined.push(candidate);
    }
    let accepted_count = accepted.len();

    let wanted = config.queries_per_round;
    sort_by_falling_score(&mut accepted, &scores);
    accepted.truncate(wanted);
    sort_by_falling_score(&mut rejected, &scores);
    sort_by_falling_score(&mut outliers, &scores);
    let top_ups: Vec<usize> = rejected
        .into_iter()
        .chain(outliers)
        .take(wanted - accepted.len())
        .collect();

    let selected = |index: usize, top_up: bool| SelectedPair {
        pair: draw.pairs[index],
        distance: Some(distances[index]),
        disagreement: Some(scores[index]),
        top_up,
    };
    let mut pairs: Vec<SelectedPair> = accepted.iter().map(|&i| selected(i, false)).collect();
    pairs.extend(top_ups.iter().map(|&i| selected(i, true)));

    Ok(RoundSelection {
        selector: SelectorKind::Clarify,
        pairs,
        requested: wanted,
        candidate_count: draw.pairs.len(),
        accepted_count: Some(accepted_count),
        top_up_count: top_ups.len(),
        fallback: None,
        pool_exhausted: draw.is_short(),
        trace: Some(ClarifyTrace {
            reference,
            candidates: examined,
        }),
    })
}
