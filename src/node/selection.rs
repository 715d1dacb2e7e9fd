//! Round selection for the live node: random pairs (the MR rule) while no model set with an
//! encoder and a reward model is active, CLARIFY once the registry's active set has both.

use std::collections::{HashMap, HashSet};

use tracing::{info, warn};

use super::NodeError;
use super::config::NodeSettings;
use crate::dataset::Episode;
use crate::infer::Runtime;
use crate::learn::encoder::{EncoderConfig, OnnxEncoder};
use crate::registry::{ModelSet, Registry};
use crate::select::{
    DatasetSegment, Embedder, OnnxRewardScorer, QuerySelector, RoundModels, SelectConfig,
    StoredRound, round_seed, select_and_store_round,
};
use crate::store::{DatasetId, EpisodeId, Query, Store};

/// Cache key of an embedding: episode, first step, length and encoder version.
type EmbeddingKey = (EpisodeId, usize, usize, String);

/// The ONNX files of the active model set that CLARIFY rounds read.
#[derive(Clone, Debug, PartialEq)]
struct ClarifyModels {
    version: String,
    encoder: std::path::PathBuf,
    reward: std::path::PathBuf,
}

/// Selects rounds of queries and stores them with their expiry time.
pub struct RoundPlanner {
    select: SelectConfig,
    encoder_config: EncoderConfig,
    seed: u64,
    round_index: u64,
    lifetime_secs: f64,
    registry: Registry,
    infer: crate::infer::InferConfig,
    runtime: Option<Runtime>,
    active_version: Option<String>,
    models: Option<ClarifyModels>,
    embeddings: HashMap<EmbeddingKey, Vec<f32>>,
    execution_provider: Option<String>,
}

impl std::fmt::Debug for RoundPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundPlanner")
            .field("round_index", &self.round_index)
            .field("active_version", &self.active_version)
            .field("models", &self.models)
            .field("cached_embeddings", &self.embeddings.len())
            .finish_non_exhaustive()
    }
}

impl RoundPlanner {
    /// Creates a planner that reads model sets from `settings.models_dir`.
    pub fn new(settings: &NodeSettings) -> Result<Self, NodeError> {
        Ok(Self {
            select: settings.select_config(),
            encoder_config: settings.encoder_config(),
            seed: settings.seed,
            round_index: 0,
            lifetime_secs: settings.query_lifetime_secs,
            registry: Registry::open(&settings.models_dir, settings.retrain.keep)?,
            infer: settings.infer.clone(),
            runtime: None,
            active_version: None,
            models: None,
            embeddings: HashMap::new(),
            execution_provider: None,
        })
    }

    /// Returns the version of the model set whose encoder CLARIFY rounds use, if any.
    pub fn encoder_version(&self) -> Option<&str> {
        self.models.as_ref().map(|models| models.version.as_str())
    }

    /// Returns the ONNX Runtime provider of the last CLARIFY round's models.
    pub fn execution_provider(&self) -> Option<&str> {
        self.execution_provider.as_deref()
    }

    /// Returns the number of cached segment embeddings.
    pub fn cached_embeddings(&self) -> usize {
        self.embeddings.len()
    }

    /// Reads the registry's active version and, when it changed, the paths of its encoder
    /// and reward model. A set without both, or one that fails its checks, leaves the
    /// planner on random rounds.
    pub fn refresh_models(&mut self) {
        let current = match self.registry.current() {
            Ok(pointer) => pointer.map(|pointer| pointer.version),
            Err(error) => {
                warn!(%error, "cannot read the active model version; keeping the models in use");
                return;
            }
        };
        if current == self.active_version {
            return;
        }
        self.active_version = current.clone();
        self.models = current.and_then(|version| match self.registry.load(&version) {
            Ok(set) => clarify_models(&set),
            Err(error) => {
                warn!(%version, %error, "the active model set failed its checks; selecting random pairs");
                None
            }
        });
        // Embeddings of an older encoder are never read again.
        let version = self.encoder_version().map(str::to_owned);
        self.embeddings
            .retain(|key, _| Some(key.3.as_str()) == version.as_deref());
        match &self.models {
            Some(models) => info!(version = %models.version, "CLARIFY rounds use this model set"),
            None => info!(
                active = ?self.active_version,
                "no active model set with an encoder and a reward model; selecting random pairs"
            ),
        }
    }

