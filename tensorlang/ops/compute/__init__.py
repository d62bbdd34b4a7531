"""Compute-only operator definitions (TOPI conventions): functions that take and return
tensors, to compose into larger pipelines; schedule them with ``tl.create_schedule`` or the
templates of ``tensorlang.ops``."""

from .elemwise import (ACTIVATIONS, COMPARISONS, compare, erf, rsqrt, where,  # noqa: F401
                       abs, activation, add, cast, clip, divide, exp, gelu, log, maximum,  # noqa: F401
                       minimum, multiply, negative, power, relu, sigmoid, silu, sqrt, subtract,
                       tanh)
from .linalg import batch_matmul, dense, matmul, matmul_packed, pack_panels  # noqa: F401
from .reduce import argmax, argmin, max, mean, min, sum  # noqa: F401
from .transform import (broadcast_to, strided_slice, concatenate, expand_dims, pad, reshape, squeeze, take,  # noqa: F401
                        transpose)
from .nn import (avg_pool2d, batch_norm, bias_add, conv2d_NCHWc, conv2d_nchw, conv2d_nhwc,  # noqa: F401
                 depthwise_conv2d_nchw, global_avg_pool2d, kernel_to_oihw_ic_oc, layer_norm,
                 log_softmax, max_pool2d, nchw_to_nchwc, nchwc_to_nchw, rms_norm, softmax)
from .nn import (conv2d_nchw_packed, conv2d_nhwc_packed, conv2d_output_size,  # noqa: F401,E402
                 conv2d_pack_weights, conv2d_pad, bias_add_nchwc)
