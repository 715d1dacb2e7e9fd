//! The encoder's training losses: reconstruction, norm, ambiguity and quadrilateral.
//!
//! Every function returns a one-element tensor, so that the losses can be weighted, summed
//! and differentiated together. The similarity of two embeddings is s(x, y) = −mean_k (x_k −
//! y_k)², the negative per-dimension squared difference.

use burn::prelude::{Device, Int, Tensor, TensorData};
use burn::tensor::activation::sigmoid;
use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::config::AmbiguityLossMode;

/// Returns the mean squared error between `predicted` and `target` actions (`[batch, K,
/// act]`) over the steps whose `mask` entry (`[batch, K]`, 1 real, 0 padding) is 1.
pub fn reconstruction_loss(predicted: Tensor<3>, target: Tensor<3>, mask: Tensor<2>) -> Tensor<1> {
    let [_, _, action_dim] = predicted.dims();
    let squared = (predicted - target).square().sum_dim(2).squeeze_dim::<2>(2);
    let real_steps = mask.clone().sum();
    (squared * mask).sum() / real_steps.mul_scalar(action_dim as f64)
}

/// Returns the mean over every batch element and position of (‖z‖₂ − 1)² for `z` `[batch,
/// positions, z_dim]`.
pub fn norm_loss(z: Tensor<3>) -> Tensor<1> {
    let norms = z.square().sum_dim(2).sqrt();
    norms.sub_scalar(1.0).square().mean()
}

/// Returns s(a_i, b_i) = −mean_k (a_ik − b_ik)² for each row i of `a` and `b` `[n, z_dim]`,
/// as `[n]`.
pub fn similarity(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a - b).square().mean_dim(1).neg().squeeze_dim::<1>(1)
}

/// Returns the ambiguity loss of pairs (`left[i]`, `right[i]`) (`[n, z_dim]`), where
/// `ambiguous[i]` marks a "can't tell" answer and the others are clear. See
/// [`AmbiguityLossMode`] for the two forms; an empty group contributes 0.
pub fn ambiguity_loss(
    left: Tensor<2>,
    right: Tensor<2>,
    ambiguous: &[bool],
    mode: AmbiguityLossMode,
) -> Tensor<1> {
    let device = left.device();
    let probabilities = sigmoid(similarity(left, right));
    let group_mean = |wanted: bool| -> Option<Tensor<1>> {
        let indices: Vec<usize> = (0..ambiguous.len())
            .filter(|&index| ambiguous[index] == wanted)
            .collect();
        (!indices.is_empty()).then(|| {
            probabilities
                .clone()
                .select(0, index_tensor(&indices, &device))
                .mean()
        })
    };
    let clear = group_mean(false);
    let unclear = group_mean(true);
    let zero = || Tensor::<1>::zeros([1], &device);
    match mode {
        AmbiguityLossMode::Paper => match (clear, unclear) {
            (Some(clear), Some(unclear)) => clear - unclear,
            (Some(clear), None) => clear,
            (None, Some(unclear)) => unclear.neg(),
            (None, None) => zero(),
        },
        AmbiguityLossMode::Official => match (clear, unclear) {
            (_, None) => zero(),
            (None, Some(unclear)) => unclear,
            (Some(clear), Some(_)) => clear,
        },
    }
}

/// Draws `partners` partner indices uniformly from 0..n for each of n clear queries, in the
/// order query 0's partners, query 1's partners, ... A query may draw itself.
pub fn draw_partners(n: usize, partners: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    (0..n * partners)
        .map(|_| {
            // Multiply-shift maps a 64-bit draw onto 0..n with a bias below 2⁻³².
            ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
        })
        .collect()
}

