"""The case table: bad input and faults through the real launchers, each one line, exit 2, nothing touched.

Every case runs a launcher as a user would and asserts: exit code 2, exactly one ``error:`` line that names
the file or key (the expected fragments), no traceback, and the shared trained run directory byte-identical
afterwards (cases that damage a checkpoint work on their own copy and check that copy instead). Most cases
fail before any process group or engine exists (well under a second each); the resume cases fail after
reading the checkpoint, a few after the engines are built. docs/reliability.md lists the table.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from .helpers import LAUNCH, PY, REPO, run, snapshot, train_cmd, write_ds

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"


@dataclass
class Ctx:
    """What a case builds its command from: the shared run, a scratch folder, the run it must leave alone."""

    trained: dict
    tmp: Path
    guard: Path = None  # type: ignore[assignment]  # the folder that must stay byte-identical
    env: dict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.trained["root"]

    def file(self, name: str, text: str | bytes) -> Path:
        p = self.tmp / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    def ds(self, name: str = "ds.json", **changes) -> Path:
        return write_ds(self.tmp / name, zero_stage=1, **changes)

    def ds_opt(self, **params) -> Path:
        ds = json.loads(self.trained["ds"].read_text())
        ds["optimizer"]["params"].update(params)
        return self.file("ds_opt.json", json.dumps(ds))

    def ds_sched(self, **params) -> Path:
        ds = json.loads(self.trained["ds"].read_text())
        ds["scheduler"]["params"].update(params)
        return self.file("ds_sched.json", json.dumps(ds))

    def train(self, *extra: str, ds: Path | None = None, name: str = "tiny", config: Path | None = None,
              root: Path | None = None) -> list[str]:
        flags = [a for a in extra if a.startswith("--")]  # after the overrides: argparse's positional list
        sets = [a for a in extra if not a.startswith("--")]
        return train_cmd(ds or self.trained["ds"], root or self.root, name, "train.max_steps=4", *sets,
                         config=config) + flags

    def copy_run(self) -> Path:
        """A private copy of the trained run (for cases that damage it); it becomes the guarded folder."""
        root = self.tmp / "runs"
        shutil.copytree(self.root, root)
        return root

    @property
    def ckpt(self) -> str:
        return self.trained["ckpt"].name


@dataclass
class Case:
    """One row of the table: how to run it, what the error line must contain, and a damage step run first."""

    id: str
    build: Callable[[Ctx], list[str]]
    expect: tuple[str, ...]
    damage: Callable[[Ctx, Path], None] | None = None  # on a private copy of the run (then guarded)
    env: dict = field(default_factory=dict)


def _cfg(ctx: Ctx, body: str) -> Path:
    return ctx.file("exp.yaml", "space: {name: demo}\ndata: {source: demo, num_workers: 0}\n" + body)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _search(ctx: Ctx, ckpt: Path, *extra: str) -> list[str]:
    return [PY, str(LAUNCH / "search.py"), "--config", str(REPO / "configs" / "train_demo.yaml"), "--checkpoint",
            str(ckpt), "--no-progress", "--out", str(ctx.tmp / "search"), "space.resolution=16",
            f"search.cache_dir={ctx.tmp / 'cache'}", *extra]


def _rank(ctx: Ctx, ckpt: Path, *extra: str) -> list[str]:
    return [PY, str(LAUNCH / "rank.py"), "--config", str(REPO / "configs" / "train_demo.yaml"), "--checkpoint",
            str(ckpt), "--no-progress", "--out", str(ctx.tmp / "rank"), "space.resolution=16", *extra]


def _retrain(ctx: Ctx, *extra: str, ds: Path | None = None, config: Path | None = None,
             arch: Path | None = None) -> list[str]:
    if arch is None:
        from lwsl_ds.space import load_space, parse_arch, save_arch

        space = load_space("demo")
        arch = save_arch(ctx.tmp / "arch.yaml", space, parse_arch(space, "1230"))
    return [PY, str(LAUNCH / "retrain.py"), "--config", str(config or REPO / "configs" / "retrain_cifar10.yaml"),
            "--ds_config", str(ds or REPO / "ds_configs" / "retrain_cpu.json"), "--arch", str(arch), "--run_dir",
            str(ctx.tmp / "retrain"), *extra]


def _ds_file(ctx: Ctx, doc: dict) -> Path:
    return ctx.file("ds_case.json", json.dumps(doc))


RETRAIN_DS = json.loads((REPO / "ds_configs" / "retrain_cpu.json").read_text())

CASES = [
    # ---- run names (before anything is written) ----
    Case("name_parent", lambda c: c.train(name="../../escaped"), ("name:", "../../escaped", "run_root=")),
    Case("name_empty", lambda c: c.train(name=""), ("name: empty",)),
    Case("name_separator", lambda c: c.train(name="a/b"), ("name:", "'a/b'")),
    Case("name_dotdot", lambda c: c.train(name=".."), ("name:", "'..'")),
    Case("name_layer_parallel", lambda c: [PY, str(LAUNCH / "train_layer_parallel.py"), "--ds_config",
                                           str(c.trained["ds"]), "--config", str(REPO / "configs/train_demo.yaml"),
                                           f"run_root={c.root}", "name=../x"], ("name:", "'../x'")),
    # ---- experiment YAML ----
    Case("yaml_alias_bomb", lambda c: c.train(config=_cfg(c, "train:\n  group_overrides:\n" + "".join(
        "    " + line + "\n" for line in BOMB.splitlines()))), ("exp.yaml", "anchors and aliases")),
    Case("yaml_duplicate_key", lambda c: c.train(config=_cfg(c, "train:\n  epochs: 2\n  epochs: 3\n")),
         ("exp.yaml", "'epochs' is given twice (lines 4 and 5)")),
    Case("yaml_non_utf8", lambda c: c.train(config=c.file("exp.yaml", b"name: caf\xe9\n")),
         ("exp.yaml", "not UTF-8")),
    Case("yaml_missing", lambda c: c.train(config=c.tmp / "nope.yaml"), ("nope.yaml", "not found")),
    Case("yaml_malformed", lambda c: c.train(config=c.file("exp.yaml", "train: [1,\n")), ("exp.yaml", "malformed")),
    Case("yaml_top_level_list", lambda c: c.train(config=c.file("exp.yaml", "- 1\n")), ("exp.yaml", "mapping")),
    Case("key_unknown", lambda c: c.train("train.stratgy=greedy"), ("train.stratgy", "did you mean 'strategy'")),
    Case("key_wrong_type", lambda c: c.train("train.epochs=many"), ("train.epochs", "integer")),
    Case("key_bad_choice", lambda c: c.train("train.strategy=greed"), ("train.strategy", "greedy")),
    Case("override_alias", lambda c: c.train("train.group_overrides={0: &a {x: 1}, 1: *a}"),
         ("train.group_overrides", "anchors and aliases")),
    Case("override_huge_value", lambda c: c.train("seed=[" + ",".join(["1"] * 20000) + "]"), ("seed",)),
    Case("dist_timeout_zero", lambda c: c.train("train.dist_timeout_s=0"), ("train.dist_timeout_s",)),
    # ---- ds_config ----
    Case("ds_missing", lambda c: c.train(ds=c.tmp / "nope.json"), ("nope.json", "not found")),
    Case("ds_malformed", lambda c: c.train(ds=c.file("ds.json", "{\"a\": ")), ("ds.json", "malformed JSON")),
    Case("ds_unknown_key", lambda c: c.train(ds=c.ds(optimiser={})), ("ds.json", "optimiser")),
    Case("ds_batch_arithmetic", lambda c: c.train(ds=c.ds(train_batch_size=7)), ("ds.json", "train_batch_size=7")),
    Case("ds_lr_string", lambda c: c.train(ds=c.ds_opt(lr="0.01")), ("ds_opt.json", "optimizer.params.lr")),
    Case("ds_lr_negative", lambda c: c.train(ds=c.ds_opt(lr=-0.1)), ("ds_opt.json", "optimizer.params.lr", "-0.1")),
    Case("ds_lr_nan", lambda c: c.train(ds=c.ds_opt(lr=float("nan"))), ("ds_opt.json", "optimizer.params.lr")),
    Case("ds_lr_huge", lambda c: c.train(ds=c.ds_opt(lr=1e30)), ("ds_opt.json", "optimizer.params.lr", "1e+30")),
    Case("ds_betas", lambda c: c.train(ds=c.ds_opt(betas=[0.9, 1.5])), ("ds_opt.json", "optimizer.params.betas[1]")),
    Case("ds_eps_zero", lambda c: c.train(ds=c.ds_opt(eps=0)), ("ds_opt.json", "optimizer.params.eps")),
    Case("ds_scheduler_warmup", lambda c: c.train(ds=c.ds_sched(warmup_num_steps=-2)),
         ("ds_sched.json", "scheduler.params.warmup_num_steps")),
    # ---- resuming: another experiment, or a damaged checkpoint ----
    Case("existing_run_without_resume", lambda c: c.train(), ("tiny", "already holds checkpoints", "--resume")),
    Case("resume_resolution", lambda c: c.train("--resume", "space.resolution=32"),
         ("manifest.json", "space.resolution: 16 in the checkpoint, 32 now", "another name=")),
    Case("resume_strategy", lambda c: c.train("--resume", "train.strategy=greedy"), ("train.strategy",)),
    Case("resume_objective", lambda c: c.train("--resume", "train.objective=infonce"), ("train.objective",)),
    Case("resume_layer_groups", lambda c: c.train("--resume", "train.layer_groups=single"), ("train.layer_groups",)),
    Case("resume_data", lambda c: c.train("--resume", "data.max_per_class=4"), ("data.max_per_class",)),
    Case("resume_micro_batch", lambda c: c.train("--resume", ds=c.ds(train_micro_batch_size_per_gpu=4)),
         ("ds_config.train_micro_batch_size_per_gpu: 8 in the checkpoint, 4 now",)),
    Case("resume_lr", lambda c: c.train("--resume", ds=c.ds_opt(lr=0.02)), ("ds_config.optimizer.params.lr",)),
    Case("resume_precision", lambda c: c.train("--resume", ds=c.ds(bf16={"enabled": True})), ("ds_config.bf16",)),
    Case("resume_truncated_engine_file", lambda c: c.train("--resume", root=c.tmp / "runs"),
         ("mp_rank_00_model_states.pt", "SHA-256 does not match"),
         damage=lambda c, r: _truncate(r / "tiny/checkpoints" / c.ckpt / "engine0" / c.ckpt /
                                       "mp_rank_00_model_states.pt")),
    Case("resume_missing_rng_file", lambda c: c.train("--resume", root=c.tmp / "runs"),
         ("rng_rank0.pt", "missing"), damage=lambda c, r: (r / "tiny/checkpoints" / c.ckpt / "rng_rank0.pt").unlink()),
    Case("resume_corrupt_manifest", lambda c: c.train("--resume", root=c.tmp / "runs"), ("manifest.json",),
         damage=lambda c, r: (r / "tiny/checkpoints" / c.ckpt / "manifest.json").write_text("{")),
    Case("resume_without_digests", lambda c: c.train("--resume", root=c.tmp / "runs"), ("sha256.json", "missing"),
         damage=lambda c, r: (r / "tiny/checkpoints" / c.ckpt / "sha256.json").unlink()),
    # ---- found once the engines are being built (a new run beside the shared one) ----
    Case("fp16_on_cpu", lambda c: c.train(name="new", ds=c.ds(fp16={"enabled": True})), ("fp16", "GPU")),
    Case("group_override_missing_group", lambda c: c.train("train.group_overrides={9: {gradient_clipping: 1.0}}",
                                                           name="new"), ("train.group_overrides", "group 9")),
    Case("group_override_bad_lr", lambda c: c.train("train.group_overrides={0: {optimizer: {params: {lr: -1}}}}",
                                                    name="new"), ("train.group_overrides.0", "lr")),
    Case("data_root_missing", lambda c: c.train("data.source=folder", f"data.root={c.tmp / 'no_data'}", name="new"),
         ("no_data",)),
    Case("run_root_is_a_file", lambda c: c.train(name="new", root=c.file("a_file", "x")), ("a_file",)),
    Case("disk_full", lambda c: c.train(name="new", root=c.tmp / "full"),
         ("no space left on the device writing", "full/new", "--resume"), env={"LWSL_FAULT": "enospc"}),
    # ---- search and rank ----
    Case("search_checkpoint_missing", lambda c: _search(c, c.tmp / "nope"), ("nope",)),
    Case("search_truncated_supernet", lambda c: _search(c, c.tmp / "runs" / "tiny"), ("supernet.pt", "truncated"),
         damage=lambda c, r: _truncate(r / "tiny" / "supernet.pt")),
    Case("search_corrupt_state", lambda c: _search(c, c.root / "tiny", "search.population=4", "search.parents=2",
                                                   "search.mutations=1", "search.crossovers=1"),
         ("search_state.json", "corrupt", "--restart"),
         damage=lambda c, r: ((c.tmp / "search").mkdir(), (c.tmp / "search/search_state.json").write_text("{"))),
    Case("rank_checkpoint_missing", lambda c: _rank(c, c.tmp / "nope", "rank.truth=x.csv"), ("nope", "no such")),
    Case("rank_yaml_duplicate", lambda c: [PY, str(LAUNCH / "rank.py"), "--config",
                                           str(_cfg(c, "rank: {seed: 1, seed: 2}\n")), "--checkpoint", str(c.root)],
         ("exp.yaml", "'seed' is given twice")),
    # ---- retraining, ground truth, memory report ----
    Case("retrain_ds_optimizer", lambda c: _retrain(c, ds=_ds_file(c, {**RETRAIN_DS, "optimizer": {"type": "SGD"}})),
         ("ds_case.json", "'optimizer' is not used for retraining")),
    Case("retrain_fp16", lambda c: _retrain(c, ds=_ds_file(c, {**RETRAIN_DS, "fp16": {"enabled": True}})),
         ("ds_case.json", "fp16")),
    Case("retrain_arch_missing", lambda c: _retrain(c, arch=c.tmp / "no_arch.yaml"), ("no_arch.yaml",)),
    Case("retrain_resume_missing_checkpoint", lambda c: _retrain(c, "--resume", str(c.tmp / "no_ckpt")),
         ("no_ckpt",)),
    Case("retrain_non_utf8", lambda c: _retrain(c, config=c.file("exp.yaml", b"name: \xff\n")),
         ("exp.yaml", "not UTF-8")),
    Case("groundtruth_bad_key", lambda c: [PY, str(LAUNCH / "groundtruth.py"), "--config",
                                           str(_cfg(c, "retrain: {epoch: 3}\n")), "--ds_config",
                                           str(REPO / "ds_configs/retrain_cpu.json"), "--out", str(c.tmp / "gt")],
         ("retrain.epoch", "did you mean")),
    Case("memory_report_space_missing", lambda c: [PY, str(REPO / "profiling" / "memory_report.py"), "--space",
                                                   str(c.tmp / "no_space.yaml"), "--out", str(c.tmp / "mem")],
         ("no_space.yaml",)),
]


def _run_case(case: Case, trained: dict, tmp: Path) -> dict:
    ctx = Ctx(trained, tmp)
    guard = trained["run"]
    if case.damage is not None:
        root = ctx.copy_run()
        case.damage(ctx, root)
        guard = root / "tiny"
    before = snapshot(guard)
    r = run(case.build(ctx), timeout=240, **case.env)
    return {"r": r, "same": snapshot(guard) == before}


@pytest.fixture(scope="module")
def results(trained, tmp_path_factory) -> dict:
    """Every case, four at a time: the launchers mostly wait on imports and files, not on the CPU."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {c.id: pool.submit(_run_case, c, trained, tmp_path_factory.mktemp(c.id)) for c in CASES}
        return {k: f.result() for k, f in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, results):
    r = results[case.id]["r"]
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"rc {r.returncode}\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out[-3000:]
    for frag in case.expect:
        assert frag in errors[0], f"{frag!r} not in {errors[0]!r}"
    assert len(errors[0]) < 800
    assert results[case.id]["same"], "the previous run directory changed"


def test_table_has_at_least_40_cases():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
