"""On CUDA a run's attention leaves out cuDNN's kernel (a plan per new shape; hardware/attention.py), only for the
run, and nothing changes on a CPU. The flags are torch's own, present in CPU builds too."""

import torch

from adapterkit.hardware.attention import attention_kernels


def test_cuda_runs_use_every_sdpa_kernel_but_cudnn_and_restore_the_choice():
    cuda = torch.backends.cuda
    before = (cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(),
              cuda.math_sdp_enabled())
    assert before[0], "torch enables cuDNN attention by default: nothing to switch off"
    with attention_kernels("cuda"):
        assert not cuda.cudnn_sdp_enabled()
        assert cuda.flash_sdp_enabled() and cuda.mem_efficient_sdp_enabled() and cuda.math_sdp_enabled()
    after = (cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(),
             cuda.math_sdp_enabled())
    assert after == before
    with attention_kernels("cpu"):
        assert cuda.cudnn_sdp_enabled()
