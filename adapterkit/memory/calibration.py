"""The planner's calibrated constants: each one says what it stands for and what it was fitted on
(``benchmarks/planner``, ``docs/defaults.md``). The formulas that use them are in ``estimate.py``."""

ACT_PER_OUT = 1.0  # saved elements per token per unit of a block's linear out_features (calibrated)
ACT_PER_HIDDEN = 2.1  # saved elements per token per hidden unit: norms, residual stream (calibrated)
ACT_PER_IN = 0.71  # per unit of in_features, when the method keeps linear inputs for weight gradients
ATTN_DROPOUT_PER_SCORE = 2.25  # attention dropout: probabilities, mask and dropped copy per score (heads x seq)
HIDDEN_DROPOUT_PER_HIDDEN = 5.0  # hidden dropout: masks and outputs of the residual-branch dropouts
# fp32 copies besides the logits themselves: log-softmax, its gradient, the logits' gradient (3), and ~2 for
# trl's SFTTrainer, which also computes per-token entropy and accuracy from the logits (measured: +2.3 copies).
LOGIT_COPIES = 5.0
EVAL_LOGIT_COPIES = 3.0  # eval: log-softmax + the entropy/accuracy metrics' temporaries
# trl's fused LM head (SFTTrainer on padded batches): one tile of logits in the compute dtype plus this many fp32
# tile-sized temporaries (the online log-softmax's float copy, exponentials and entropy terms; backward: the tile's
# gradient and the fp32 operands of its gradient matmuls). Fitted with the heap slack below on chat_lora and
# chat_qlora, padded, in fp32 and bf16 (2 steps; 0.95-1.06 of 8,021 / 5,238 / 8,246 / 5,903 MiB measured; an
# earlier chat_lora bf16 run peaked at 5,705 MiB: 0.97). 4.5 fitted the fp32 runs when the LoRA branches' slack was
# planned at 8 bytes per fp32 element, which overstated it (sentiment_smollm_lora fp32: 1.105).
FUSED_HEAD_COPIES = 6.0
# fp32 logits-sized tensors alive at once in log-softmax's backward when the trainer only takes the model's loss.
# Measured on lm_lora (transformers' ForCausalLMLoss, 512 x 49,152 logits): see docs/defaults.md.
CE_LOGIT_COPIES = 3.0
# CPU, glibc's default allocator: freed heap blocks of temporaries stay resident (see measure.pin_mmap_threshold).
# Fitted on benchmarks/planner (results.json there): measured default-minus-steady RSS was 0.29x activations
# for full fine-tuning, 0.32x prompt tuning, 0.58x bottleneck adapters, 0.94-0.99x LoRA (2 x out_features per
# token and adapted linear), 0.96x and 1.12x for chat LoRA and QLoRA (logits: none). Rounded up where a choice was
# left: real runs reach higher than the benchmark's 2 steps (sentiment_lora: 1,598 MiB at 2 steps,
# 1,638-1,696 MiB at 60 steps, 1,759 MiB for one epoch with the full eval; predicted 1,612 MiB).
CPU_HEAP_SLACK = 0.25  # extra RSS per byte of fp32-sized activations, every method and precision
# Freed bytes per token per unit of an adapter branch's out_features (LoRA) that stay resident. peft's branch frees
# two out-sized tensors per linear (B's output and its scaled copy): 8 bytes in fp32, of which ~6 stay
# (sentiment_smollm_lora fp32: 6.0, lm_lora ~5.2); 4 bytes in bf16, of which ~1.3 stay (sentiment_smollm_lora bf16
# re-measured at 3,110 MiB: 1.3; lm_lora bf16 ~0: its RSS was the same under ADAPTERKIT_MALLOC=steady).
ADAPTER_TEMP_BYTES = {"fp32": 6.0, "bf16": 1.3, "fp16": 1.3}
# The same on an AMX Xeon (the lent GPU machine's CPU, 2 pinned cores, Ubuntu's glibc 2.39: results-amx.json). Its unfused
# fp32 LoRA rows kept ~1 byte (default minus ADAPTERKIT_MALLOC=steady RSS, 2026-11-28); with 1.3 its bf16 LoRA rows were
# planned 5-13% over while its other rows matched; 0.3 (fitted with benchmarks/planner/repredict.py, then re-measured
# there) leaves them 0.99-1.06 (sentiment_smollm_lora 1.13 -> 1.02). Its fused fp32 rows fit the AMD EPYC's 2.8.
# One machine cannot say whether its CPU kind or its glibc makes the difference; the planner keys it on what it can see.
ADAPTER_TEMP_BYTES_BY_KIND = {"cpu-amx": {"fp32": 1.0, "bf16": 0.3, "fp16": 0.3}}
# peft's plain LoRA sum in one addmm (methods/fused_lora_sum.py; fp32, outside autocast): only the base output (4 bytes)
# is freed per out-feature and token. Fitted on the fp32 LoRA rows re-measured with it (AMD EPYC, 2026-11-28: chat_lora
# padded, chat_dpo, lm_lora, ner_lora, sentiment_lora, sentiment_smollm_lora; 1.0-3.9 each, 2.8 leaves them 0.95-1.05).
FUSED_SUM_TEMP_BYTES = 2.8
# Where the adapter sum is taken in fp32 under autocast (methods/fp32_adapter_sum.py, the chat task): the base output's
# fp32 copy and the fp32 sum add 8 freed bytes per out-feature and token, kept at bf16's rate (1.3 of 4): 2.6.
FP32_SUM_TEMP_BYTES = 2.6
PROCESS_BASELINE_MIB = 580.0  # CPU: interpreter + libraries + tokenizer + dataset (calibrated, torch's CPU build)
# CPU run with a CUDA build of torch (PyPI's default on Linux): its CUDA libraries (cuBLAS, cuDNN, NCCL, ...) load at
# import and stay resident. Measured on the 2-core AMD EPYC, torch 2.14.1+cu130 against 2.13.0+cpu, the same
# benchmarks/planner rows (chat_lora, ner_lora, sentiment_full, sentiment_lora in fp32 and bf16): +346-397 MiB, 390
# or more in 6 of 8 (importing torch, transformers, peft, trl and datasets alone: 886 vs 509 MiB, +377).
CPU_CUDA_LIBRARIES_MIB = 390.0  # used where the environment's import footprint cannot be measured (below)
# PROCESS_BASELINE_MIB's environment: peak RSS of a fresh interpreter importing torch (2.13.0+cpu), transformers, peft,
# trl and datasets on the 2-core AMD EPYC (hardware/libraries.py measured 509-511 MiB). The baseline moves by what the
# same import measures in the environment a plan runs in (2.11.0+cu130: 826 MiB on the same machine).
LIBRARIES_MIB_AT_CALIBRATION = 510.0
# CPU, bf16/fp16 compute: oneDNN's matmul primitives (memory/kernels.py). Measured with benchmarks/planner/kernels.py on the
# 2-core AMD EPYC (Zen 4, AVX512-BF16, no AMX): 0.7 MiB per primitive (1.4-1.8 MiB per new token count through a frozen
# bf16 linear, 2 primitives; 2.1 through a trained one, 3), ~40 MiB for oneDNN itself at the first bf16 matmul.
ONEDNN_BASE_MIB = 40.0
ONEDNN_PRIMITIVE_MIB = 0.72
# The same measurement on the AMX Xeon (kernels-amx.json, torch 2.11.0+cu130): 0.59 MiB per primitive.
ONEDNN_PRIMITIVE_MIB_BY_KIND = {"cpu-amx": 0.59}
CUDA_OVERHEAD_MIB = 600.0  # CUDA context (~300-500 MiB with lazy module loading) + allocator slack
QUANT_BYTES = {True: 0.5 + 1 / 64 + 4 / (64 * 256), False: 0.5 + 4 / 64}  # per 4-bit weight, by double_quant
