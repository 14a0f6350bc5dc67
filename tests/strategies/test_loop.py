"""The training loop's grouping of loader batches into steps (retraining's gradient accumulation)."""

from __future__ import annotations

import torch

from lwsl_ds.strategies.loop import HookBase, Trainer


class _Loader:
    """The Trainer's loader interface over numbered batches: every image of batch i of epoch e holds 100 e + i."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch, self.position = n, 0, 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def __iter__(self):
        for i in range(self.position, self.n):
            self.position = i + 1
            yield torch.full((2, 1), float(100 * self.epoch + i)), torch.zeros(2, dtype=torch.long)


class _Record:
    """A step that records the batch numbers it was given."""

    def __init__(self) -> None:
        self.seen: list = []

    def step(self, net, x, y, backend, rng, tracker):
        self.seen.append([int(t[0, 0]) for t in x] if isinstance(x, list) else int(x[0, 0]))
        return {"loss/head": torch.tensor(1.0)}


class _Epochs(HookBase):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def after_step(self, t: Trainer) -> None:
        self.seen.append((t.step, t.step_epoch))


def test_a_step_of_several_batches_takes_them_in_order_and_skips_an_epochs_leftover():
    step, epochs = _Record(), _Epochs()
    t = Trainer(torch.nn.Identity(), step, None, _Loader(5), seed=0, total_steps=5, hooks=[epochs],
                batches_per_step=2)
    t.train()
    assert t.steps_per_epoch == 2 and t.images_per_s > 0
    assert step.seen == [[0, 1], [2, 3], [100, 101], [102, 103], [200, 201]]  # batch 4 of each epoch: unused
    assert epochs.seen == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2)]


def test_a_resumed_run_continues_at_the_loaders_position():
    loader, step = _Loader(5), _Record()
    loader.set_epoch(1)
    loader.position = 2  # as a checkpoint after step 3 (epoch 1, one step done) restores it
    Trainer(torch.nn.Identity(), step, None, loader, seed=0, total_steps=5, start_step=3, batches_per_step=2).train()
    assert step.seen == [[102, 103], [200, 201]]


def test_one_batch_per_step_hands_over_tensors():
    step = _Record()
    Trainer(torch.nn.Identity(), step, None, _Loader(3), seed=0, total_steps=4).train()
    assert step.seen == [0, 1, 2, 100]
