"""The optimizer, schedule and clipping of a run (``training.optim``)."""

from __future__ import annotations

import pytest
import torch

from sbert_siamese import SiameseEncoder
from sbert_siamese.training.optim import build_optimizer, build_scheduler, clip_gradients

from .test_trainer import config


def test_scheduler_matches_transformers_and_holds_the_encoder_during_head_only_steps():
    from transformers import get_linear_schedule_with_warmup

    from sbert_siamese.config import TrainConfig

    def optimizer(head: bool):
        groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0, "is_head": False}]
        if head:
            groups.append({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 10.0, "is_head": True})
        return torch.optim.SGD(groups, lr=1.0)

    def rates(scheduler, opt, steps):
        out = []
        for _ in range(steps):
            out.append([g["lr"] for g in opt.param_groups])
            opt.step()
            scheduler.step()
        return out

    cfg = TrainConfig(model="m", train_data="t", warmup_ratio=0.2, head_only_steps=4)
    ours, ref = optimizer(True), optimizer(True)
    got = rates(build_scheduler(ours, cfg, 20), ours, 20)
    expected = rates(get_linear_schedule_with_warmup(ref, 4, 20), ref, 20)
    assert [r[1] for r in got] == pytest.approx([r[1] for r in expected])  # the head: the usual schedule
    encoder = [r[0] for r in got]
    assert encoder[:4] == [0.0] * 4  # held while the head alone learns
    # then warmup over 20% of the remaining 16 steps (3) and linear decay to 0 at step 20
    assert encoder[4:8] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert encoder[8] == pytest.approx(12 / 13) and encoder[-1] == pytest.approx(1 / 13)
    # without a head there is nothing to hold: head_only_steps is ignored, the schedule is transformers'
    plain, ref = optimizer(False), optimizer(False)
    got = [r[0] for r in rates(build_scheduler(plain, cfg, 20), plain, 20)]
    assert got == pytest.approx([r[0] for r in rates(get_linear_schedule_with_warmup(ref, 4, 20), ref, 20)])


def test_fused_optimizer_and_clipping_equal_the_per_tensor_reference(tiny_bert_dir, tmp_path):
    """The speed settings (fused AdamW, multi-tensor clipping) do the same arithmetic as torch's defaults."""
    from accelerate import Accelerator

    cfg = config(tmp_path, tiny_bert_dir, weight_decay=0.01, learning_rate=1e-2)
    fast = SiameseEncoder.from_pretrained(tiny_bert_dir)
    slow = SiameseEncoder.from_pretrained(tiny_bert_dir)
    fast_opt = build_optimizer(fast, cfg)
    assert fast_opt.defaults["fused"] is True
    slow_opt = torch.optim.AdamW(  # the same groups, torch's per-tensor loop
        [
            {"params": g["params"], "weight_decay": g["weight_decay"]}
            for g in build_optimizer(slow, cfg).param_groups
        ],
        lr=1e-2,
        foreach=False,
    )
    accelerator = Accelerator(cpu=True)
    texts = ["a man is playing the guitar", "the cat sat", "two dogs run in the park"]
    for step in range(3):
        for model, opt, clip in ((fast, fast_opt, "fast"), (slow, slow_opt, "slow")):
            features = model.tokenize(texts)
            loss = (model(**features) * (step + 1)).pow(2).sum() * 100  # big enough gradients to be clipped
            loss.backward()
            if clip == "fast":
                clip_gradients(accelerator, model, 0.5)
            else:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5, foreach=False)
                assert norm > 0.5
            opt.step()
            opt.zero_grad()
    for (name, a), (_, b) in zip(fast.named_parameters(), slow.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    assert not torch.equal(
        fast.transformer.embeddings.word_embeddings.weight,
        SiameseEncoder.from_pretrained(tiny_bert_dir).transformer.embeddings.word_embeddings.weight,
    )
