"""Each loss variant equals its formula on a fixed batch; precomputed reference log-probs give the live loss.

The policy is the tiny LLaVA, the reference a perturbed copy of it (so log-ratios are not zero). Expected
values come from plain forward passes (full logits, log_softmax, gather), not from the trainer's fused head.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipdpo_cli.io.jsonl import read_jsonl
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.ref_logps import add_ref_logps
from clipdpo_cli.train.build import build_trainer
from clipdpo_cli.train.data import collect_pairs
from clipdpo_cli.train.loading import load_policy
from clipdpo_cli.train.losses import cdpo_loss
from clipdpo_cli.train.refcache import RefScorer
from clipdpo_cli.train.settings import TrainSettings

BETA = 0.3


@pytest.fixture(scope="module")
def ref_dir(tiny_llava, tmp_path_factory) -> str:
    """The tiny LLaVA with its weights moved a little: a reference that disagrees with the policy."""
    from transformers import AutoProcessor

    model = load_policy(tiny_llava)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    out = str(tmp_path_factory.mktemp("ref-llava"))
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_llava).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pairs(toy_pairs):
    return collect_pairs(read_jsonl(toy_pairs))


def settings(model: str, ref: str, loss: str, tmp_path, **kw) -> TrainSettings:
    return TrainSettings(
        pairs="-",
        model=model,
        ref_model=ref,
        output_dir=str(tmp_path),
        loss=loss,
        beta=BETA,
        per_device_batch_size=4,
        batch_size=4,
        gradient_checkpointing=False,
        **kw,
    )


def plain_logps(model, input_ids, attention_mask, completion_mask, pixel_values) -> torch.Tensor:
    """Sum of completion-token log-probs from the full logits."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(2, input_ids[:, 1:, None]).squeeze(2)
    return (logp * completion_mask[:, 1:]).sum(dim=1)


def paired_case(trainer, rows, ref_dir):
    batch = trainer.data_collator(rows)
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"], batch["pixel_values"])
    policy = plain_logps(load_policy(trainer.model.config._name_or_path), *args)
    ref = plain_logps(load_policy(ref_dir), *args)
    n = len(rows)
    chosen_ratio, rejected_ratio = policy[:n] - ref[:n], policy[n:] - ref[n:]
    lengths = batch["completion_mask"].sum(dim=1).float()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    return float(loss), chosen_ratio, rejected_ratio, lengths[:n], lengths[n:]


def expected_paired(loss: str, c: torch.Tensor, r: torch.Tensor, lc: torch.Tensor, lr: torch.Tensor) -> float:
    d = c - r
    if loss == "dpo":
        per = -torch.log(torch.sigmoid(BETA * d))
    elif loss == "slic":
        per = torch.clamp(1 - BETA * d, min=0)
    elif loss == "ipo":
        per = (c / lc - r / lr - 1 / (2 * BETA)) ** 2
    elif loss == "cdpo":
        eps = 0.1
        per = -(1 - eps) * torch.log(torch.sigmoid(BETA * d)) - eps * torch.log(torch.sigmoid(-BETA * d))
    elif loss == "dpo,slic":  # TRL combines several loss types, weight 1 each
        per = -torch.log(torch.sigmoid(BETA * d)) + torch.clamp(1 - BETA * d, min=0)
    elif loss == "robust":  # passed through to TRL by name
        eps = 0.1
        per = (-(1 - eps) * F.logsigmoid(BETA * d) + eps * F.logsigmoid(-BETA * d)) / (1 - 2 * eps)
    else:
        raise AssertionError(loss)
    return float(per.mean())


@pytest.mark.parametrize("loss", ["dpo", "ipo", "slic", "cdpo", "robust", "dpo,slic"])
def test_paired_loss_matches_formula(loss, tiny_llava, ref_dir, pairs, tmp_path):
    extra = {"label_smoothing": 0.1} if loss == "robust" else {}
    trainer, mode, _ = build_trainer(settings(tiny_llava, ref_dir, loss, tmp_path, **extra), pairs)
    assert mode == "live"
    rows = [trainer.train_dataset[i] for i in range(4)]
    got, c, r, lc, lr = paired_case(trainer, rows, ref_dir)
    assert c.abs().max() > 0.05 and (c - r).abs().max() > 0.05  # the reference really differs
    want = expected_paired(loss, c, r, lc, lr)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_loss_names():
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train.losses import LOSSES, resolve_loss

    def runs(name):
        loss = resolve_loss(name)
        return loss.trainer, loss.trl_loss_type

    assert runs("SLiC") == ("dpo", ["hinge"])
    assert runs("kto") == ("kto", "kto")
    assert runs("apo_zero_unpaired") == ("kto", "apo_zero_unpaired")
    assert runs("dpo, sft") == ("dpo", ["sigmoid", "sft"])
    assert runs("cdpo") == ("dpo", ["sigmoid"]) and LOSSES["cdpo"].own_formula is not None
    assert dict(LOSSES["cdpo"].defaults) == {"label_smoothing": 0.1}  # the paper's Table 5
    assert all(not loss.defaults for name, loss in LOSSES.items() if name != "cdpo")
    for bad in ("nope", "cdpo,sft", "kto,dpo"):
        with pytest.raises(UsageError):
            resolve_loss(bad)