    /// Selects up to `room` queries (at most M) on the segments of `dataset` and stores them
    /// with expiry time `now_unix_secs` plus the query lifetime. Returns the stored queries;
    /// none when the dataset has too few segments.
    pub fn select_round(
        &mut self,
        store: &mut Store,
        dataset: DatasetId,
        room: usize,
        now_unix_secs: f64,
    ) -> Result<Vec<Query>, NodeError> {
        let episodes = stored_episodes(store, dataset)?;
        let config = SelectConfig {
            queries_per_round: self.select.queries_per_round.min(room),
            ..self.select.clone()
        };
        if config.queries_per_round == 0 || episodes.is_empty() {
            return Ok(Vec::new());
        }
        let selector = QuerySelector::new(config, &episodes)?;
        if selector.pool().valid_pair_count() == 0 {
            return Ok(Vec::new());
        }
        let seed = round_seed(self.seed, self.round_index);
        self.round_index += 1;

        let round = match self.models.clone() {
            Some(models) => {
                match self.clarify_round(store, dataset, &selector, seed, &models, now_unix_secs) {
                    Ok(round) => round,
                    Err(error) => {
                        warn!(
                            version = %models.version,
                            %error,
                            "CLARIFY round failed; selecting random pairs this round"
                        );
                        random_round(store, dataset, &selector, seed, now_unix_secs)?
                    }
                }
            }
            None => random_round(store, dataset, &selector, seed, now_unix_secs)?,
        };

        let expires_at = now_unix_secs + self.lifetime_secs;
        let mut queries = round.queries;
        for query in &mut queries {
            // NOTE: a crash between the insert and this update leaves the query without an
            // expiry time, so it stays open until answered.
            store.set_query_expiry(query.id, Some(expires_at))?;
            query.query.expires_at_unix_secs = Some(expires_at);
        }
        info!(
            selector = %round.selection.selector,
            queries = queries.len(),
            shortfall = round.shortfall,
            missing = round.missing,
            "stored a round of queries"
        );
        Ok(queries)
    }

    fn clarify_round(
        &mut self,
        store: &mut Store,
        dataset: DatasetId,
        selector: &QuerySelector,
        seed: u64,
        models: &ClarifyModels,
        now_unix_secs: f64,
    ) -> Result<StoredRound, NodeError> {
        if self.runtime.is_none() {
            self.runtime = Some(Runtime::new(self.infer.clone())?);
        }
        let runtime = self.runtime.as_ref().expect("runtime created above");
        let record = store.dataset(dataset)?;
        let episode_ids: Vec<EpisodeId> = store.episodes(dataset)?.iter().map(|e| e.id).collect();
        let inputs = crate::train::load_inputs(store, record)?;
        let encoder = OnnxEncoder::load(
            runtime,
            &models.encoder,
            &inputs.dataset,
            &self.encoder_config,
            seed,
        )?;
        let mut scorer = OnnxRewardScorer::load(runtime, &models.reward, &inputs.dataset)?;
        self.execution_provider = Some(scorer.model().provider().as_str().to_owned());
        let mut embedder = CachedEmbedder {
            inner: encoder,
            version: &models.version,
            episode_ids: &episode_ids,
            cache: &mut self.embeddings,
        };
        let round = select_and_store_round(
            store,
            dataset,
            selector,
            seed,
            RoundModels::Clarify {
                embedder: &mut embedder,
                scorer: &mut scorer,
            },
            Some(&models.version),
            now_unix_secs,
        )?;
        Ok(round)
    }
}

fn random_round(
    store: &mut Store,
    dataset: DatasetId,
    selector: &QuerySelector,
    seed: u64,
    now_unix_secs: f64,
) -> Result<StoredRound, NodeError> {
    Ok(select_and_store_round(
        store,
        dataset,
        selector,
        seed,
        RoundModels::random(),
        None,
        now_unix_secs,
    )?)
}

/// Returns the encoder and reward model paths of a set that has both.
fn clarify_models(set: &ModelSet) -> Option<ClarifyModels> {
    let networks = &set.manifest.networks;
    Some(ClarifyModels {
        version: set.version.clone(),
        encoder: set.path.join(&networks.encoder.as_ref()?.file),
        reward: set.path.join(&networks.reward.as_ref()?.file),
    })
}

