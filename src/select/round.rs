//! One selection round against the segment store: the preference buffer and the pairs
//! already asked are read from the store, and the chosen queries are written back to it.

use std::collections::HashMap;
use std::convert::Infallible;

use thiserror::Error;

use super::error::SelectError;
use super::model::{DisagreementScorer, Embedder};
use super::segment::{AskedPairs, DatasetSegment, LabelledPair, SegmentPair};
use super::selector::{QuerySelector, RoundSelection, SelectedPair, SelectorKind};
use crate::store::{DatasetId, EpisodeId, NewQuery, Query, QueryId, SegmentRef, Store, StoreError};

/// A model type for the rounds that need no embedder or no scorer. It has no values, so
/// it is never called.
#[derive(Debug)]
pub enum NoModel {}

impl Embedder for NoModel {
    type Error = Infallible;

    fn embed(&mut self, _: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, Infallible> {
        match *self {}
    }
}

impl DisagreementScorer for NoModel {
    type Error = Infallible;

    fn disagreement(&mut self, _: &[SegmentPair]) -> Result<Vec<f64>, Infallible> {
        match *self {}
    }
}

/// The selection rule of a round together with the models it reads.
#[derive(Debug)]
pub enum RoundModels<'m, E, S> {
    /// Uniform random pairs.
    Random,
    /// The most disputed of M · L random candidates.
    Disagreement { scorer: &'m mut S },
    /// CLARIFY's rejection sampling on embedding distance, then disagreement ranking.
    Clarify {
        embedder: &'m mut E,
        scorer: &'m mut S,
    },
}

impl RoundModels<'static, NoModel, NoModel> {
    /// Returns the models of a random round: none.
    pub fn random() -> Self {
        RoundModels::Random
    }
}

impl<'m, S> RoundModels<'m, NoModel, S> {
    /// Returns the models of a disagreement round: the scorer alone.
    pub fn disagreement(scorer: &'m mut S) -> Self {
        RoundModels::Disagreement { scorer }
    }
}

impl<E, S> RoundModels<'_, E, S> {
    /// Returns the selector these models run.
    pub fn kind(&self) -> SelectorKind {
        match self {
            RoundModels::Random => SelectorKind::Random,
            RoundModels::Disagreement { .. } => SelectorKind::Disagreement,
            RoundModels::Clarify { .. } => SelectorKind::Clarify,
        }
    }
}

/// Runs one round of the selector that `models` names.
///
/// `buffer` is read only by CLARIFY rounds.
pub fn select_round<E: Embedder, S: DisagreementScorer>(
    selector: &QuerySelector,
    seed: u64,
    asked: &AskedPairs,
    buffer: &[LabelledPair],
    models: RoundModels<'_, E, S>,
) -> Result<RoundSelection, SelectError> {
    match models {
        RoundModels::Random => Ok(selector.select_random(seed, asked)),
        RoundModels::Disagreement { scorer } => {
            selector.select_by_disagreement(seed, asked, scorer)
        }
        RoundModels::Clarify { embedder, scorer } => {
            selector.select_clarify(seed, asked, buffer, embedder, scorer)
        }
    }
}

/// A failed store round.
#[derive(Debug, Error)]
pub enum StoreRoundError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Select(#[from] SelectError),

    #[error(
        "the selector covers {selector_episodes} episodes, but stored dataset {dataset} has \
         {stored_episodes}: build the selector from the stored dataset's episodes"
    )]
    EpisodeCount {
        dataset: DatasetId,
        selector_episodes: usize,
        stored_episodes: usize,
    },

    #[error(
        "episode index {index} has {selector_steps} steps in the selector, but stored episode \
         {episode} has {stored_steps}: build the selector from the stored dataset's episodes"
    )]
    EpisodeLength {
        index: usize,
        episode: EpisodeId,
        selector_steps: usize,
        stored_steps: usize,
    },
}

/// A round whose queries are in the store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRound {
    /// The selection as the selector returned it.
    pub selection: RoundSelection,
    /// The inserted queries, in the order of `selection.pairs`.
    pub queries: Vec<Query>,
    /// Queries that CLARIFY's rejection sampling did not accept and that were added from
    /// the rejected candidates to fill the round to M.
    pub shortfall: usize,
    /// Queries missing from the round because the candidate draw ran short.
    pub missing: usize,
}

