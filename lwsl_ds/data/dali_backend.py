"""DALI backend: the only module that imports NVIDIA DALI.

Encoded bytes enter through ``fn.external_source`` in the order of the shared epoch plan (see
``plan.py``), so sharding, shuffle, partial batches and resume are exactly those of the torchvision
backend; DALI only decodes and augments. Decoding is ``mixed`` (GPU) when the loader runs on CUDA and
``cpu`` otherwise (a CPU-only graph needs no GPU or driver).

Randomness: DALI draws from its own generators, seeded per (seed, epoch, rank, start position) by
rebuilding the pipeline for every pass (a build costs ~40 ms). A full epoch is therefore reproducible,
but a run resumed mid-epoch sees the same samples with different random crops/flips/jitter than the
uninterrupted run would have; use the torchvision backend where bit-identical resumes matter.

A decoding error does not name its file in DALI, so the batches in flight are re-decoded with PIL
to find it; with ``skip_corrupt`` the file is dropped from its batch and the pipeline rebuilt there.
"""

from __future__ import annotations

import warnings
from typing import Iterator, Optional

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types

from .augment import AugmentSpec
from .plan import sample_seed
from .sources import DataError, SampleIndex

__all__ = ["DaliBackend", "looks_like_image"]

_PREFETCH = 2
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(data: np.ndarray) -> bool:
    """Cheap header check (JPEG, PNG, BMP, TIFF, WebP) so skip_corrupt can drop junk before decoding."""
    head = data[:12].tobytes()
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _view(x, spec: AugmentSpec, decoded_crop: bool):
    """One view's DALI chain (uint8 HWC in, normalized float CHW out); same meaning as tv_backend."""
    r = spec.resolution
    mean = [255.0 * m for m in spec.mean]
    std = [255.0 * s for s in spec.std]
    mirror = 0
    if spec.random:
        if spec.crop == "random_resized":
            if not decoded_crop:
                x = fn.random_resized_crop(x, size=(r, r), random_area=[spec.min_scale, 1.0],
                                           random_aspect_ratio=[3 / 4, 4 / 3], antialias=True)
        else:
            if spec.needs_resize:
                x = fn.resize(x, resize_shorter=r, antialias=True)
                x = fn.crop(x, crop=(r, r))
            anchor = fn.random.uniform(values=[float(v) for v in range(-spec.pad, spec.pad + 1)], shape=[2])
            x = fn.slice(x, anchor, types.Constant(np.array([r, r], np.float32)), axes=[0, 1],
                         normalized_anchor=False, normalized_shape=False, out_of_bounds_policy="pad",
                         fill_values=0)
        mirror = fn.random.coin_flip()
        if spec.mode == "autoaugment":
            from nvidia.dali.auto_aug import auto_augment

            policy = "reduced_cifar10" if spec.aa_policy == "cifar10" else "image_net"
            x = auto_augment.auto_augment(x, policy_name=policy, shape=(r, r))
        if spec.jitter > 0 or spec.grayscale_prob > 0:
            s = spec.jitter
            saturation = fn.random.uniform(range=[1 - s, 1 + s]) if s > 0 else 1.0
            if spec.grayscale_prob > 0:  # grayscale = zero saturation (same luma weights as torchvision)
                saturation = saturation * (1 - fn.random.coin_flip(probability=spec.grayscale_prob))
            kw = dict(saturation=saturation)
            if s > 0:
                kw.update(brightness=fn.random.uniform(range=[1 - s, 1 + s]),
                          contrast=fn.random.uniform(range=[1 - s, 1 + s]),
                          hue=fn.random.uniform(range=[-s / 4 * 360.0, s / 4 * 360.0]))
            x = fn.color_twist(x, **kw)
        return fn.crop_mirror_normalize(x, mirror=mirror, mean=mean, std=std, output_layout="CHW",
                                        dtype=types.FLOAT)
    if spec.needs_resize:
        x = fn.resize(x, resize_shorter=spec.resize_short, antialias=True, interp_type=types.INTERP_LINEAR)
        return fn.crop_mirror_normalize(x, crop=(r, r), mean=mean, std=std, output_layout="CHW",
                                        dtype=types.FLOAT)
    return fn.crop_mirror_normalize(x, mean=mean, std=std, output_layout="CHW", dtype=types.FLOAT)


class _Feeder:
    """external_source callback: batch ``start + iteration`` of the plan, minus known-bad samples."""

    def __init__(self, index: SampleIndex, batches: list[np.ndarray], start: int, bad: set[int],
                 skip_corrupt: bool):
        self.index, self.batches, self.start, self.bad, self.skip = index, batches, start, bad, skip_corrupt
        self.skipped: dict[int, list[str]] = {}

    def __call__(self, info):
        k = self.start + info.iteration
        if k >= len(self.batches):
            raise StopIteration
        idxs, data, skipped = [], [], []
        for i in self.batches[k].tolist():
            if i in self.bad:
                skipped.append(self.index.names[i])
                continue
            raw = self.index.read(i)
            if self.skip and not looks_like_image(raw):
                self.bad.add(i)
                skipped.append(self.index.names[i])
                continue
            idxs.append(np.array([i], dtype=np.int64))
            data.append(raw)
        if not data:  # let DALI fail on the full batch; the error handler names the files
            idxs = [np.array([i], dtype=np.int64) for i in self.batches[k].tolist()]
            data = [self.index.read(i) for i in self.batches[k].tolist()]
        self.skipped[k] = skipped
        return data, idxs


