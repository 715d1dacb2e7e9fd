//! The query selector: one call per round, one method per selection rule.

use std::fmt;

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::clarify;
use super::config::SelectConfig;
use super::density::ClarifyFallback;
use super::error::SelectError;
use super::model::{DisagreementScorer, Embedder, disagreement_scores};
use super::sampler::{PairDraw, SegmentPool};
use super::segment::{AskedPairs, LabelledPair, SegmentPair};
use crate::dataset::Episode;

/// A query selection rule. The names are those stored in the `selector` column of the
/// segment store's `queries` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectorKind {
    /// Uniform random pairs, the query rule of the MR baseline.
    Random,
    /// The M most disputed of M · L random pairs, the query rule of OPRL (Shin et al., 2023).
    Disagreement,
    /// Rejection sampling on embedding distance, then the M most disputed of the accepted
    /// pairs (Mu et al., ICML 2025).
    Clarify,
}

impl SelectorKind {
    /// Returns the selector's name: `random`, `disagreement` or `clarify`.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectorKind::Random => "random",
            SelectorKind::Disagreement => "disagreement",
            SelectorKind::Clarify => "clarify",
        }
    }

    /// Returns the selector to run in round `round_index` (0-based) of a run that uses
    /// `self`: [`SelectorKind::Random`] in round 0 for every method, because no reward model
    /// or encoder is trained yet, and `self` afterwards.
    pub fn for_round(self, round_index: usize) -> SelectorKind {
        if round_index == 0 {
            SelectorKind::Random
        } else {
            self
        }
    }
}

impl fmt::Display for SelectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One selected query.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectedPair {
    /// The segments, `left` shown first.
    pub pair: SegmentPair,
    /// Embedding distance ‖z_left − z_right‖₂, when the selector computed it.
    pub distance: Option<f64>,
    /// Ensemble disagreement, when the selector computed it.
    pub disagreement: Option<f64>,
    /// Whether the pair was rejected by CLARIFY's rejection sampling and added to fill the
    /// round to M queries.
    pub top_up: bool,
}

/// The queries of one round and how they were found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundSelection {
    /// The selector that ran. A CLARIFY round that fell back to disagreement ranking still
    /// reports [`SelectorKind::Clarify`], with the reason in `fallback`.
    pub selector: SelectorKind,
    /// The queries in the order to ask them: accepted pairs by falling disagreement, then
    /// top-ups by falling disagreement. Random rounds keep draw order.
    pub pairs: Vec<SelectedPair>,
    /// Queries requested, M.
    pub requested: usize,
    /// Candidate pairs drawn from the dataset.
    pub candidate_count: usize,
    /// Candidates accepted by rejection sampling, which may exceed M. `None` for rounds
    /// without a rejection step (random, disagreement, CLARIFY fallback).
    pub accepted_count: Option<usize>,
    /// Rejected candidates added because fewer than M were accepted: the round's shortfall.
    pub top_up_count: usize,
    /// The reason a CLARIFY round ranked all candidates by disagreement, if it did.
    pub fallback: Option<ClarifyFallback>,
    /// Whether the candidate draw returned fewer pairs than requested (see the warning
    /// logged with it), so that the round may have fewer than M queries.
    pub pool_exhausted: bool,
    /// Distances seen by CLARIFY's rejection step, kept for diagnostics. `None` for other
    /// rounds and for CLARIFY rounds that fell back to disagreement ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<ClarifyTrace>,
}

/// Distances behind one CLARIFY round: the reference queries drawn from the labelled buffer
/// and every candidate with its acceptance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClarifyTrace {
    /// Reference queries in draw order (with repeats).
    pub reference: Vec<ReferencePoint>,
    /// Candidates in draw order.
    pub candidates: Vec<ExaminedCandidate>,
}

/// One reference query of a CLARIFY round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferencePoint {
    /// Embedding distance of the query's two segments.
    pub distance: f64,
    /// Whether the query was answered left or right (otherwise can't tell).
    pub clear: bool,
    /// Whether the distance was within the outlier limit and so entered the histograms.
    pub kept: bool,
}

/// One candidate of a CLARIFY round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExaminedCandidate {
    pub pair: SegmentPair,
    /// Embedding distance of the two segments.
    pub distance: f64,
    /// Ensemble disagreement.
    pub disagreement: f64,
    /// Acceptance probability a(d); 0 for distance outliers.
    pub acceptance: f64,
    /// Whether rejection sampling accepted the candidate.
    pub accepted: bool,
}

/// Picks the query pairs of each round from a dataset's segments.
///
/// A selector has no random state: every round takes its own seed, so the same seed and
/// inputs give the same pairs (see [`super::round_seed`]).
#[derive(Clone, Debug)]
pub struct QuerySelector {
    config: SelectConfig,
    pool: SegmentPool,
}

