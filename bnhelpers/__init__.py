"""bnhelpers: the tested numpy code behind the batch normalization course.

Functional core, flat functions returning ``(out, cache)`` / ``(dx, dgamma, dbeta)``:
    batchnorm (BN for (N, D)), spatial (BN for images), layernorm (LayerNorm,
    GroupNorm), conv (convolution, pooling), conventions (framework presets),
    gradcheck (finite differences).
Training engine: layers, network, models (builders), losses, optim, trainer,
    checkpoint, probes, inference (population statistics, folding),
    experiments (with/without BN comparisons, repeats over seeds, sweeps).
Why BN helps: covariate_shift (layer-input shift, gradient ICS, noisy BN),
    landscape (loss and gradient change along the gradient).
Data and plots: data (MNIST), plotting.
Seeds: seeding (every seed shifted by BNHELPERS_SEED_OFFSET).
"""

from .batchnorm import (
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_fast,
    batchnorm_fold,
    batchnorm_forward,
)
from .conv import (
    avgpool2d_backward,
    avgpool2d_forward,
    conv2d_backward,
    conv2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from .conventions import CONVENTIONS, Convention, conventions_table
from .data import DownloadError, MnistSplits, download_mnist, load_mnist, read_idx
from .gradcheck import gradient_check, numerical_gradient, rel_error
from .covariate_shift import ShiftTracker, add_noise_after_batchnorm, distribution_shift, gradient_shift, layer_input_moments
from .experiments import compare_with_and_without_bn, final_accuracy_over_seeds, median_step_seconds, run_in_parallel, sweep, train_and_score, training_step
from .landscape import AlongGradient, along_gradient, landscape_along_gradient, network_objective
from .inference import fold_batchnorm, population_statistics, use_population_statistics
from .layernorm import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward
from .layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    ShiftScaleNoise,
    Sigmoid,
    Tanh,
)
from .losses import softmax_cross_entropy
from .models import deep_net, mlp, small_cnn, three_layer_net
from .network import Network
from .optim import SGD, Adam, Momentum, RMSprop
from .probes import batch_noise, channel_statistics, probe, random_net_statistics, update_ratios
from .seeding import rng, seed_offset
from .spatial import spatial_batchnorm_backward, spatial_batchnorm_forward
from .trainer import History, evaluate, train

__all__ = [
    "Adam", "BatchNorm1d", "BatchNorm2d", "BatchNormCache", "CONVENTIONS", "Conv2d", "Convention",
    "DownloadError", "Dropout", "Flatten", "History", "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d",
    "MnistSplits", "Momentum", "Network", "RMSprop", "ReLU", "SGD", "Sigmoid", "Tanh",
    "avgpool2d_backward", "avgpool2d_forward", "batchnorm_backward", "batchnorm_backward_fast",
    "batchnorm_fold", "batchnorm_forward", "channel_statistics", "compare_with_and_without_bn", "conv2d_backward", "conv2d_forward", "conventions_table",
    "deep_net", "download_mnist", "evaluate", "final_accuracy_over_seeds", "fold_batchnorm", "gradient_check", "groupnorm_backward", "groupnorm_forward",
    "layernorm_backward", "layernorm_forward", "load_mnist", "maxpool2d_backward", "maxpool2d_forward",
    "median_step_seconds", "mlp", "numerical_gradient", "population_statistics", "probe", "random_net_statistics", "read_idx", "rel_error", "rng", "run_in_parallel", "seed_offset", "small_cnn",
    "softmax_cross_entropy", "spatial_batchnorm_backward", "spatial_batchnorm_forward", "three_layer_net",
    "train", "training_step", "update_ratios", "use_population_statistics",
    "AlongGradient", "ShiftScaleNoise", "ShiftTracker", "add_noise_after_batchnorm", "along_gradient", "batch_noise",
    "distribution_shift", "gradient_shift", "landscape_along_gradient", "layer_input_moments", "network_objective",
    "sweep", "train_and_score",
]  # fmt: skip