def test_cdpo_default_label_smoothing_is_the_papers(tiny_llava, ref_dir, pairs, tmp_path):
    trainer, _, _ = build_trainer(settings(tiny_llava, ref_dir, "cdpo", tmp_path), pairs)
    assert trainer.label_smoothing == 0.1 and trainer.own_loss is cdpo_loss
    trainer, _, _ = build_trainer(settings(tiny_llava, ref_dir, "dpo", tmp_path), pairs)
    assert trainer.label_smoothing == 0.0 and trainer.own_loss is None


def test_kto_loss_matches_formula(tiny_llava, ref_dir, pairs, tmp_path):
    trainer, _, _ = build_trainer(settings(tiny_llava, ref_dir, "kto", tmp_path), pairs)
    rows = [trainer.train_dataset[i] for i in range(4)]
    # unpaired layout: a block of chosen then the same pairs' rejected; each neighbour is another image
    assert [row["label"] for row in rows] == [True, True, False, False]
    assert rows[0]["image"] == rows[2]["image"] and rows[0]["image"] != rows[1]["image"]
    batch = trainer.data_collator(rows)
    policy, ref = load_policy(tiny_llava), load_policy(ref_dir)
    main = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"], batch["pixel_values"])
    kl_args = (
        batch["KL_input_ids"],
        batch["KL_attention_mask"],
        batch["KL_completion_mask"],
        batch["pixel_values"],
    )
    ratio = plain_logps(policy, *main) - plain_logps(ref, *main)
    kl = (plain_logps(policy, *kl_args) - plain_logps(ref, *kl_args)).mean().clamp(min=0)
    labels = batch["label"].bool()
    per = torch.where(labels, 1 - torch.sigmoid(BETA * (ratio - kl)), 1 - torch.sigmoid(BETA * (kl - ratio)))
    with torch.no_grad():
        got = float(trainer.compute_loss(trainer.model, batch))
    assert ratio.abs().max() > 0.05
    assert got == pytest.approx(float(per.mean()), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("loss", ["dpo", "cdpo"])
def test_precomputed_reference_gives_the_live_loss(loss, tiny_llava, ref_dir, toy_pairs, tmp_path):
    records = list(read_jsonl(toy_pairs))
    scorer = RefScorer(ref_dir)
    with_ref = list(add_ref_logps(iter(records), scorer, StageContext("train"), batch_size=3))
    assert len(with_ref) == len(records)
    assert all(math.isfinite(r["ref_chosen_logps"]) and r["ref_model"] == ref_dir for r in with_ref)
    assert {k: v for k, v in with_ref[0].items() if not k.startswith("ref_")} == records[0]  # passes through

    live, live_mode, _ = build_trainer(
        settings(tiny_llava, ref_dir, loss, tmp_path), collect_pairs(iter(records))
    )
    pre_pairs = collect_pairs(iter(with_ref))
    pre, pre_mode, _ = build_trainer(settings(tiny_llava, None, loss, tmp_path), pre_pairs)
    assert (live_mode, pre_mode) == ("live", "precomputed")
    assert pre.ref_model is None  # no reference copy in memory
    for start in (0, 4):
        live_rows = [live.train_dataset[i] for i in range(start, start + 4)]
        pre_rows = [pre.train_dataset[i] for i in range(start, start + 4)]
        assert "ref_chosen_logps" in pre_rows[0] and "ref_chosen_logps" not in live_rows[0]
        with torch.no_grad():
            a = float(live.compute_loss(live.model, live.data_collator(live_rows)))
            b = float(pre.compute_loss(pre.model, pre.data_collator(pre_rows)))
        assert abs(a - b) < 1e-5, (a, b)
        assert abs(a - math.log(2)) > 1e-3  # the reference differs from the policy