/// Returns the stored episodes of `dataset` in episode order, laid end to end as the
/// selector and the training job see them.
fn stored_episodes(store: &Store, dataset: DatasetId) -> Result<Vec<Episode>, NodeError> {
    let mut start = 0;
    Ok(store
        .episodes(dataset)?
        .into_iter()
        .map(|record| {
            let episode = Episode {
                start,
                len: record.step_count,
                end: record.end,
            };
            start += record.step_count;
            episode
        })
        .collect())
}

/// An encoder with a cache of embeddings by episode, first step, length and encoder
/// version, so that each segment is embedded once per encoder version.
struct CachedEmbedder<'a, E> {
    inner: E,
    version: &'a str,
    episode_ids: &'a [EpisodeId],
    cache: &'a mut HashMap<EmbeddingKey, Vec<f32>>,
}

impl<E> CachedEmbedder<'_, E> {
    fn key(&self, segment: &DatasetSegment) -> EmbeddingKey {
        // The selector draws segments of its own episodes, which `select_and_store_round`
        // checked against the stored episodes that `episode_ids` lists.
        (
            self.episode_ids[segment.episode],
            segment.start,
            segment.length,
            self.version.to_owned(),
        )
    }
}

impl<E: Embedder> Embedder for CachedEmbedder<'_, E> {
    type Error = E::Error;

    fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, E::Error> {
        let mut missing = Vec::new();
        let mut missing_keys = Vec::new();
        let mut queued = HashSet::new();
        for segment in segments {
            let key = self.key(segment);
            if !self.cache.contains_key(&key) && queued.insert(key.clone()) {
                missing.push(*segment);
                missing_keys.push(key);
            }
        }
        if !missing.is_empty() {
            let fresh = self.inner.embed(&missing)?;
            for (key, embedding) in missing_keys.into_iter().zip(fresh) {
                self.cache.insert(key, embedding);
            }
        }
        // A missing embedding comes back empty, which the selector rejects.
        Ok(segments
            .iter()
            .map(|segment| {
                self.cache
                    .get(&self.key(segment))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// Embeds a segment as `[episode, start]` and records every segment it was given.
    #[derive(Default)]
    struct CountingEmbedder {
        embedded: Vec<DatasetSegment>,
    }

    impl Embedder for CountingEmbedder {
        type Error = Infallible;

        fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, Infallible> {
            self.embedded.extend_from_slice(segments);
            Ok(segments
                .iter()
                .map(|s| vec![s.episode as f32, s.start as f32])
                .collect())
        }
    }

    fn segment(episode: usize, start: usize) -> DatasetSegment {
        DatasetSegment {
            episode,
            start,
            length: 5,
        }
    }

    #[test]
    fn cache_embeds_each_segment_once_per_version() {
        let episode_ids = [EpisodeId(10), EpisodeId(11)];
        let mut cache = HashMap::new();
        let mut first = CachedEmbedder {
            inner: CountingEmbedder::default(),
            version: "v1",
            episode_ids: &episode_ids,
            cache: &mut cache,
        };
        let batch = [segment(0, 0), segment(1, 3), segment(0, 0)];
        let embeddings = first.embed(&batch).expect("embed");
        assert_eq!(embeddings, [vec![0.0, 0.0], vec![1.0, 3.0], vec![0.0, 0.0]]);
        assert_eq!(first.inner.embedded, [segment(0, 0), segment(1, 3)]);

        // Later calls embed only the new segments.
        let embeddings = first.embed(&[segment(1, 3), segment(1, 4)]).expect("embed");
        assert_eq!(embeddings, [vec![1.0, 3.0], vec![1.0, 4.0]]);
        assert_eq!(first.inner.embedded.len(), 3);

        // A new encoder version embeds again.
        let mut second = CachedEmbedder {
            inner: CountingEmbedder::default(),
            version: "v2",
            episode_ids: &episode_ids,
            cache: &mut cache,
        };
        second.embed(&[segment(0, 0)]).expect("embed");
        assert_eq!(second.inner.embedded, [segment(0, 0)]);
        assert_eq!(cache.len(), 4);
        assert!(cache.contains_key(&(EpisodeId(11), 4, 5, "v1".to_owned())));
    }
}
