"""torch.profiler over training steps 3-5 of one recipe, run in this process (warm-up steps excluded): the top
operators by self device time and by self CPU time, kernel launches per step, and seconds per step.

    python benchmarks/gpu/profile_steps.py recipes/chat_lora.toml hardware.precision=bf16 task.num_samples=0
"""
import sys
import time

import torch
from transformers import TrainerCallback

from adapterkit.api import run

FIRST, LAST = 2, 5  # steps profiled: FIRST < step <= LAST


class Profile(TrainerCallback):
    def __init__(self):
        self.prof, self.started = None, 0.0

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == FIRST and self.prof is None:
            acts = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                acts.append(torch.profiler.ProfilerActivity.CUDA)
                torch.cuda.synchronize()
            self.prof = torch.profiler.profile(activities=acts)
            self.prof.__enter__()
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == LAST and self.prof is not None and self.started:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - self.started) / (LAST - FIRST)
            self.prof.__exit__(None, None, None)
            events = self.prof.key_averages()
            launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
            print(f"PROFILE {sys.argv[2:]}: {seconds:.3f} s/step, kernel launches/step {launches / (LAST - FIRST):.0f}")
            key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
            print(events.table(sort_by=key, row_limit=14, max_name_column_width=48))
            if torch.cuda.is_available():
                print(events.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=48))
            self.started = 0.0


if __name__ == "__main__":
    recipe, sets = sys.argv[1], dict(s.split("=", 1) for s in sys.argv[2:])
    sets.setdefault("train.max_steps", str(LAST + 1))
    result = run(recipe, overrides=sets, output=f"/tmp/profile-{abs(hash(tuple(sys.argv)))}",
                            overwrite=True, force=True, callbacks=(Profile(),))
    print("eval", {k: v for k, v in result.metrics.items() if k == "eval_loss"})
