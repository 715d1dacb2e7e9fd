//! Diagnostics of a CLARIFY round: how well the embedding distance separates clear from
//! ambiguous queries, in the answered buffer and among fresh candidates, and how clear the
//! queries are at each step of the selection.

use serde::{Deserialize, Serialize};

use super::context::BenchContext;
use crate::select::{ClarifyTrace, RoundSelection};

/// Distance statistics of one CLARIFY round, judged by the benchmark's teacher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundDiagnostics {
    /// Probability that a clear reference query (from the answered buffer, which the encoder
    /// trained on) has a larger embedding distance than an ambiguous one: the area under the
    /// ROC curve of distance as a clarity score. 0.5 is chance. `None` without both classes.
    pub reference_auc: Option<f64>,
    /// The same for the fresh candidates, answered by the teacher. A reference AUC far above
    /// the candidate AUC means the encoder has memorised the buffer.
    pub candidate_auc: Option<f64>,
    /// Share of the candidates the teacher answers clearly.
    pub candidate_clear: f64,
    /// Share of the accepted candidates the teacher answers clearly, `None` when none was
    /// accepted.
    pub accepted_clear: Option<f64>,
    /// Share of the selected queries that rejection sampling accepted (not top-ups) and the
    /// teacher answers clearly, `None` when none was selected.
    pub selected_accepted_clear: Option<f64>,
    /// Area under the ROC curve of disagreement as a clarity score among the accepted
    /// candidates: below 0.5 means the final disagreement pick prefers ambiguous queries.
    /// `None` without both classes among them.
    pub accepted_disagreement_auc: Option<f64>,
    /// Mean acceptance probability over the candidates.
    pub mean_acceptance: f64,
}

impl RoundDiagnostics {
    /// Computes the diagnostics of a CLARIFY round from its trace, or `None` for rounds
    /// without one.
    pub fn of(context: &BenchContext, selection: &RoundSelection) -> Option<Self> {
        let trace: &ClarifyTrace = selection.trace.as_ref()?;
        let reference: Vec<(f64, bool)> = trace
            .reference
            .iter()
            .filter(|point| point.kept)
            .map(|point| (point.distance, point.clear))
            .collect();
        let candidates: Vec<(f64, bool, bool)> = trace
            .candidates
            .iter()
            .map(|candidate| {
                let clear = context.teacher_answer(&candidate.pair).is_clear();
                (candidate.distance, clear, candidate.accepted)
            })
            .collect();
        let accepted_disagreement: Vec<(f64, bool)> = trace
            .candidates
            .iter()
            .zip(&candidates)
            .filter(|(candidate, _)| candidate.accepted)
            .map(|(candidate, &(_, clear, _))| (candidate.disagreement, clear))
            .collect();
        let candidate_scores: Vec<(f64, bool)> = candidates
            .iter()
            .map(|&(distance, clear, _)| (distance, clear))
            .collect();
        let accepted: Vec<bool> = candidates
            .iter()
            .filter(|(_, _, accepted)| *accepted)
            .map(|&(_, clear, _)| clear)
            .collect();
        let selected_accepted: Vec<bool> = selection
            .pairs
            .iter()
            .filter(|selected| !selected.top_up)
            .map(|selected| context.teacher_answer(&selected.pair).is_clear())
            .collect();
        let count = trace.candidates.len().max(1) as f64;
        Some(Self {
            reference_auc: roc_auc(&reference),
            candidate_auc: roc_auc(&candidate_scores),
            candidate_clear: share(candidates.iter().map(|&(_, clear, _)| clear)).unwrap_or(0.0),
            accepted_clear: share(accepted.into_iter()),
            selected_accepted_clear: share(selected_accepted.into_iter()),
            accepted_disagreement_auc: roc_auc(&accepted_disagreement),
            mean_acceptance: trace
                .candidates
                .iter()
                .map(|candidate| candidate.acceptance)
                .sum::<f64>()
                / count,
        })
    }
}

fn share(flags: impl Iterator<Item = bool>) -> Option<f64> {
    let (mut hits, mut total) = (0usize, 0usize);
    for flag in flags {
        hits += usize::from(flag);
        total += 1;
    }
    (total > 0).then(|| hits as f64 / total as f64)
}

/// Area under the ROC curve of `score` as a predictor of the positive class: the
/// probability that a random positive scores above a random negative, ties counting half
/// (the Mann-Whitney U statistic over the product of the class sizes). `None` when a class
/// is empty.
pub fn roc_auc(scored: &[(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|(_, positive)| *positive).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the 1-based ranks of the positives, tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start;
        while end < sorted.len() && sorted[end].0 == sorted[start].0 {
            end += 1;
        }
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = sorted[start..end].iter().filter(|(_, p)| *p).count();
        rank_sum += mean_rank * tied_positives as f64;
        start = end;
    }
    let positives_f = positives as f64;
    let u = rank_sum - positives_f * (positives_f + 1.0) / 2.0;
    Some(u / (positives_f * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::roc_auc;

    #[test]
    fn auc_of_separated_reversed_and_tied_scores() {
        let separated = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(roc_auc(&separated), Some(1.0));
        let reversed = [(0.1, true), (0.2, true), (0.8, false), (0.9, false)];
        assert_eq!(roc_auc(&reversed), Some(0.0));
        let tied = [(0.5, true), (0.5, false)];
        assert_eq!(roc_auc(&tied), Some(0.5));
        // One positive above two of three negatives: 2 / 3.
        let mixed = [(0.1, false), (0.3, false), (0.4, true), (0.6, false)];
        let auc = roc_auc(&mixed).unwrap();
        assert!((auc - 2.0 / 3.0).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[(0.3, true)]), None);
    }
}
