//! Simulated teachers: hand-computed answers of each rule, answer frequencies of the
//! stochastic teachers over many draws, and reproducibility for a seed.

use clarify::Answer;
use clarify::teacher::{
    BoltzmannTeacher, EqualTeacher, MistakeTeacher, MyopicTeacher, QueryRewards, Teacher,
    oracle_answer,
};

/// Number of draws for the frequency tests. The standard error of a frequency near 0.5 is
/// then about 0.0035, so the tolerance of 0.015 is over four standard errors.
const DRAWS: usize = 20_000;
const FREQUENCY_TOLERANCE: f64 = 0.015;

fn returns(return_left: f64, return_right: f64) -> QueryRewards<'static> {
    QueryRewards {
        left: &[],
        right: &[],
        return_left,
        return_right,
    }
}

fn share_of(answers: &[Answer], target: Answer) -> f64 {
    let count = answers.iter().filter(|&&answer| answer == target).count();
    count as f64 / answers.len() as f64
}

#[test]
fn oracle_prefers_higher_return() {
    assert_eq!(oracle_answer(3.0, 2.5), Answer::Left);
    assert_eq!(oracle_answer(-1.0, 0.0), Answer::Right);
    assert_eq!(oracle_answer(7.0, 7.0), Answer::CantTell);
    assert_eq!(oracle_answer(f64::NAN, 1.0), Answer::CantTell);
}

#[test]
fn query_rewards_sum_steps_in_f64() {
    let left = [0.5_f32, 0.25, 1.0];
    let right = [1.0_f32, 0.75];

    let query = QueryRewards::new(&left, &right);

    assert_eq!(query.return_left, 1.75);
    assert_eq!(query.return_right, 1.75);
    assert_eq!(Teacher::Oracle.answer(&query), Answer::CantTell);
}

#[test]
fn mistake_zero_probability_is_oracle() -> anyhow::Result<()> {
    let mut teacher = MistakeTeacher::new(0.0, 1)?;

    for _ in 0..1000 {
        assert_eq!(teacher.answer(2.0, 1.0), Answer::Left);
        assert_eq!(teacher.answer(1.0, 2.0), Answer::Right);
    }
    Ok(())
}

#[test]
fn mistake_one_probability_flips_every_clear_answer() -> anyhow::Result<()> {
    let mut teacher = MistakeTeacher::new(1.0, 2)?;

    for _ in 0..1000 {
        assert_eq!(teacher.answer(2.0, 1.0), Answer::Right);
        assert_eq!(teacher.answer(1.0, 2.0), Answer::Left);
        assert_eq!(teacher.answer(1.5, 1.5), Answer::CantTell);
    }
    Ok(())
}

#[test]
fn mistake_flip_frequency_matches_probability() -> anyhow::Result<()> {
    let mut teacher = Teacher::Mistake(MistakeTeacher::new(0.2, 3)?);

    let answers: Vec<Answer> = (0..DRAWS)
        .map(|_| teacher.answer(&returns(5.0, 4.0)))
        .collect();

    let flipped = share_of(&answers, Answer::Right);
    assert!(
        (flipped - 0.2).abs() < FREQUENCY_TOLERANCE,
        "flipped {flipped}"
    );
    assert_eq!(share_of(&answers, Answer::CantTell), 0.0);
    Ok(())
}

#[test]
fn mistake_cant_tell_consumes_no_draw() -> anyhow::Result<()> {
    let mut interleaved = MistakeTeacher::new(0.5, 4)?;
    let mut clear_only = MistakeTeacher::new(0.5, 4)?;

    for _ in 0..200 {
        assert_eq!(interleaved.answer(1.0, 1.0), Answer::CantTell);
        assert_eq!(interleaved.answer(2.0, 1.0), clear_only.answer(2.0, 1.0));
    }
    Ok(())
}

#[test]
fn stochastic_teachers_repeat_for_same_seed() -> anyhow::Result<()> {
    let draw = |mut teacher: Teacher| -> Vec<Answer> {
        (0..1000)
            .map(|index| teacher.answer(&returns(index as f64 * 0.01, 5.0)))
            .collect()
    };
    let mistake = |seed| MistakeTeacher::new(0.3, seed).map(Teacher::Mistake);
    let boltzmann = |seed| BoltzmannTeacher::new(0.8, seed).map(Teacher::Boltzmann);

    assert_eq!(draw(mistake(11)?), draw(mistake(11)?));
    assert_ne!(draw(mistake(11)?), draw(mistake(12)?));
    assert_eq!(draw(boltzmann(11)?), draw(boltzmann(11)?));
    assert_ne!(draw(boltzmann(11)?), draw(boltzmann(12)?));
    Ok(())
}

#[test]
fn myopic_weights_late_steps_more() -> anyhow::Result<()> {
    let teacher = MyopicTeacher::new(0.5)?;
    let left = [4.0_f32, 0.0, 0.0];
    let right = [0.0_f32, 0.0, 1.5];

    // Left: 4 · 0.5² = 1.0. Right: 1.5 · 0.5⁰ = 1.5. The undiscounted returns are 4 and 1.5.
    assert_eq!(teacher.discounted_return(&left), 1.0);
    assert_eq!(teacher.discounted_return(&right), 1.5);
    assert_eq!(teacher.discounted_return(&[1.0, 2.0, 3.0]), 4.25);
    assert_eq!(teacher.answer(&left, &right), Answer::Right);
    assert_eq!(oracle_answer(4.0, 1.5), Answer::Left);
    Ok(())
}

