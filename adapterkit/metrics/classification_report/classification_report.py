"""Accuracy, macro-F1 and a per-label precision/recall/F1/support report (like sklearn's)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

_DESCRIPTION = "Accuracy, macro-averaged F1 and per-label precision, recall, F1 and support."
_KWARGS = """
Args:
    predictions: predicted label ids. references: true label ids.
    label_names: optional list of names, index = label id.
Returns: accuracy, macro_precision, macro_recall, macro_f1, per_label {name: {precision, recall, f1, support}}.
"""


class ClassificationReport(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, label_names=None):
        ids = list(range(len(label_names))) if label_names else sorted(set(references) | set(predictions))
        names = list(label_names) if label_names else [str(i) for i in ids]
        p, r, f, s = precision_recall_fscore_support(references, predictions, labels=ids, zero_division=0)
        mp, mr, mf, _ = precision_recall_fscore_support(references, predictions, labels=ids, average="macro",
                                                        zero_division=0)
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_precision": float(mp),
            "macro_recall": float(mr),
            "macro_f1": float(mf),
            "per_label": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(s[i])} for i, n in enumerate(names)},
        }
