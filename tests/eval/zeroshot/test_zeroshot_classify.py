"""Classifier math against hand-computed values: prototypes, argmax, top-5, mean per-class recall."""

from __future__ import annotations

import math

import pytest
import torch

from clipdpo_cli.eval.zeroshot.classify import class_prototypes, encode_in_batches, metrics, top_k

# A FAKE text encoder with fixed, unnormalised 2-d vectors per text (so normalisation matters).
VECTORS = {
    "a cat": [3.0, 0.0],
    "the cat": [0.0, 1.0],
    "a dog": [0.0, -2.0],
    "the dog": [-1.0, 0.0],
}


def fake_encode(texts):
    return torch.tensor([VECTORS[t] for t in texts])


def test_prototype_is_renormalised_mean_of_normalised_template_embeddings():
    protos = class_prototypes(fake_encode, ["cat", "dog"], ["a {c}", "the {c}"], batch_size=3)
    # one class per group (10 templates, batch 1) gives the same prototypes
    grouped = class_prototypes(fake_encode, ["cat", "dog"], ["a {c}", "the {c}"] * 5, batch_size=1)
    assert torch.allclose(protos, grouped, atol=1e-6)
    # cat: mean((1,0), (0,1)) = (.5,.5) -> (1/sqrt2, 1/sqrt2); unnormalised mean would lean to (3,1).
    s = 1 / math.sqrt(2)
    assert torch.allclose(protos, torch.tensor([[s, s], [-s, -s]]), atol=1e-6)


def test_argmax_and_topk():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queries = torch.nn.functional.normalize(torch.tensor([[0.9, 0.1], [-0.2, 1.0], [-1.0, -0.5]]), dim=-1)
    assert top_k(queries, protos, k=5).tolist() == [[0, 1, 2], [1, 2, 0], [2, 1, 0]]


def test_metrics_hand_computed():
    # 6 samples, 3 classes; top-1 predictions 0,1,1,2,0,1 vs labels 0,0,1,2,2,2
    topk = torch.tensor([[0, 1, 2], [1, 0, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2], [1, 0, 2]])
    labels = [0, 0, 1, 2, 2, 2]
    m = metrics(topk, labels)
    assert m["n"] == 6 and m["classes_seen"] == 3
    assert m["top1"] == pytest.approx(100 * 3 / 6)
    assert m["top5"] == pytest.approx(100.0)  # 3 classes: top-5 covers all
    # recall: class0 1/2, class1 1/1, class2 1/3 -> mean (0.5 + 1 + 1/3) / 3
    assert m["mean_per_class_recall"] == pytest.approx(100 * (0.5 + 1 + 1 / 3) / 3)


def test_top5_of_many_classes():
    n_classes = 8
    protos = torch.eye(n_classes)
    # the query scores class c at 8 - rank: label 6 is ranked 6th (miss), label 3 is 3rd (hit)
    q = torch.nn.functional.normalize(torch.tensor([[8, 7, 6, 5, 4, 3, 2, 1.0]] * 2), dim=-1)
    m = metrics(top_k(q, protos), [5, 2])
    assert m["top1"] == 0.0 and m["top5"] == pytest.approx(50.0)


def test_encode_in_batches_concatenates_and_normalises():
    out = encode_in_batches(fake_encode, ["a cat", "a dog", "the dog"], batch_size=2)
    assert torch.allclose(out, torch.tensor([[1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]]))


def test_empty_metrics():
    assert metrics(None, [])["top1"] is None
