//! Gradient clipping by the global L2 norm over all parameters.
//!
//! burn's optimizers clip each parameter's gradient separately; the CLARIFY encoder clips
//! the norm of all gradients together, as PyTorch's `clip_grad_norm_` does.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::Tensor;

/// Scales every gradient of `module` in `gradients` by max_norm / (norm + 10⁻⁶) when their
/// global L2 norm exceeds `max_norm`, and returns the norm before clipping.
pub fn clip_global_norm<M: Module>(
    module: &M,
    gradients: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut summer = SquaredNormSum {
        gradients,
        total: 0.0,
    };
    module.visit(&mut summer);
    let norm = summer.total.sqrt();

    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        let mut scaler = Scaler { gradients, factor };
        module.visit(&mut scaler);
    }
    norm
}

struct SquaredNormSum<'a> {
    gradients: &'a GradientsParams,
    total: f64,
}

impl ModuleVisitor for SquaredNormSum<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(gradient) = self.gradients.get::<D>(param.id) {
            let sum = gradient.square().sum().into_scalar::<f32>();
            self.total += f64::from(sum);
        }
    }
}

struct Scaler<'a> {
    gradients: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scaler<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(gradient) = self.gradients.remove::<D>(param.id) {
            self.gradients
                .register(param.id, gradient.mul_scalar(self.factor));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};
    use burn::prelude::{Device, Tensor, TensorData};

    use super::*;

    #[derive(Module, Debug)]
    struct TwoParameters {
        vector: Param<Tensor<1>>,
        matrix: Param<Tensor<2>>,
    }

    /// Returns gradients (3, 0) for the vector and [[0, 4]] for the matrix: norm 5.
    fn gradients_of_norm_five() -> (TwoParameters, GradientsParams) {
        let device = Device::flex().autodiff();
        let module = TwoParameters {
            vector: Param::from_tensor(Tensor::zeros([2], &device).require_grad()),
            matrix: Param::from_tensor(Tensor::zeros([1, 2], &device).require_grad()),
        };
        let vector_weights =
            Tensor::<1>::from_data(TensorData::new(vec![3.0_f32, 0.0], [2]), &device);
        let matrix_weights =
            Tensor::<2>::from_data(TensorData::new(vec![0.0_f32, 4.0], [1, 2]), &device);
        let loss = (module.vector.val() * vector_weights).sum()
            + (module.matrix.val() * matrix_weights).sum();
        let gradients = GradientsParams::from_grads(loss.backward(), &module);
        (module, gradients)
    }

    fn values<const D: usize>(gradients: &GradientsParams, param: &Param<Tensor<D>>) -> Vec<f32> {
        gradients
            .get::<D>(param.id)
            .expect("a gradient for the parameter")
            .into_data()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn global_clip_scales_all_gradients_together() {
        let (module, mut gradients) = gradients_of_norm_five();
        let norm = clip_global_norm(&module, &mut gradients, 1.0);
        assert!((norm - 5.0).abs() < 1e-6, "{norm}");

        // Each gradient is scaled by 1 / 5; per-tensor clipping would give (1, 0) and
        // [[0, 1]] instead.
        let vector = values(&gradients, &module.vector);
        let matrix = values(&gradients, &module.matrix);
        assert!((vector[0] - 0.6).abs() < 1e-6, "{vector:?}");
        assert_eq!(vector[1], 0.0);
        assert_eq!(matrix[0], 0.0);
        assert!((matrix[1] - 0.8).abs() < 1e-6, "{matrix:?}");
    }

    #[test]
    fn global_clip_keeps_gradients_below_the_limit() {
        let (module, mut gradients) = gradients_of_norm_five();
        let norm = clip_global_norm(&module, &mut gradients, 10.0);
        assert!((norm - 5.0).abs() < 1e-6, "{norm}");
        assert_eq!(values(&gradients, &module.vector), vec![3.0, 0.0]);
        assert_eq!(values(&gradients, &module.matrix), vec![0.0, 4.0]);
    }
}
