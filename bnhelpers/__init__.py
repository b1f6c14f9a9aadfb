"""bnhelpers: the tested numpy code behind the batch normalization course.

Functional core (flat functions returning ``(out, cache)`` / ``(dx, dgamma, dbeta)``):
batchnorm, spatial, layernorm, gradcheck, conventions. Data: data.
"""

from .batchnorm import (
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_fast,
    batchnorm_fold,
    batchnorm_forward,
)
from .conventions import CONVENTIONS, Convention, conventions_table
from .data import DownloadError, MnistSplits, download_mnist, load_mnist, read_idx
from .gradcheck import gradient_check, numerical_gradient, rel_error
from .layernorm import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward
from .spatial import spatial_batchnorm_backward, spatial_batchnorm_forward

__all__ = [
    "BatchNormCache",
    "CONVENTIONS",
    "Convention",
    "DownloadError",
    "MnistSplits",
    "batchnorm_backward",
    "batchnorm_backward_fast",
    "batchnorm_fold",
    "batchnorm_forward",
    "conventions_table",
    "download_mnist",
    "gradient_check",
    "groupnorm_backward",
    "groupnorm_forward",
    "layernorm_backward",
    "layernorm_forward",
    "load_mnist",
    "numerical_gradient",
    "read_idx",
    "rel_error",
    "spatial_batchnorm_backward",
    "spatial_batchnorm_forward",
]