impl QuerySelector {
    /// Creates a selector over the segments of `episodes` after validating `config`.
    pub fn new(config: SelectConfig, episodes: &[Episode]) -> Result<Self, SelectError> {
        config.validate()?;
        let pool = SegmentPool::new(episodes, config.segment_length)
            .expect("validate rejects segment_length 0");
        Ok(Self { config, pool })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &SelectConfig {
        &self.config
    }

    /// Returns the segment pool that candidates are drawn from.
    pub fn pool(&self) -> &SegmentPool {
        &self.pool
    }

    /// Selects M uniform random pairs (the MR rule, and round 0 of every method).
    pub fn select_random(&self, seed: u64, asked: &AskedPairs) -> RoundSelection {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let draw = self.draw_candidates(self.config.queries_per_round, asked, &mut rng);
        let pairs = draw
            .pairs
            .iter()
            .map(|&pair| SelectedPair {
                pair,
                distance: None,
                disagreement: None,
                top_up: false,
            })
            .collect();

        let selection = RoundSelection {
            selector: SelectorKind::Random,
            pairs,
            requested: self.config.queries_per_round,
            candidate_count: draw.pairs.len(),
            accepted_count: None,
            top_up_count: 0,
            fallback: None,
            pool_exhausted: draw.is_short(),
            trace: None,
        };
        log_round(&selection);
        selection
    }

    /// Selects the M pairs with the highest disagreement among M · L random candidates (the
    /// OPRL rule). Ties keep draw order.
    pub fn select_by_disagreement(
        &self,
        seed: u64,
        asked: &AskedPairs,
        scorer: &mut impl DisagreementScorer,
    ) -> Result<RoundSelection, SelectError> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let selection =
            self.rank_all_by_disagreement(&mut rng, asked, scorer, SelectorKind::Disagreement)?;
        log_round(&selection);
        Ok(selection)
    }

    /// Selects M pairs with CLARIFY's rule: rejection sampling of M · L random candidates
    /// toward the embedding distances of clearly answered queries, then the M accepted
    /// pairs with the highest disagreement, topped up with the most disputed rejected ones
    /// when fewer than M are accepted.
    ///
    /// `buffer` is every past query with its answer. When it yields no clear or no
    /// can't-tell reference answer, the round logs a warning and ranks all candidates by
    /// disagreement instead, which is the OPRL rule (see [`ClarifyFallback`]).
    pub fn select_clarify(
        &self,
        seed: u64,
        asked: &AskedPairs,
        buffer: &[LabelledPair],
        embedder: &mut impl Embedder,
        scorer: &mut impl DisagreementScorer,
    ) -> Result<RoundSelection, SelectError> {
        for (index, entry) in buffer.iter().enumerate() {
            for segment in [entry.pair.left, entry.pair.right] {
                segment
                    .validate(self.pool.episodes())
                    .map_err(|source| SelectError::BufferSegment { index, source })?;
            }
        }

        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let selection = match clarify::reference_density(self, &mut rng, buffer, embedder)? {
            Ok((density, reference)) => {
                clarify::select(self, &mut rng, asked, &density, reference, embedder, scorer)?
            }
            Err(reason) => {
                warn!(
                    reason = reason.describe(),
                    "CLARIFY round falls back to ranking all candidates by disagreement"
                );
                let mut selection =
                    self.rank_all_by_disagreement(&mut rng, asked, scorer, SelectorKind::Clarify)?;
                selection.fallback = Some(reason);
                selection
            }
        };
        log_round(&selection);
        Ok(selection)
    }

    /// Draws `count` candidates with the configured attempt limit.
    pub(super) fn draw_candidates(
        &self,
        count: usize,
        asked: &AskedPairs,
        rng: &mut Xoshiro256PlusPlus,
    ) -> PairDraw {
        self.pool
            .draw_pairs(count, asked, self.config.draw_attempts_per_pair, rng)
    }

    /// Returns M · L, which `validate` guarantees to fit in usize.
    pub(super) fn pool_size(&self) -> usize {
        self.config
            .pool_size()
            .expect("validate rejects an overflowing pool size")
    }

    fn rank_all_by_disagreement(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        asked: &AskedPairs,
        scorer: &mut impl DisagreementScorer,
        selector: SelectorKind,
    ) -> Result<RoundSelection, SelectError> {
        let draw = self.draw_candidates(self.pool_size(), asked, rng);
        let scores = disagreement_scores(scorer, &draw.pairs, self.config.batch_size)?;

        let mut order: Vec<usize> = (0..draw.pairs.len()).collect();
        sort_by_falling_score(&mut order, &scores);
        order.truncate(self.config.queries_per_round);
        let pairs = order
            .into_iter()
            .map(|index| SelectedPair {
                pair: draw.pairs[index],
                distance: None,
                disagreement: Some(scores[index]),
                top_up: false,
            })
            .collect();

        Ok(RoundSelection {
            selector,
            pairs,
            requested: self.config.queries_per_round,
            candidate_count: draw.pairs.len(),
            accepted_count: None,
            top_up_count: 0,
            fallback: None,
            pool_exhausted: draw.is_short(),
            trace: None,
        })
    }
}

/// Sorts candidate indices by falling score; the sort is stable, so ties keep their order.
pub(super) fn sort_by_falling_score(indices: &mut [usize], scores: &[f64]) {
    indices.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
}

fn log_round(selection: &RoundSelection) {
    info!(
        selector = selection.selector.as_str(),
        selected = selection.pairs.len(),
        requested = selection.requested,
        candidates = selection.candidate_count,
        accepted = selection.accepted_count,
        top_ups = selection.top_up_count,
        fallback = selection.fallback.map(ClarifyFallback::describe),
        "selected queries for a round"
    );
}