#[test]
fn myopic_reads_step_rewards_not_returns() -> anyhow::Result<()> {
    let left = [4.0_f32, 0.0, 0.0];
    let right = [0.0_f32, 0.0, 1.5];
    let query = QueryRewards::new(&left, &right);

    let mut myopic = Teacher::Myopic(MyopicTeacher::new(0.5)?);
    let mut undiscounted = Teacher::Myopic(MyopicTeacher::new(1.0)?);

    assert_eq!(myopic.answer(&query), Answer::Right);
    assert_eq!(undiscounted.answer(&query), Answer::Left);
    Ok(())
}

#[test]
fn myopic_gamma_one_sums_in_step_order() -> anyhow::Result<()> {
    let rewards = [0.1_f32, 0.2, 0.3, 1.0e8, -1.0e8];
    let teacher = MyopicTeacher::new(1.0)?;

    let expected = rewards.iter().map(|&reward| f64::from(reward)).sum::<f64>();

    assert_eq!(teacher.discounted_return(&rewards), expected);
    Ok(())
}

#[test]
fn boltzmann_probability_is_logistic_of_scaled_gap() -> anyhow::Result<()> {
    let teacher = BoltzmannTeacher::new(1.0, 0)?;
    let e = std::f64::consts::E;

    let probability = teacher.left_probability(1.0, 0.0);

    assert!((probability - e / (e + 1.0)).abs() < 1e-15, "{probability}");
    assert!((teacher.left_probability(0.0, 1.0) - 1.0 / (e + 1.0)).abs() < 1e-15);
    assert_eq!(teacher.left_probability(3.0, 3.0), 0.5);
    assert_eq!(
        BoltzmannTeacher::new(0.0, 0)?.left_probability(100.0, -100.0),
        0.5
    );
    Ok(())
}

#[test]
fn boltzmann_large_returns_do_not_overflow() -> anyhow::Result<()> {
    let teacher = BoltzmannTeacher::new(1.0, 0)?;

    assert_eq!(teacher.left_probability(1.0e4, 0.0), 1.0);
    assert_eq!(teacher.left_probability(0.0, 1.0e4), 0.0);
    assert_eq!(teacher.left_probability(1.0e4, 1.0e4), 0.5);
    let shifted = teacher.left_probability(-1.0e4, -1.0e4 + 1.0);
    assert!(
        (shifted - 1.0 / (1.0 + 1.0_f64.exp())).abs() < 1e-15,
        "{shifted}"
    );
    Ok(())
}

#[test]
fn boltzmann_left_frequency_matches_probability() -> anyhow::Result<()> {
    let mut teacher = BoltzmannTeacher::new(0.5, 5)?;
    // d = β · (R0 − R1) = 1, so P(left) = 1 / (1 + e⁻¹) ≈ 0.7311.
    let expected = 1.0 / (1.0 + (-1.0_f64).exp());

    let answers: Vec<Answer> = (0..DRAWS).map(|_| teacher.answer(12.0, 10.0)).collect();

    let left = share_of(&answers, Answer::Left);
    assert!((left - expected).abs() < FREQUENCY_TOLERANCE, "left {left}");
    assert_eq!(share_of(&answers, Answer::CantTell), 0.0);
    Ok(())
}

#[test]
fn boltzmann_answers_equal_returns_both_ways() -> anyhow::Result<()> {
    let mut teacher = BoltzmannTeacher::new(2.0, 6)?;

    let answers: Vec<Answer> = (0..DRAWS).map(|_| teacher.answer(1.0, 1.0)).collect();

    let left = share_of(&answers, Answer::Left);
    assert!((left - 0.5).abs() < FREQUENCY_TOLERANCE, "left {left}");
    assert_eq!(share_of(&answers, Answer::CantTell), 0.0);
    Ok(())
}

#[test]
fn equal_cant_tell_strictly_below_threshold() -> anyhow::Result<()> {
    let mut teacher = Teacher::Equal(EqualTeacher::new(2.0)?);

    assert_eq!(teacher.answer(&returns(10.0, 8.5)), Answer::CantTell);
    assert_eq!(teacher.answer(&returns(8.5, 10.0)), Answer::CantTell);
    assert_eq!(teacher.answer(&returns(10.0, 8.0)), Answer::Left);
    assert_eq!(teacher.answer(&returns(8.0, 10.0)), Answer::Right);
    Ok(())
}

#[test]
fn equal_zero_threshold_is_oracle() -> anyhow::Result<()> {
    let teacher = EqualTeacher::new(0.0)?;

    assert_eq!(teacher.answer(1.0, 1.0 + 1e-12), Answer::Right);
    assert_eq!(teacher.answer(1.0, 1.0), Answer::CantTell);
    Ok(())
}

#[test]
fn invalid_teacher_parameters_rejected() {
    for probability in [-0.1, 1.5, f64::NAN] {
        let error = MistakeTeacher::new(probability, 0).unwrap_err();
        assert!(error.to_string().contains("mistake probability"), "{error}");
    }
    for gamma in [-0.5, 1.01] {
        let error = MyopicTeacher::new(gamma).unwrap_err();
        assert!(error.to_string().contains("myopic gamma"), "{error}");
    }
    for beta in [-1.0, f64::INFINITY] {
        let error = BoltzmannTeacher::new(beta, 0).unwrap_err();
        assert!(error.to_string().contains("Boltzmann beta"), "{error}");
    }
    let error = EqualTeacher::new(-0.5).unwrap_err();
    assert_eq!(error.value, -0.5);
    assert!(error.to_string().contains("equal threshold"), "{error}");
}