/// Selects one round of queries for stored dataset `dataset` and inserts them into
/// `store`, with the selector's name, `encoder_version` on CLARIFY rounds (other rounds
/// store none) and creation time `now_unix_secs`.
///
/// The preference buffer is every answered query of the dataset, and every stored query of
/// the dataset that is answered or still open at `now_unix_secs` counts as asked, so it is
/// not selected again. `selector` must cover the stored dataset's episodes in
/// `episode_index` order, which is the order of [`crate::Dataset::episodes`] of the
/// imported file.
pub fn select_and_store_round<E: Embedder, S: DisagreementScorer>(
    store: &mut Store,
    dataset: DatasetId,
    selector: &QuerySelector,
    seed: u64,
    models: RoundModels<'_, E, S>,
    encoder_version: Option<&str>,
    now_unix_secs: f64,
) -> Result<StoredRound, StoreRoundError> {
    let episode_ids = stored_episode_ids(store, dataset, selector)?;
    let index_of: HashMap<EpisodeId, usize> = episode_ids
        .iter()
        .enumerate()
        .map(|(index, &id)| (id, index))
        .collect();

    let buffer = stored_buffer(store, &index_of)?;
    let mut asked: AskedPairs = buffer.iter().map(|entry| entry.pair).collect();
    for query in store.unanswered_queries(now_unix_secs)? {
        if let Some(pair) = dataset_pair(&query.query, &index_of) {
            asked.insert(pair);
        }
    }

    let kind = models.kind();
    let selection = select_round(selector, seed, &asked, &buffer, models)?;
    let encoder_version = match kind {
        SelectorKind::Clarify => encoder_version.map(str::to_owned),
        SelectorKind::Random | SelectorKind::Disagreement => None,
    };

    let mut queries = Vec::with_capacity(selection.pairs.len());
    for selected in &selection.pairs {
        let query = new_query(
            selected,
            &episode_ids,
            kind,
            encoder_version.clone(),
            now_unix_secs,
        );
        let id: QueryId = store.insert_query(&query)?;
        queries.push(Query { id, query });
    }

    Ok(StoredRound {
        shortfall: selection.top_up_count,
        missing: selection.requested.saturating_sub(selection.pairs.len()),
        selection,
        queries,
    })
}

/// Returns the answered queries of the dataset whose episodes `index_of` lists, as the
/// preference buffer in query id order.
fn stored_buffer(
    store: &Store,
    index_of: &HashMap<EpisodeId, usize>,
) -> Result<Vec<LabelledPair>, StoreError> {
    Ok(store
        .answered_queries()?
        .into_iter()
        .filter_map(|answered| {
            dataset_pair(&answered.query.query, index_of).map(|pair| LabelledPair {
                pair,
                answer: answered.answer.answer,
            })
        })
        .collect())
}

/// Returns the stored episode ids of `dataset` in episode index order, after checking them
/// against the selector's episodes.
fn stored_episode_ids(
    store: &Store,
    dataset: DatasetId,
    selector: &QuerySelector,
) -> Result<Vec<EpisodeId>, StoreRoundError> {
    let mut stored = store.episodes(dataset)?;
    stored.sort_by_key(|episode| episode.index);
    let episodes = selector.pool().episodes();
    if stored.len() != episodes.len() {
        return Err(StoreRoundError::EpisodeCount {
            dataset,
            selector_episodes: episodes.len(),
            stored_episodes: stored.len(),
        });
    }
    for (index, (record, episode)) in stored.iter().zip(episodes).enumerate() {
        if record.step_count != episode.len {
            return Err(StoreRoundError::EpisodeLength {
                index,
                episode: record.id,
                selector_steps: episode.len,
                stored_steps: record.step_count,
            });
        }
    }
    Ok(stored.iter().map(|record| record.id).collect())
}

/// Converts a stored query to a pair of episode indices, or `None` when a segment lies
/// in another dataset.
fn dataset_pair(query: &NewQuery, index_of: &HashMap<EpisodeId, usize>) -> Option<SegmentPair> {
    let segment = |side: SegmentRef| -> Option<DatasetSegment> {
        Some(DatasetSegment {
            episode: *index_of.get(&side.episode)?,
            start: side.start,
            length: side.length,
        })
    };
    Some(SegmentPair {
        left: segment(query.left)?,
        right: segment(query.right)?,
    })
}

fn new_query(
    selected: &SelectedPair,
    episode_ids: &[EpisodeId],
    kind: SelectorKind,
    encoder_version: Option<String>,
    now_unix_secs: f64,
) -> NewQuery {
    // The selector only returns segments of its own episodes, whose count was checked
    // against `episode_ids`.
    let to_ref = |segment: DatasetSegment| segment.to_store_ref(episode_ids[segment.episode]);
    NewQuery {
        left: to_ref(selected.pair.left),
        right: to_ref(selected.pair.right),
        selector: kind.as_str().to_owned(),
        encoder_version,
        created_at_unix_secs: now_unix_secs,
        expires_at_unix_secs: None,
    }
}