class DaliBackend:
    """Yields (list of view tensors, labels, skipped names) for a list of planned batches."""

    name = "dali"

    def __init__(self, index: SampleIndex, spec: AugmentSpec, *, views: int, seed: int,
                 skip_corrupt: bool, num_threads: int, batch_size: int, device: str = "cpu",
                 device_id: Optional[int] = None):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        self.index, self.spec, self.views, self.seed = index, spec, views, seed
        self.skip, self.num_threads, self.batch_size = skip_corrupt, num_threads, batch_size
        self.device = device
        self.device_id = device_id if device == "gpu" else None  # None: a CPU-only graph
        if device == "gpu" and device_id is None:
            self.device_id = 0

    def _build(self, feeder: _Feeder, seed: int):
        spec, views = self.spec, self.views
        decode_device = "mixed" if self.device == "gpu" else "cpu"
        fused = spec.random and spec.crop == "random_resized" and views == 1

        def graph():
            jpegs, idx = fn.external_source(source=feeder, num_outputs=2, batch=True, batch_info=True,
                                            dtype=[types.UINT8, types.INT64])
            if fused:  # decode only the crop window: ~15% faster on CPU (measured on the 2-core CI machine)
                x = fn.decoders.image_random_crop(jpegs, device=decode_device, output_type=types.RGB,
                                                  random_area=[spec.min_scale, 1.0],
                                                  random_aspect_ratio=[3 / 4, 4 / 3])
                x = fn.resize(x, resize_x=spec.resolution, resize_y=spec.resolution, antialias=True)
                outs = [_view(x, spec, decoded_crop=True)]
            else:
                x = fn.decoders.image(jpegs, device=decode_device, output_type=types.RGB)
                outs = [_view(x, spec, decoded_crop=False) for _ in range(views)]
            return (*outs, idx)

        with warnings.catch_warnings():
            # DALI's own auto_aug code uses a deprecated op alias and forces the warning past user
            # filters (simplefilter("default") inside); drop just that message, forward the rest.
            shown = warnings.showwarning
            warnings.showwarning = lambda msg, *a, **k: (
                None if "experimental.equalize" in str(msg) else shown(msg, *a, **k))
            pipe = pipeline_def(graph, enable_conditionals=spec.mode == "autoaugment")(
                batch_size=self.batch_size, num_threads=self.num_threads, device_id=self.device_id,
                seed=seed, prefetch_queue_depth=_PREFETCH)
            pipe.build()
        return pipe

    def _to_torch(self, tl) -> torch.Tensor:
        if self.device == "gpu":
            from nvidia.dali.plugin.pytorch import feed_ndarray

            t = tl.as_tensor()
            out = torch.empty(t.shape(), dtype=torch.float32, device=f"cuda:{self.device_id}")
            feed_ndarray(t, out)
            return out
        return torch.from_numpy(np.array(tl.as_tensor()))

    def _culprits(self, batches: list[np.ndarray], first: int, bad: set[int]) -> list[int]:
        """Samples of the batches in flight that PIL cannot decode either."""
        from .tv_backend import decode_pil

        found = []
        for b in batches[first:first + _PREFETCH + 1]:
            for i in b.tolist():
                if i in bad:
                    continue
                try:
                    decode_pil(self.index.read(i), self.index.names[i])
                except DataError:
                    found.append(i)
        return found

    def iterate(self, epoch: int, batches: list[np.ndarray], rank: int) -> Iterator:
        """Produce the given batches of ``epoch`` in order (rebuilding after a skipped corrupt image)."""
        pos, bad = 0, set()
        while pos < len(batches):
            feeder = _Feeder(self.index, batches, pos, bad, self.skip)
            seed = sample_seed(self.seed, epoch, rank, 1_000_003 + pos) % (2**31 - 1)
            pipe = self._build(feeder, seed)
            try:
                while pos < len(batches):
                    outs = pipe.run()
                    idx = np.array(outs[-1].as_tensor()).reshape(-1)
                    images = [self._to_torch(o) for o in outs[:-1]]
                    labels = torch.from_numpy(self.index.labels[idx])
                    skipped = feeder.skipped.pop(pos, [])
                    pos += 1
                    yield images, labels, skipped
            except RuntimeError as e:
                culprits = self._culprits(batches, pos, bad)
                if not culprits:
                    names = [self.index.names[i] for i in batches[pos].tolist()[:4]]
                    raise DataError(f"DALI failed on a batch holding {names} ...: {e}") from None
                if not self.skip:
                    raise DataError(f"{self.index.names[culprits[0]]}: cannot decode image "
                                    f"(DALI error; set data.skip_corrupt: true to skip and count)") from None
                bad.update(culprits)
                if all(i in bad for i in batches[pos].tolist()):
                    raise DataError(f"every image of a batch is corrupt, e.g. "
                                    f"{self.index.names[culprits[0]]}") from None
            finally:
                del pipe
