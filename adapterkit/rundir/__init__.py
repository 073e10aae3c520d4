"""The run directory: what a run writes, whose it is, and how a later command finds it again.

    DIR/.adapterkit                the ownership stamp (JSON: run id, time, command), written when adapterkit claims DIR
    DIR/.lock                      flock held by the run writing DIR; the kernel drops it if that process dies
                                   (``compare`` holds one on its folder too; ``tune``, ``export`` do not)
    DIR/recipe.toml                the resolved recipe (method/task defaults filled in)
    DIR/.checkpoint-tmp/           the Trainer's ``output_dir``: a checkpoint is written here first...
    DIR/checkpoints/checkpoint-N/  ...then renamed here once complete (Trainer's own format; the last 2 kept,
                                   and the best one with train.keep_best)
    DIR/logs/                      training curves for TensorBoard (train.report_to; wandb/mlflow files too)
    DIR/history.json               the Trainer's log history (loss, learning rate, grad norm, evals per step)
    DIR/curves/*.png               loss.png, learning_rate.png, eval_<metric>.png (evaluated during training)
    DIR/adapter/                   PEFT adapter folder (or bottleneck safetensors + config) + tokenizer + labels.json
    DIR/model/                     full/freeze: a complete from_pretrained folder + tokenizer
    DIR/metrics.json               eval metrics (+ samples.jsonl for chat, per-label reports)
    DIR/run.json                   versions, parameter counts, timings, throughput, peak memory: a finished run
    DIR/.replaced/                 ``--overwrite``: the run being replaced, until the new one has finished

Ownership: adapterkit writes into, resumes from, replaces or deletes only a folder it can prove it wrote,
one holding its ``.adapterkit`` stamp. A new or empty folder is stamped and used; a non-empty folder
without the stamp (the user's own files) is refused in one line, ``--overwrite`` included, and nothing in
it is touched. A run that fails before it has kept anything (no checkpoint, no ``run.json``) removes what
it wrote, and the folder itself if it made it.

``adapterkit run RECIPE --output DIR`` on a DIR without ``run.json`` resumes from the newest complete
checkpoint, provided DIR's ``recipe.toml`` is the same recipe. A finished run is replaced only with
``--overwrite``, and only once the new run has finished (put back if the new one keeps nothing).
Modules: ``claim.py`` (stamp, lock, claim, resume), ``replacing.py`` (--overwrite's set-aside run),
``checkpoints.py`` (staging and publishing), ``record.py`` (artifacts, metrics.json, run.json),
``artifact.py`` (a saved artifact checked against its method's ``saved_files`` before loading).
Light imports only.
"""

from .artifact import SavedFiles, check_artifact
from .checkpoints import CHECKPOINTS, KEEP, STAGING, checkpoint_step, checkpoints, publish, published_path, staging_dir
from .claim import (
    LOCK,
    MARKER,
    check_free,
    check_output,
    check_take,
    claim,
    holds_output,
    lock,
    owned,
    read_stamp,
    stamped_by,
    take,
)
from .record import default_run_dir, git_commit, read_run, run_info, save_trained, trained_labels, versions, write_json

__all__ = ["CHECKPOINTS", "KEEP", "LOCK", "MARKER", "STAGING", "SavedFiles", "check_artifact", "check_free", "check_output",
           "check_take", "checkpoint_step", "checkpoints", "claim", "default_run_dir", "git_commit", "holds_output",
           "lock", "owned", "publish", "published_path", "read_run", "read_stamp", "run_info", "save_trained",
           "stamped_by", "staging_dir", "take", "trained_labels", "versions", "write_json"]