/// Returns the pairwise quadrilateral loss of n clear queries with the embeddings of their
/// preferred (`preferred`) and dispreferred (`dispreferred`) segments, `[n, z_dim]` each.
///
/// Copy c of query i = c / P (P = `partner_indices.len() / n`) is paired with query j =
/// `partner_indices[c]`, and the loss is the mean over copies of σ(s(P_i, N_j) + s(P_j, N_i)
/// − s(P_i, P_j) − s(N_i, N_j)). It is 0 without clear queries.
pub fn quadrilateral_loss(
    preferred: Tensor<2>,
    dispreferred: Tensor<2>,
    partner_indices: &[usize],
) -> Tensor<1> {
    let device = preferred.device();
    let [n, _] = preferred.dims();
    if n == 0 || partner_indices.is_empty() {
        return Tensor::zeros([1], &device);
    }
    let copies = partner_indices.len() / n;
    let own: Vec<usize> = (0..n * copies).map(|copy| copy / copies).collect();
    let own = index_tensor(&own, &device);
    let partner = index_tensor(partner_indices, &device);

    let preferred_i = preferred.clone().select(0, own.clone());
    let dispreferred_i = dispreferred.clone().select(0, own);
    let preferred_j = preferred.select(0, partner.clone());
    let dispreferred_j = dispreferred.select(0, partner);

    let logits = similarity(preferred_i.clone(), dispreferred_j.clone())
        + similarity(preferred_j.clone(), dispreferred_i.clone())
        - similarity(preferred_i, preferred_j)
        - similarity(dispreferred_i, dispreferred_j);
    sigmoid(logits).mean()
}

fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&index| index as i64).collect();
    Tensor::from_data(TensorData::new(values, [indices.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn device() -> Device {
        Device::flex()
    }

    fn matrix(rows: &[&[f32]]) -> Tensor<2> {
        let width = rows[0].len();
        let values: Vec<f32> = rows.iter().flat_map(|row| row.iter().copied()).collect();
        Tensor::from_data(TensorData::new(values, [rows.len(), width]), &device())
    }

    fn scalar(loss: Tensor<1>) -> f64 {
        f64::from(loss.into_scalar::<f32>())
    }

    fn logistic(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn reconstruction_loss_ignores_padding() {
        // Two windows of two steps with one action feature; the first window's first step is
        // padding with a large error that must not count.
        let predicted = Tensor::<3>::from_data(
            TensorData::new(vec![5.0_f32, 0.5, 0.0, 1.0], [2, 2, 1]),
            &device(),
        );
        let target = Tensor::<3>::from_data(
            TensorData::new(vec![-10.0_f32, 0.0, 0.0, 0.0], [2, 2, 1]),
            &device(),
        );
        let mask = matrix(&[&[0.0, 1.0], &[1.0, 1.0]]);
        // Real squared errors 0.25, 0, 1 over 3 steps.
        let loss = scalar(reconstruction_loss(predicted, target, mask));
        assert!((loss - 1.25 / 3.0).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn reconstruction_loss_averages_action_features() {
        let predicted =
            Tensor::<3>::from_data(TensorData::new(vec![1.0_f32, 2.0], [1, 1, 2]), &device());
        let target = Tensor::<3>::zeros([1, 1, 2], &device());
        let mask = matrix(&[&[1.0]]);
        let loss = scalar(reconstruction_loss(predicted, target, mask));
        assert!((loss - 2.5).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn norm_loss_of_unit_and_scaled_vectors() {
        // Norms 1, 2 and 0.5 give (0, 1, 0.25), mean 0.41666.
        let z = Tensor::<3>::from_data(
            TensorData::new(vec![0.6_f32, 0.8, 2.0, 0.0, 0.0, 0.5], [1, 3, 2]),
            &device(),
        );
        let loss = scalar(norm_loss(z));
        assert!((loss - 1.25 / 3.0).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn similarity_is_negative_mean_squared_difference() {
        let a = matrix(&[&[1.0, 2.0], &[0.0, 0.0]]);
        let b = matrix(&[&[1.0, 0.0], &[3.0, 1.0]]);
        let values = similarity(a, b)
            .into_data()
            .as_slice::<f32>()
            .unwrap()
            .to_vec();
        assert_eq!(values, vec![-2.0, -5.0]);
    }

    /// Pairs with similarities 0, −1 (clear) and −4 (ambiguous).
    fn mixed_pairs() -> (Tensor<2>, Tensor<2>, Vec<bool>) {
        let left = matrix(&[&[0.0, 0.0], &[1.0, 1.0], &[2.0, 2.0]]);
        let right = matrix(&[&[0.0, 0.0], &[0.0, 2.0], &[0.0, 0.0]]);
        (left, right, vec![false, false, true])
    }

    #[test]
    fn ambiguity_loss_paper_mode_with_both_groups() {
        let (left, right, ambiguous) = mixed_pairs();
        let loss = scalar(ambiguity_loss(
            left,
            right,
            &ambiguous,
            AmbiguityLossMode::Paper,
        ));
        let expected = (logistic(0.0) + logistic(-1.0)) / 2.0 - logistic(-4.0);
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    #[test]
    fn ambiguity_loss_official_mode_with_both_groups() {
        let (left, right, ambiguous) = mixed_pairs();
        let loss = scalar(ambiguity_loss(
            left,
            right,
            &ambiguous,
            AmbiguityLossMode::Official,
        ));
        let expected = (logistic(0.0) + logistic(-1.0)) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    #[test]
    fn ambiguity_loss_with_one_group_only() {
        let left = matrix(&[&[1.0, 1.0]]);
        let right = matrix(&[&[0.0, 2.0]]);
        let only_clear = [false];
        let only_ambiguous = [true];
        let paper = AmbiguityLossMode::Paper;
        let official = AmbiguityLossMode::Official;
        let cases = [
            (&only_clear, paper, logistic(-1.0)),
            (&only_ambiguous, paper, -logistic(-1.0)),
            (&only_clear, official, 0.0),
            (&only_ambiguous, official, logistic(-1.0)),
        ];
        for (ambiguous, mode, expected) in cases {
            let loss = scalar(ambiguity_loss(left.clone(), right.clone(), ambiguous, mode));
            assert!(
                (loss - expected).abs() < 1e-6,
                "{mode:?} {ambiguous:?}: {loss}"
            );
        }
    }

    #[test]
    fn quadrilateral_loss_of_two_queries() {
        // P = [(0, 0), (2, 0)], N = [(1, 0), (1, 2)] with one copy each: query 0 paired with
        // query 1 and query 1 with itself.
        let preferred = matrix(&[&[0.0, 0.0], &[2.0, 0.0]]);
        let dispreferred = matrix(&[&[1.0, 0.0], &[1.0, 2.0]]);
        let loss = scalar(quadrilateral_loss(preferred, dispreferred, &[1, 1]));
        // i = 0, j = 1: s(P0, N1) = −2.5, s(P1, N0) = −0.5, s(P0, P1) = −2, s(N0, N1) = −2.
        let first = logistic(-2.5 - 0.5 + 2.0 + 2.0);
        // i = j = 1: s(P1, N1) twice = −2.5 each, s(P1, P1) = s(N1, N1) = 0.
        let second = logistic(-5.0);
        let expected = (first + second) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    #[test]
    fn quadrilateral_loss_without_queries_is_zero() {
        let empty = Tensor::<2>::zeros([0, 2], &device());
        let loss = scalar(quadrilateral_loss(empty.clone(), empty, &[]));
        assert_eq!(loss, 0.0);
    }

    #[test]
    fn partners_are_seeded_and_in_range() {
        let mut first = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut second = Xoshiro256PlusPlus::seed_from_u64(5);
        let drawn = draw_partners(3, 50, &mut first);
        assert_eq!(drawn.len(), 150);
        assert!(drawn.iter().all(|&index| index < 3));
        assert_eq!(drawn, draw_partners(3, 50, &mut second));
        for query in 0..3 {
            assert!(drawn.contains(&query), "partner {query} never drawn");
        }
    }
}
