//! Query selection rounds: pair rules, pool exhaustion, determinism, disagreement ranking,
//! CLARIFY top-ups and fallbacks, model errors and configuration.

mod select_support;

use std::collections::HashSet;
use std::fmt;

use clarify::Answer;
use clarify::select::{
    AskedPairs, ClarifyFallback, DatasetSegment, DisagreementScorer, Embedder, LabelledPair,
    QuerySelector, RoundSelection, SegmentPair, SelectConfig, SelectError, SelectorKind,
    round_seed,
};
use select_support::{
    EpisodeEmbedder, RecordingScorer, ReturnEmbedder, episodes_of_lengths, with_captured_warnings,
};

fn config(segment_length: usize, queries_per_round: usize, pool_factor: usize) -> SelectConfig {
    SelectConfig {
        segment_length,
        queries_per_round,
        pool_factor,
        ..SelectConfig::default()
    }
}

fn segment(episode: usize, start: usize, length: usize) -> DatasetSegment {
    DatasetSegment {
        episode,
        start,
        length,
    }
}

fn labelled(left: DatasetSegment, right: DatasetSegment, answer: Answer) -> LabelledPair {
    LabelledPair {
        pair: SegmentPair { left, right },
        answer,
    }
}

/// Runs one round of `kind` with a fresh scorer.
fn run_round(
    selector: &QuerySelector,
    kind: SelectorKind,
    seed: u64,
    asked: &AskedPairs,
    buffer: &[LabelledPair],
    embedder: &mut ReturnEmbedder,
) -> Result<RoundSelection, SelectError> {
    let mut scorer = RecordingScorer::default();
    match kind {
        SelectorKind::Random => Ok(selector.select_random(seed, asked)),
        SelectorKind::Disagreement => selector.select_by_disagreement(seed, asked, &mut scorer),
        SelectorKind::Clarify => {
            selector.select_clarify(seed, asked, buffer, embedder, &mut scorer)
        }
    }
}

/// Checks the pair rules of one round against the pairs asked before it.
fn check_round(selection: &RoundSelection, selector: &QuerySelector, asked: &AskedPairs) {
    let length = selector.config().segment_length;
    let mut in_round = HashSet::new();
    for selected in &selection.pairs {
        let pair = selected.pair;
        for side in [pair.left, pair.right] {
            assert!(
                selector.pool().contains(&side),
                "{side} is not a pool segment"
            );
            assert_eq!(side.length, length, "{side}");
        }
        assert_ne!(pair.left, pair.right, "segment paired with itself: {pair}");
        assert!(!pair.left.overlaps(&pair.right), "overlapping pair {pair}");
        assert!(
            !asked.contains(&pair),
            "pair {pair} asked in an earlier round"
        );
        assert!(
            in_round.insert(pair.unordered_key()),
            "pair {pair} repeated"
        );
    }
}

