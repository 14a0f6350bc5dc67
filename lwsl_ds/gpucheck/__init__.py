"""GPU acceptance check: one prepared run that measures what needs a CUDA device, rehearsed on CPU.

``python -m lwsl_ds.gpucheck`` (``make gpu-check``) runs four checks, each in its own process under its own
time limit, and writes ``report.md`` / ``report.json`` after each one (a check that fails or overruns is
recorded with its error line; the others still run):

1. ``data``: images/s of DALI ``mixed`` (GPU decoding), DALI CPU and torchvision on the same JPEGs;
2. ``train``: ``deepspeed --num_gpus 1 launchers/train.py`` per strategy and precision (NCCL), and the
   parameters of a DeepSpeed run against the reference backend's on the same device;
3. ``memory``: paper Table IV on the device: ``max_memory_allocated`` / ``max_memory_reserved`` of a real
   step beside the accounted peak, per strategy and for the balanced layer-wise mode;
4. ``pytest``: the tests marked ``gpu``.

Without CUDA every GPU item is reported as skipped with the reason and the CPU items are measured at a
small size (the rehearsal, run by tests/gpu_check). :mod:`.carry` packs the wheels the GPU machine lacks
into batches that fit one device call. See docs/gpu_check.md.
"""

CHECKS = ("data", "train", "memory", "pytest")
