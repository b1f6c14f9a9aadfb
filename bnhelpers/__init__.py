"""bnhelpers: the tested numpy code behind the batch normalization course.

Functional core, flat functions returning ``(out, cache)`` / ``(dx, dgamma, dbeta)``:
    batchnorm (BN for (N, D)), spatial (BN for images), layernorm (LayerNorm,
    GroupNorm), renorm (Batch Renormalization), ghost (Ghost BN), conv
    (convolution, pooling), conventions (framework presets), gradcheck
    (finite differences).
Training engine: layers, residual (residual blocks, SkipInit), network,
    models (builders), losses, optim, trainer, checkpoint, probes,
    instruments (update ratios, saturation and activation histograms
    followed through training), inference (population statistics,
    train-mode accuracy, inference example weighting, frozen BN, folding),
    experiments (with/without BN comparisons, repeats over seeds, sweeps,
    random-network statistics), timing (median times), data_parallel
    (per-device and synchronized BN over K simulated devices).
Why BN helps: covariate_shift (layer-input shift, gradient ICS, noisy BN),
    landscape (loss and gradient change along the gradient),
    scale_invariance (weight norms and the effective learning rate of
    weights followed by a normalization).
Data and plots: data (MNIST), plotting.
Seeds: seeding (every seed shifted by BNHELPERS_SEED_OFFSET).
Notebook claims: claims (assert_claim: assert a claim and print what was measured).
"""

from .batchnorm import (
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_fast,
    batchnorm_fold,
    batchnorm_forward,
)
from .claims import assert_claim
from .conv import conv2d_backward, conv2d_forward, maxpool2d_backward, maxpool2d_forward
from .conventions import CONVENTIONS, Convention, conventions_table
from .covariate_shift import (
    ShiftTracker,
    add_noise_after_batchnorm,
    distribution_shift,
    gradient_shift,
    layer_input_moments,
)
from .data import DownloadError, MnistSplits, download_mnist, load_mnist, read_idx
from .data_parallel import AllReduce, per_device_batchnorm_forward, sync_batchnorm_backward, sync_batchnorm_forward
from .experiments import (
    compare_with_and_without_bn,
    final_accuracy_over_seeds,
    paired_difference,
    random_net_statistics,
    run_in_parallel,
    sweep,
    train_each,
    train_over_seeds,
    training_step,
)
from .ghost import ghost_batchnorm_backward, ghost_batchnorm_forward
from .gradcheck import gradient_check, numerical_gradient, rel_error
from .inference import (
    batch_statistics_accuracy,
    example_weighted_logits,
    example_weighted_normalize,
    fold_batchnorm,
    freeze_batchnorm,
    population_statistics,
    use_population_statistics,
)
from .instruments import TrainingMonitor, activation_histogram
from .landscape import (
    AlongGradient,
    along_gradient,
    hessian_power_iteration,
    landscape_along_gradient,
    largest_hessian_eigenvalue,
    network_objective,
)
from .layernorm import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward
from .layers import (
    ActivationNoise,
    BatchNorm1d,
    BatchNorm2d,
    BatchRenorm1d,
    BatchRenorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GroupNorm,
    Layer,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    ShiftScaleNoise,
    Sigmoid,
    Tanh,
    is_batchnorm,
)
from .losses import accuracy, softmax_cross_entropy
from .models import deep_net, mlp, residual_mlp, small_cnn, three_layer_net
from .network import Network
from .optim import SGD, Adam, Momentum, ParameterGroups, RMSprop
from .probes import (
    batch_noise,
    channel_statistics,
    probe,
    signal_propagation,
    update_ratios,
    weight_gradient_norms,
)
from .renorm import (
    batchrenorm_backward,
    batchrenorm_forward,
    renorm_limits,
    spatial_batchrenorm_backward,
    spatial_batchrenorm_forward,
)
from .residual import ResidualBlock
from .scale_invariance import (
    WeightTracker,
    angular_update,
    effective_learning_rate,
    equilibrium_angular_update,
    normalized_weights,
    weight_norms,
)
from .seeding import rng, seed_offset
from .spatial import spatial_batchnorm_backward, spatial_batchnorm_forward
from .timing import median_seconds
from .trainer import History, evaluate, train

__all__ = [
    "CONVENTIONS",
    "SGD",
    "ActivationNoise",
    "Adam",
    "AllReduce",
    "AlongGradient",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormCache",
    "BatchRenorm1d",
    "BatchRenorm2d",
    "Conv2d",
    "Convention",
    "DownloadError",
    "Dropout",
    "Flatten",
    "GroupNorm",
    "History",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "MnistSplits",
    "Momentum",
    "Network",
    "ParameterGroups",
    "RMSprop",
    "ReLU",
    "ResidualBlock",
    "ShiftScaleNoise",
    "ShiftTracker",
    "Sigmoid",
    "Tanh",
    "TrainingMonitor",
    "WeightTracker",
    "accuracy",
    "activation_histogram",
    "add_noise_after_batchnorm",
    "along_gradient",
    "angular_update",
    "assert_claim",
    "batch_noise",
    "batch_statistics_accuracy",
    "batchnorm_backward",
    "batchnorm_backward_fast",
    "batchnorm_fold",
    "batchnorm_forward",
    "batchrenorm_backward",
    "batchrenorm_forward",
    "channel_statistics",
    "compare_with_and_without_bn",
    "conv2d_backward",
    "conv2d_forward",
    "conventions_table",
    "deep_net",
    "distribution_shift",
    "download_mnist",
    "effective_learning_rate",
    "equilibrium_angular_update",
    "evaluate",
    "example_weighted_logits",
    "example_weighted_normalize",
    "final_accuracy_over_seeds",
    "fold_batchnorm",
    "freeze_batchnorm",
    "ghost_batchnorm_backward",
    "ghost_batchnorm_forward",
    "gradient_check",
    "gradient_shift",
    "groupnorm_backward",
    "groupnorm_forward",
    "hessian_power_iteration",
    "is_batchnorm",
    "landscape_along_gradient",
    "largest_hessian_eigenvalue",
    "layer_input_moments",
    "layernorm_backward",
    "layernorm_forward",
    "load_mnist",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "median_seconds",
    "mlp",
    "network_objective",
    "normalized_weights",
    "numerical_gradient",
    "paired_difference",
    "per_device_batchnorm_forward",
    "population_statistics",
    "probe",
    "random_net_statistics",
    "read_idx",
    "rel_error",
    "renorm_limits",
    "residual_mlp",
    "rng",
    "run_in_parallel",
    "seed_offset",
    "signal_propagation",
    "small_cnn",
    "softmax_cross_entropy",
    "spatial_batchnorm_backward",
    "spatial_batchnorm_forward",
    "spatial_batchrenorm_backward",
    "spatial_batchrenorm_forward",
    "sweep",
    "sync_batchnorm_backward",
    "sync_batchnorm_forward",
    "three_layer_net",
    "train",
    "train_each",
    "train_over_seeds",
    "training_step",
    "update_ratios",
    "use_population_statistics",
    "weight_gradient_norms",
    "weight_norms",
]  # fmt: skip