#[test]
fn selectors_never_repeat_or_overlap_pairs() -> Result<(), SelectError> {
    let datasets: [(&[usize], usize); 4] = [
        (&[5, 9, 3, 12], 5),
        (&[7], 3),
        (&[11, 4, 6, 3], 3),
        (&[13, 2, 9, 5, 8], 4),
    ];
    for (lengths, segment_length) in datasets {
        let episodes = episodes_of_lengths(lengths);
        let selector = QuerySelector::new(config(segment_length, 6, 3), &episodes)?;
        for kind in [
            SelectorKind::Random,
            SelectorKind::Disagreement,
            SelectorKind::Clarify,
        ] {
            for seed in 0..12 {
                let mut embedder = ReturnEmbedder::new(&episodes, 1.0);
                let mut asked = AskedPairs::new();
                let mut buffer = Vec::new();
                for round in 0..5 {
                    let round_kind = kind.for_round(round);
                    let selection = run_round(
                        &selector,
                        round_kind,
                        round_seed(seed, round as u64),
                        &asked,
                        &buffer,
                        &mut embedder,
                    )?;

                    check_round(&selection, &selector, &asked);
                    let expected = selection.candidate_count.min(6);
                    assert_eq!(selection.pairs.len(), expected, "{lengths:?} {kind} {seed}");

                    for selected in &selection.pairs {
                        asked.insert(selected.pair);
                        // Returns within 0.5 of each other are "can't tell".
                        let left = embedder.segment_return(&selected.pair.left);
                        let right = embedder.segment_return(&selected.pair.right);
                        let answer = if (left - right).abs() <= 0.5 {
                            Answer::CantTell
                        } else if left > right {
                            Answer::Left
                        } else {
                            Answer::Right
                        };
                        buffer.push(LabelledPair {
                            pair: selected.pair,
                            answer,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn random_round_fills_m_from_large_pool() {
    let episodes = episodes_of_lengths(&[200, 150, 90]);
    let selector = QuerySelector::new(config(50, 50, 10), &episodes).expect("valid config");

    let selection = selector.select_random(1, &AskedPairs::new());

    assert_eq!(selection.pairs.len(), 50);
    assert_eq!(selection.selector, SelectorKind::Random);
    assert!(!selection.pool_exhausted);
    assert!(selection.pairs.iter().all(|p| p.distance.is_none()));
    assert!(selection.pairs.iter().all(|p| p.disagreement.is_none()));
}

#[test]
fn exhausted_pool_returns_fewer_pairs() {
    // H = 3: episodes of exactly 3 steps give one segment each, so three segments form
    // exactly three pairs; the 2-step episode gives none.
    let episodes = episodes_of_lengths(&[3, 2, 3, 3]);
    let selector = QuerySelector::new(config(3, 5, 10), &episodes).expect("valid config");
    let mut asked = AskedPairs::new();

    let (first, log) = with_captured_warnings(|| selector.select_random(7, &asked));

    assert_eq!(first.pairs.len(), 3);
    assert!(first.pool_exhausted);
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("candidate pool ran out"), "{log}");

    asked.extend(first.pairs.iter().map(|p| p.pair));
    let (second, log) = with_captured_warnings(|| selector.select_random(8, &asked));
    assert!(second.pairs.is_empty());
    assert!(second.pool_exhausted);
    assert!(log.contains("candidate pool ran out"), "{log}");
}

#[test]
fn overlapping_segments_give_no_pairs() -> Result<(), SelectError> {
    // Starts 0 and 1 of a 4-step episode with H = 3 overlap, so no pair is valid.
    let episodes = episodes_of_lengths(&[4]);
    let selector = QuerySelector::new(config(3, 5, 10), &episodes)?;
    let mut scorer = RecordingScorer::default();

    let selection = selector.select_by_disagreement(0, &AskedPairs::new(), &mut scorer)?;

    assert!(selection.pairs.is_empty());
    assert!(selection.pool_exhausted);
    assert_eq!(selector.pool().valid_pair_count(), 0);
    Ok(())
}

#[test]
fn small_pool_limits_candidates() -> Result<(), SelectError> {
    // Twelve one-segment episodes: 66 pairs, fewer than M · L = 500 candidates.
    let episodes = episodes_of_lengths(&[4; 12]);
    let selector = QuerySelector::new(config(4, 50, 10), &episodes)?;
    let mut scorer = RecordingScorer::default();

    let selection = selector.select_by_disagreement(3, &AskedPairs::new(), &mut scorer)?;

    assert_eq!(selection.candidate_count, 66);
    assert!(selection.pool_exhausted);
    assert_eq!(selection.pairs.len(), 50);
    Ok(())
}

#[test]
fn valid_pair_count_matches_enumeration() {
    let episodes = episodes_of_lengths(&[7, 3, 10, 2, 5]);
    for length in 1..=8 {
        let selector = QuerySelector::new(config(length, 1, 1), &episodes).expect("valid");
        let pool = selector.pool();
        let mut count = 0u128;
        for a in 0..pool.len() {
            for b in a + 1..pool.len() {
                if !pool.segment(a).overlaps(&pool.segment(b)) {
                    count += 1;
                }
            }
        }
        assert_eq!(pool.valid_pair_count(), count, "H = {length}");
    }
}

#[test]
fn same_seed_gives_same_round() -> Result<(), SelectError> {
    let episodes = episodes_of_lengths(&[120, 80, 97, 60]);
    let selector = QuerySelector::new(config(10, 8, 5), &episodes)?;
    let asked = AskedPairs::new();
    let buffer = answered_buffer(&episodes, 10);

    for kind in [
        SelectorKind::Random,
        SelectorKind::Disagreement,
        SelectorKind::Clarify,
    ] {
        let mut embedder = ReturnEmbedder::new(&episodes, 2.0);
        let first = run_round(&selector, kind, 99, &asked, &buffer, &mut embedder)?;
        let again = run_round(&selector, kind, 99, &asked, &buffer, &mut embedder)?;
        let other = run_round(&selector, kind, 100, &asked, &buffer, &mut embedder)?;

        assert_eq!(first, again, "{kind}");
        assert_ne!(
            first.pairs, other.pairs,
            "{kind}: seeds 99 and 100 gave the same pairs"
        );
    }
    Ok(())
}

/// Forty random pairs, answered by return difference with a threshold
/// that leaves both clear and "can't tell" answers, plus one skip.
fn answered_buffer(episodes: &[clarify::Episode], length: usize) -> Vec<LabelledPair> {
    let selector = QuerySelector::new(config(length, 40, 1), episodes).expect("valid");
    let embedder = ReturnEmbedder::new(episodes, 1.0);
    let mut buffer: Vec<LabelledPair> = selector
        .select_random(5, &AskedPairs::new())
        .pairs
        .iter()
        .map(|selected| {
            let left = embedder.segment_return(&selected.pair.left);
            let right = embedder.segment_return(&selected.pair.right);
            let answer = if (left - right).abs() <= 0.4 {
                Answer::CantTell
            } else if left > right {
                Answer::Left
            } else {
                Answer::Right
            };
            LabelledPair {
                pair: selected.pair,
                answer,
            }
        })
        .collect();
    buffer[0].answer = Answer::Skip;
    assert!(buffer.iter().any(|entry| entry.answer == Answer::CantTell));
    assert!(buffer.iter().any(|entry| entry.answer.is_clear()));
    buffer
}

#[test]
fn disagreement_selector_picks_top_m_scores() -> Result<(), SelectError> {
    let episodes = episodes_of_lengths(&[60, 45, 33, 70]);
    let selector = QuerySelector::new(config(5, 10, 10), &episodes)?;
    let mut scorer = RecordingScorer::default();

    let selection = selector.select_by_disagreement(11, &AskedPairs::new(), &mut scorer)?;

    assert_eq!(scorer.scored.len(), 100);
    assert_eq!(selection.candidate_count, 100);
    let mut all_scores: Vec<f64> = scorer.scored.iter().map(|(_, score)| *score).collect();
    all_scores.sort_by(|a, b| b.total_cmp(a));
    let picked: Vec<f64> = selection
        .pairs
        .iter()
        .map(|p| p.disagreement.expect("scored"))
        .collect();
    assert_eq!(picked, all_scores[..10]);
    for selected in &selection.pairs {
        let score = RecordingScorer::score_of(&selected.pair);
        assert_eq!(selected.disagreement, Some(score), "{}", selected.pair);
    }
    Ok(())
}

#[test]
fn scorer_and_embedder_called_in_batches() -> Result<(), SelectError> {
    let episodes = episodes_of_lengths(&[300, 280]);
    let mut config = config(20, 20, 10);
    config.batch_size = 64;
    let selector = QuerySelector::new(config, &episodes)?;
    let buffer = answered_buffer(&episodes, 20);
    let mut embedder = ReturnEmbedder::new(&episodes, 1.0);
    let mut scorer = RecordingScorer::default();

    selector.select_clarify(4, &AskedPairs::new(), &buffer, &mut embedder, &mut scorer)?;

    assert!(embedder.batches.len() >= 2, "{:?}", embedder.batches);
    assert!(
        embedder
            .batches
            .iter()
            .all(|&size| (1..=64).contains(&size))
    );
    assert_eq!(scorer.batches.iter().sum::<usize>(), 200);
    assert!(scorer.batches.iter().all(|&size| (1..=64).contains(&size)));
    Ok(())
}

/// Ten episodes of 2H steps: each has one non-overlapping pair inside it, so candidates
/// within one episode (embedding distance 0) are rare.
fn two_segment_episodes() -> Vec<clarify::Episode> {
    episodes_of_lengths(&[8; 10])
}

/// Clear answers at distances 0 (one episode) and 1, a "can't tell" at distance 1, with
/// [`EpisodeEmbedder`]: the target density favours distance 0.
fn distance_zero_buffer() -> Vec<LabelledPair> {
    vec![
        labelled(segment(0, 0, 4), segment(0, 4, 4), Answer::Left),
        labelled(segment(2, 0, 4), segment(2, 4, 4), Answer::Right),
        labelled(segment(0, 0, 4), segment(1, 0, 4), Answer::Left),
        labelled(segment(3, 0, 4), segment(4, 1, 4), Answer::CantTell),
        labelled(segment(5, 0, 4), segment(6, 2, 4), Answer::CantTell),
    ]
}

#[test]
fn low_acceptance_topped_up_to_m() -> Result<(), SelectError> {
    let episodes = two_segment_episodes();
    let selector = QuerySelector::new(config(4, 20, 2), &episodes)?;

    for seed in 0..6 {
        let mut scorer = RecordingScorer::default();
        let selection = selector.select_clarify(
            seed,
            &AskedPairs::new(),
            &distance_zero_buffer(),
            &mut EpisodeEmbedder::default(),
            &mut scorer,
        )?;

        // Only candidates inside one episode (distance 0) have a noticeable acceptance.
        let same_episode = scorer
            .scored
            .iter()
            .filter(|(pair, _)| pair.left.episode == pair.right.episode)
            .count();
        let accepted = selection.accepted_count.expect("rejection sampling ran");
        assert_eq!(selection.fallback, None);
        assert_eq!(selection.candidate_count, 40);
        assert_eq!(accepted, same_episode, "seed {seed}");
        assert!(accepted < 20, "seed {seed}: {accepted} accepted");
        assert_eq!(selection.pairs.len(), 20, "seed {seed}");
        assert_eq!(selection.top_up_count, 20 - accepted, "seed {seed}");

        let (kept, top_ups) = selection.pairs.split_at(accepted);
        assert!(kept.iter().all(|p| !p.top_up && p.distance == Some(0.0)));
        assert!(top_ups.iter().all(|p| p.top_up));
        for group in [kept, top_ups] {
            let scores: Vec<f64> = group.iter().map(|p| p.disagreement.unwrap()).collect();
            assert!(
                scores.windows(2).all(|w| w[0] >= w[1]),
                "seed {seed}: {scores:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn top_ups_are_best_rejected_candidates() -> Result<(), SelectError> {
    let episodes = two_segment_episodes();
    let selector = QuerySelector::new(config(4, 20, 2), &episodes)?;
    let mut scorer = RecordingScorer::default();

    let selection = selector.select_clarify(
        2,
        &AskedPairs::new(),
        &distance_zero_buffer(),
        &mut EpisodeEmbedder::default(),
        &mut scorer,
    )?;

    let chosen: HashSet<_> = selection.pairs.iter().map(|p| p.pair).collect();
    let best_left_out = scorer
        .scored
        .iter()
        .filter(|(pair, _)| !chosen.contains(pair))
        .map(|(_, score)| *score)
        .fold(f64::NEG_INFINITY, f64::max);
    let worst_top_up = selection
        .pairs
        .iter()
        .filter(|p| p.top_up)
        .map(|p| p.disagreement.unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(selection.top_up_count > 0);
    assert!(
        worst_top_up >= best_left_out,
        "{worst_top_up} < {best_left_out}"
    );
    Ok(())
}

#[test]
fn trace_records_every_candidate_and_reference_query() -> Result<(), SelectError> {
    let episodes = two_segment_episodes();
    let selector = QuerySelector::new(config(4, 20, 2), &episodes)?;
    let buffer = distance_zero_buffer();
    let selection = selector.select_clarify(
        2,
        &AskedPairs::new(),
        &buffer,
        &mut EpisodeEmbedder::default(),
        &mut RecordingScorer::default(),
    )?;

    let trace = selection
        .trace
        .as_ref()
        .expect("a CLARIFY round has a trace");
    assert_eq!(trace.candidates.len(), selection.candidate_count);
    assert_eq!(
        trace.reference.len(),
        selector.config().pool_size().unwrap()
    );
    let accepted: HashSet<_> = trace
        .candidates
        .iter()
        .filter(|candidate| candidate.accepted)
        .map(|candidate| candidate.pair)
        .collect();
    assert_eq!(Some(accepted.len()), selection.accepted_count);
    for candidate in &trace.candidates {
        assert!((0.0..=1.0).contains(&candidate.acceptance), "{candidate:?}");
        if candidate.accepted {
            assert!(candidate.acceptance > 0.0, "{candidate:?}");
        }
    }
    for selected in &selection.pairs {
        assert_eq!(accepted.contains(&selected.pair), !selected.top_up);
        let examined = trace
            .candidates
            .iter()
            .find(|candidate| candidate.pair == selected.pair)
            .expect("every selected pair is a candidate");
        assert_eq!(Some(examined.distance), selected.distance);
        assert_eq!(Some(examined.disagreement), selected.disagreement);
    }
    let clear_in_buffer = buffer.iter().any(|entry| entry.answer.is_clear());
    assert_eq!(
        trace.reference.iter().any(|point| point.clear),
        clear_in_buffer
    );
    Ok(())
}

/// Embeds a segment as `[episode + 0.01 · start]`.
struct StartEmbedder;

impl Embedder for StartEmbedder {
    type Error = std::convert::Infallible;

    fn embed(
        &mut self,
        segments: &[DatasetSegment],
    ) -> Result<Vec<Vec<f32>>, std::convert::Infallible> {
        Ok(segments
            .iter()
            .map(|s| vec![s.episode as f32 + 0.01 * s.start as f32])
            .collect())
    }
}

#[test]
fn candidates_outside_bins_all_topped_up() -> Result<(), SelectError> {
    // One-step buffer segments give reference distances 0.05 to 0.07. Candidates of H = 4
    // steps are 0.04 apart inside an episode (starts 0 and 4) and at least 0.96 apart
    // across episodes, so none falls inside the reference bins and g is undefined.
    let episodes = two_segment_episodes();
    let selector = QuerySelector::new(config(4, 10, 3), &episodes)?;
    let buffer = vec![
        labelled(segment(0, 0, 1), segment(0, 5, 1), Answer::Left),
        labelled(segment(0, 1, 1), segment(0, 7, 1), Answer::Right),
        labelled(segment(1, 0, 1), segment(1, 7, 1), Answer::CantTell),
    ];
    let mut scorer = RecordingScorer::default();

    let selection = selector.select_clarify(
        6,
        &AskedPairs::new(),
        &buffer,
        &mut StartEmbedder,
        &mut scorer,
    )?;

    assert_eq!(selection.fallback, None);
    assert_eq!(selection.accepted_count, Some(0));
    assert_eq!(selection.top_up_count, 10);
    assert_eq!(selection.pairs.len(), 10);
    assert!(selection.pairs.iter().all(|p| p.top_up));
    Ok(())
}

#[test]
fn no_ambiguous_answers_falls_back() -> Result<(), SelectError> {
    let episodes = episodes_of_lengths(&[60, 45, 33, 70]);
    let selector = QuerySelector::new(config(5, 10, 10), &episodes)?;
    let buffer = vec![
        labelled(segment(0, 0, 5), segment(1, 0, 5), Answer::Left),
        labelled(segment(2, 0, 5), segment(3, 0, 5), Answer::Right),
        labelled(segment(2, 5, 5), segment(3, 9, 5), Answer::Skip),
    ];
    let mut embedder = EpisodeEmbedder::default();

    let ((clarify, oprl), log) = with_captured_warnings(|| {
        let clarify = selector.select_clarify(
            21,
            &AskedPairs::new(),
            &buffer,
            &mut embedder,
            &mut RecordingScorer::default(),
        );
        let oprl = selector.select_by_disagreement(
            21,
            &AskedPairs::new(),
            &mut RecordingScorer::default(),
        );
        (clarify, oprl)
    });
    let (clarify, oprl) = (clarify?, oprl?);

    assert_eq!(
        clarify.fallback,
        Some(ClarifyFallback::NoAmbiguousReference)
    );
    assert_eq!(clarify.selector, SelectorKind::Clarify);
    assert_eq!(clarify.accepted_count, None);
    assert_eq!(clarify.pairs, oprl.pairs);
    assert_eq!(clarify.trace, None);
    assert_eq!(embedder.calls, 0);
    assert!(log.contains("falls back"), "{log}");
    Ok(())
}

#[test]
fn buffer_of_skips_falls_back() -> Result<(), SelectError> {
    let episodes = episodes_of_lengths(&[60, 45]);
    let selector = QuerySelector::new(config(5, 10, 10), &episodes)?;
    let skips = vec![labelled(segment(0, 0, 5), segment(1, 0, 5), Answer::Skip)];
    let ambiguous_only = vec![labelled(
        segment(0, 0, 5),
        segment(1, 0, 5),
        Answer::CantTell,
    )];

    for (buffer, reason) in [
        (Vec::new(), ClarifyFallback::NoReferenceAnswers),
        (skips, ClarifyFallback::NoReferenceAnswers),
        (ambiguous_only, ClarifyFallback::NoClearReference),
    ] {
        let selection = selector.select_clarify(
            1,
            &AskedPairs::new(),
            &buffer,
            &mut EpisodeEmbedder::default(),
            &mut RecordingScorer::default(),
        )?;
        assert_eq!(selection.fallback, Some(reason));
        assert_eq!(selection.pairs.len(), 10);
    }
    Ok(())
}

#[test]
fn buffer_segment_outside_dataset_rejected() {
    let episodes = episodes_of_lengths(&[60, 45]);
    let selector = QuerySelector::new(config(5, 10, 10), &episodes).expect("valid");
    let buffer = vec![
        labelled(segment(0, 0, 5), segment(1, 0, 5), Answer::Left),
        labelled(segment(0, 0, 5), segment(1, 41, 5), Answer::CantTell),
    ];

    let error = selector
        .select_clarify(
            1,
            &AskedPairs::new(),
            &buffer,
            &mut EpisodeEmbedder::default(),
            &mut RecordingScorer::default(),
        )
        .unwrap_err();

    assert!(
        matches!(error, SelectError::BufferSegment { index: 1, .. }),
        "{error:?}"
    );
    let source = std::error::Error::source(&error)
        .expect("segment error")
        .to_string();
    assert!(source.contains("45 steps"), "{source}");
}

#[derive(Debug)]
struct EncoderFailed;

impl fmt::Display for EncoderFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("encoder session failed")
    }
}

impl std::error::Error for EncoderFailed {}

/// An embedder that fails or returns invalid output.
enum BrokenEmbedder {
    Fails,
    DropsOne,
    NotFinite,
    ChangesDim,
}

impl Embedder for BrokenEmbedder {
    type Error = EncoderFailed;

    fn embed(&mut self, segments: &[DatasetSegment]) -> Result<Vec<Vec<f32>>, EncoderFailed> {
        let mut embeddings: Vec<Vec<f32>> =
            segments.iter().map(|s| vec![s.start as f32, 1.0]).collect();
        match self {
            BrokenEmbedder::Fails => return Err(EncoderFailed),
            BrokenEmbedder::DropsOne => {
                embeddings.pop();
            }
            BrokenEmbedder::NotFinite => embeddings[1][0] = f32::NAN,
            BrokenEmbedder::ChangesDim => embeddings[1].push(2.0),
        }
        Ok(embeddings)
    }
}

/// A scorer that returns negative disagreement.
struct NegativeScorer;

impl DisagreementScorer for NegativeScorer {
    type Error = EncoderFailed;

    fn disagreement(&mut self, pairs: &[SegmentPair]) -> Result<Vec<f64>, EncoderFailed> {
        Ok(vec![-0.5; pairs.len()])
    }
}

#[test]
fn model_errors_propagate_typed() {
    let episodes = episodes_of_lengths(&[60, 45, 33, 70]);
    let selector = QuerySelector::new(config(5, 10, 10), &episodes).expect("valid");
    let buffer = answered_buffer(&episodes, 5);
    let asked = AskedPairs::new();
    let run = |mut embedder: BrokenEmbedder| {
        selector
            .select_clarify(
                1,
                &asked,
                &buffer,
                &mut embedder,
                &mut RecordingScorer::default(),
            )
            .unwrap_err()
    };

    let failed = run(BrokenEmbedder::Fails);
    match &failed {
        SelectError::Embedder { source, .. } => assert!(source.is::<EncoderFailed>()),
        other => panic!("expected an embedder error, got {other:?}"),
    }
    assert!(matches!(
        run(BrokenEmbedder::DropsOne),
        SelectError::EmbeddingCount { .. }
    ));
    assert!(matches!(
        run(BrokenEmbedder::NotFinite),
        SelectError::NonFiniteEmbedding { .. }
    ));
    assert!(matches!(
        run(BrokenEmbedder::ChangesDim),
        SelectError::EmbeddingDim {
            expected: 2,
            found: 3,
            ..
        }
    ));

    let negative = selector
        .select_by_disagreement(1, &asked, &mut NegativeScorer)
        .unwrap_err();
    assert!(
        matches!(negative, SelectError::InvalidScore { value, .. } if value == -0.5),
        "{negative:?}"
    );
}

#[test]
fn first_round_is_random_for_every_method() {
    for kind in [
        SelectorKind::Random,
        SelectorKind::Disagreement,
        SelectorKind::Clarify,
    ] {
        assert_eq!(kind.for_round(0), SelectorKind::Random);
        assert_eq!(kind.for_round(1), kind);
        assert_eq!(kind.for_round(7), kind);
    }
    assert_eq!(SelectorKind::Clarify.to_string(), "clarify");
    assert_eq!(SelectorKind::Disagreement.as_str(), "disagreement");
}

#[test]
fn asked_pairs_ignore_order() {
    let a = segment(0, 0, 5);
    let b = segment(1, 3, 5);
    let mut asked = AskedPairs::new();

    assert!(asked.insert(SegmentPair { left: a, right: b }));
    assert!(!asked.insert(SegmentPair { left: b, right: a }));
    assert!(asked.contains(&SegmentPair { left: b, right: a }));
    assert_eq!(asked.len(), 1);
}

#[test]
fn segment_overlap_and_validation() {
    let episodes = episodes_of_lengths(&[10, 5]);

    assert!(segment(0, 0, 5).overlaps(&segment(0, 4, 5)));
    assert!(!segment(0, 0, 5).overlaps(&segment(0, 5, 5)));
    assert!(!segment(0, 0, 5).overlaps(&segment(1, 0, 5)));
    assert!(segment(1, 0, 5).validate(&episodes).is_ok());
    assert!(segment(1, 1, 5).validate(&episodes).is_err());
    assert!(segment(2, 0, 1).validate(&episodes).is_err());
    assert!(segment(0, 0, 0).validate(&episodes).is_err());
    assert_eq!(segment(1, 2, 3).global_start(&episodes), Some(12));
}

#[test]
fn config_defaults_and_unknown_fields() -> Result<(), serde_json::Error> {
    let config: SelectConfig = serde_json::from_str("{}")?;

    assert_eq!(config, SelectConfig::default());
    assert_eq!(config.segment_length, 50);
    assert_eq!(config.queries_per_round, 50);
    assert_eq!(config.pool_factor, 10);
    assert_eq!(config.bin_count, 32);
    assert_eq!(config.outlier_std_devs, 3.0);
    assert!(config.validate().is_ok());

    let unknown = serde_json::from_str::<SelectConfig>(r#"{"n_bins": 31}"#).unwrap_err();
    assert!(unknown.to_string().contains("n_bins"), "{unknown}");
    Ok(())
}

#[test]
fn config_validation_names_field_and_value() {
    let cases = [
        (
            SelectConfig {
                queries_per_round: 0,
                ..SelectConfig::default()
            },
            "queries_per_round",
            "0",
        ),
        (
            SelectConfig {
                pool_factor: 0,
                ..SelectConfig::default()
            },
            "pool_factor",
            "0",
        ),
        (
            SelectConfig {
                bin_count: 1,
                ..SelectConfig::default()
            },
            "bin_count",
            "1",
        ),
        (
            SelectConfig {
                segment_length: 0,
                ..SelectConfig::default()
            },
            "segment_length",
            "0",
        ),
        (
            SelectConfig {
                batch_size: 0,
                ..SelectConfig::default()
            },
            "batch_size",
            "0",
        ),
        (
            SelectConfig {
                draw_attempts_per_pair: 0,
                ..SelectConfig::default()
            },
            "draw_attempts_per_pair",
            "0",
        ),
        (
            SelectConfig {
                outlier_std_devs: f64::NAN,
                ..SelectConfig::default()
            },
            "outlier_std_devs",
            "NaN",
        ),
        (
            SelectConfig {
                outlier_std_devs: -1.0,
                ..SelectConfig::default()
            },
            "outlier_std_devs",
            "-1",
        ),
        (
            SelectConfig {
                pool_factor: usize::MAX,
                ..SelectConfig::default()
            },
            "pool_factor",
            "18446744073709551615",
        ),
    ];
    let episodes = episodes_of_lengths(&[60]);
    for (config, field, value) in cases {
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, field);
        assert_eq!(error.value, value, "{field}");
        let message = error.to_string();
        assert!(message.contains(&format!("{field} = {value}")), "{message}");

        let rejected = QuerySelector::new(config, &episodes).unwrap_err();
        assert!(matches!(rejected, SelectError::Config(_)), "{rejected:?}");
    }
}
