"""``python -m lwsl_ds.gpucheck``: run the GPU check (or its CPU rehearsal); see docs/gpu_check.md."""

from .runner import main

raise SystemExit(main())
