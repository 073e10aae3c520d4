"""Scores of generated text against reference text: ROUGE (rouge-score), BLEU and chrF (sacrebleu), exact match.

The same computations as the hub's ``rouge``, ``sacrebleu``, ``chrf`` and ``exact_match`` metrics, which
``evaluate.load`` can only fetch online; here they run on the installed packages.
"""

import datasets
import evaluate

SCORES = ("rouge", "bleu", "chrf", "exact_match")
_DESCRIPTION = "ROUGE-1/2/L F-measures, corpus BLEU and chrF, and exact match of generated against reference text."
_KWARGS = """
Args:
    predictions: generated strings. references: one reference string each.
    scores: which of rouge, bleu, chrf, exact_match to compute (default: all).
Returns: rouge1, rouge2, rougeL (mean F-measure, 0-1, Porter stemming as the hub's rouge), bleu and chrf
(corpus-level, 0-100, sacrebleu's defaults), exact_match (share of predictions equal to their reference
after lowercasing and collapsing whitespace, 0-1).
"""


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


class GenerationScores(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, scores=SCORES):
        unknown = set(scores) - set(SCORES)
        if unknown:
            raise ValueError(f"unknown scores {sorted(unknown)} (known: {', '.join(SCORES)})")
        result = {}
        if "rouge" in scores:
            from rouge_score import rouge_scorer, tokenizers

            # the tokenizer rouge-score picks by default, passed in: it would log "Using default tokenizer." each time
            scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"],
                                              tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))
            each = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
            for key in ("rouge1", "rouge2", "rougeL"):
                result[key] = sum(s[key].fmeasure for s in each) / max(len(each), 1)
        if "bleu" in scores:
            import sacrebleu

            result["bleu"] = float(sacrebleu.corpus_bleu(predictions, [references]).score)
        if "chrf" in scores:
            import sacrebleu

            result["chrf"] = float(sacrebleu.corpus_chrf(predictions, [references]).score)
        if "exact_match" in scores:
            same = sum(normalized(p) == normalized(r) for p, r in zip(predictions, references))
            result["exact_match"] = same / max(len(predictions), 1)
        return result
