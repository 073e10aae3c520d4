"""An export that lost its adapter is refused in every dtype: fp16/bf16 merges bound no max |Δlogit| and a short
run's quality figures barely move without its adapter, so the check also asks whether the export sits nearer the
trained model than the same model with its adapter switched off."""

from __future__ import annotations

import pytest
from export_runs import chat_run, cls_run  # noqa: F401  (fixtures)

from adapterkit.errors import UserError
from adapterkit.export import export


def _merge_without_the_adapter(monkeypatch):
    """A merge that drops the trained weights: peft's ``unload`` (the base back, nothing folded in)."""
    from adapterkit.export import merged

    monkeypatch.setattr(merged, "merge_run", lambda source: source.model.unload().eval())


# A chat run only: peft's unload keeps a classifier's trained head (modules_to_save) and drops only the LoRA
# matrices, whose effect after a 2-step tiny run can sit below bf16's rounding (CI's tiny BERT, whose random
# weights depend on the tests run before, passed the check once): the check's limit, stated in export/check.py.
@pytest.mark.parametrize("run, dtype", [("chat_run", "bf16"), ("chat_run", "fp16")])
def test_a_lossy_merge_without_the_adapter_is_refused(run, dtype, request, tmp_path, monkeypatch):
    _merge_without_the_adapter(monkeypatch)
    with pytest.raises(UserError, match="nearer the model with its adapter switched off"):
        export(request.getfixturevalue(run), "merged", dtype=dtype, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("run, dtype", [("chat_run", "bf16"), ("cls_run", "fp16"), ("cls_run", "fp32")])
def test_a_correct_merge_sits_nearer_the_trained_model(run, dtype, request, tmp_path):
    check = export(request.getfixturevalue(run), "merged", dtype=dtype, output=tmp_path / "out")["check"]
    assert check["passed"], check["verdict"]
    assert check["mean_abs_logit_diff"] < check["mean_abs_logit_diff_adapter_off"]
