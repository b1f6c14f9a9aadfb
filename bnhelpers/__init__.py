"""bnhelpers: the tested numpy code behind the batch normalization course.

The layout shows the architecture: each tier imports only from the tiers above it
(tools/import_structure.py checks this), and ``import bnhelpers as bh`` gives every
public name of all of them.

The math, at the top: flat functions returning ``(out, cache)`` / ``(dx, dgamma, dbeta)``.
    batchnorm (BN for (N, D)), conventions (framework presets), spatial (BN for
    images), layernorm (LayerNorm, GroupNorm): the four files students complete in
    the classroom edition; renorm (Batch Renormalization), ghost (Ghost BN),
    data_parallel (per-device and synchronized BN over K simulated devices),
    gradcheck (finite differences).
Shared helpers, at the top: _checks (argument checks), seeding (every seed
    shifted by BNHELPERS_SEED_OFFSET), progress (progress bars).
storage/: mnist (reading MNIST), download (verified downloading), checkpoint
    (pickle-free checkpoints), files (atomic writes).
engine/: the layers, networks and training built on the math.
    layers, residual (residual blocks, SkipInit), network, models (builders),
    losses, optim, init (weight schemes), conv (convolution, pooling), trainer.
analysis/: measurements, experiments and plots of the engine's networks.
    probes, instruments (update ratios, saturation and activation histograms
    followed through training), inference (population statistics, train-mode
    accuracy, inference example weighting, frozen BN, folding), experiments
    (with/without BN comparisons, repeats over seeds, sweeps, random-network
    statistics), covariate_shift (layer-input shift, gradient ICS, noisy BN),
    landscape (loss and gradient change along the gradient), scale_invariance
    (weight norms and the effective learning rate of weights followed by a
    normalization), timing (median times), claims (assert_claim: assert a
    claim and print what was measured), plotting, tables (mean ± sd over seeds
    as text), explore (notebook 01's widget), listing (a function's source
    shown in a notebook).
"""

# The math students read and write, and the shared helpers: the top of the package.
from .batchnorm import (
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_fast,
    batchnorm_fold,
    batchnorm_forward,
)
from .conventions import CONVENTIONS, Convention, conventions_table
from .data_parallel import (
    AllReduce,
    per_device_batchnorm_forward,
    sync_batchnorm_backward,
    sync_batchnorm_forward,
)
from .ghost import ghost_batchnorm_backward, ghost_batchnorm_forward
from .gradcheck import gradient_check, numerical_gradient, rel_error
from .layernorm import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward
from .renorm import (
    batchrenorm_backward,
    batchrenorm_forward,
    renorm_limits,
    spatial_batchrenorm_backward,
    spatial_batchrenorm_forward,
)
from .seeding import rng, seed_offset
from .spatial import spatial_batchnorm_backward, spatial_batchnorm_forward

# isort: split
# storage/: MNIST on disk, read and verified.
from .storage.download import DownloadError, download_mnist
from .storage.mnist import MnistSplits, load_mnist, read_idx

# isort: split
# engine/: the layers, networks and training built on the math.
from .engine.conv import conv2d_backward, conv2d_forward, maxpool2d_backward, maxpool2d_forward
from .engine.layers import (
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
from .engine.losses import accuracy, softmax_cross_entropy
from .engine.models import deep_net, mlp, residual_mlp, small_cnn, three_layer_net
from .engine.network import Network
from .engine.optim import SGD, Adam, Momentum, ParameterGroups, RMSprop
from .engine.residual import ResidualBlock
from .engine.trainer import History, evaluate, train

# isort: split
# analysis/: measurements, experiments and plots of the engine's networks.
from .analysis.claims import assert_claim
from .analysis.covariate_shift import (
    ShiftTracker,
    add_noise_after_batchnorm,
    distribution_shift,
    gradient_shift,
    layer_input_moments,
)
from .analysis.experiments import (
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
from .analysis.inference import (
    batch_statistics_accuracy,
    example_weighted_logits,
    example_weighted_normalize,
    fold_batchnorm,
    freeze_batchnorm,
    population_statistics,
    use_population_statistics,
)
from .analysis.instruments import TrainingMonitor, activation_histogram
from .analysis.landscape import (
    AlongGradient,
    along_gradient,
    batch_sharpness,
    directional_curvature,
    hessian_power_iteration,
    landscape_along_gradient,
    largest_hessian_eigenvalue,
    network_objective,
)
from .analysis.probes import (
    batch_noise,
    channel_statistics,
    effective_m,
    probe,
    signal_propagation,
    update_ratios,
    weight_gradient_norms,
)
from .analysis.scale_invariance import (
    WeightTracker,
    angular_update,
    effective_learning_rate,
    equilibrium_angular_update,
    normalized_weights,
    weight_norms,
)
from .analysis.timing import median_seconds

__all__ = [  # noqa: RUF022 - grouped by the package's layout, not alphabetically
    # the math and the shared helpers
    "BatchNormCache", "batchnorm_backward", "batchnorm_backward_fast", "batchnorm_fold", "batchnorm_forward",
    "CONVENTIONS", "Convention", "conventions_table", "ghost_batchnorm_backward", "ghost_batchnorm_forward",
    "gradient_check", "numerical_gradient", "rel_error", "groupnorm_backward", "groupnorm_forward",
    "layernorm_backward", "layernorm_forward", "batchrenorm_backward", "batchrenorm_forward", "renorm_limits",
    "spatial_batchrenorm_backward", "spatial_batchrenorm_forward", "rng", "seed_offset", "spatial_batchnorm_backward",
    "spatial_batchnorm_forward",
    # storage
    "DownloadError", "MnistSplits", "download_mnist", "load_mnist", "read_idx",
    # engine/
    "conv2d_backward", "conv2d_forward", "maxpool2d_backward", "maxpool2d_forward", "ActivationNoise", "BatchNorm1d",
    "BatchNorm2d", "BatchRenorm1d", "BatchRenorm2d", "Conv2d", "Dropout", "Flatten", "GroupNorm", "Layer",
    "is_batchnorm", "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d", "ReLU", "ShiftScaleNoise", "Sigmoid", "Tanh",
    "accuracy", "softmax_cross_entropy", "deep_net", "mlp", "residual_mlp", "small_cnn", "three_layer_net", "Network",
    "SGD", "Adam", "Momentum", "ParameterGroups", "RMSprop", "ResidualBlock", "History", "evaluate", "train",
    # analysis/
    "assert_claim", "ShiftTracker", "add_noise_after_batchnorm", "distribution_shift", "gradient_shift",
    "layer_input_moments", "AllReduce", "per_device_batchnorm_forward", "sync_batchnorm_backward",
    "sync_batchnorm_forward", "compare_with_and_without_bn", "final_accuracy_over_seeds", "paired_difference",
    "random_net_statistics", "run_in_parallel", "sweep", "train_each", "train_over_seeds", "training_step",
    "batch_statistics_accuracy", "example_weighted_logits", "example_weighted_normalize", "fold_batchnorm",
    "freeze_batchnorm", "population_statistics", "use_population_statistics", "TrainingMonitor",
    "activation_histogram", "AlongGradient", "along_gradient", "batch_sharpness", "directional_curvature",
    "hessian_power_iteration", "landscape_along_gradient", "largest_hessian_eigenvalue", "network_objective",
    "batch_noise", "channel_statistics", "effective_m", "probe",
    "signal_propagation", "update_ratios", "weight_gradient_norms", "WeightTracker", "angular_update",
    "effective_learning_rate", "equilibrium_angular_update", "normalized_weights", "weight_norms", "median_seconds",
]  # fmt: skip
