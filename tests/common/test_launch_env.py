"""Launch-style detection: the rank variables each launcher and Slurm layout must produce."""

from __future__ import annotations

import pytest

from lwsl_ds.common.launch_env import LaunchEnvError, apply, detect, first_host, resolve


@pytest.mark.parametrize("nodelist, host", [
    ("n1", "n1"), ("n[1-2]", "n1"), ("node[007-010,012]", "node007"), ("a[3,5],b1", "a3"),
    ("gpu[2-3]-ib,cpu1", "gpu2-ib"), ("x1,y[1-4]", "x1"),
])
def test_first_host_of_slurm_nodelist(nodelist, host):
    assert first_host(nodelist) == host


def _srun_task(procid: int, localid: int, nodeid: int, ntasks: int = 4, **extra) -> dict[str, str]:
    # What `srun` gives each task of a 2-node x 2-task step (no RANK variables at all).
    env = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_PROCID": str(procid),
           "SLURM_LOCALID": str(localid), "SLURM_NODEID": str(nodeid), "SLURM_NTASKS": str(ntasks),
           "SLURM_STEP_NUM_TASKS": str(ntasks), "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_STEP_NODELIST": "n[1-2]"}
    env.update(extra)
    return env


def test_one_task_per_gpu_maps_slurm_ids_to_ranks():
    envs = [detect(_srun_task(p, p % 2, p // 2)) for p in range(4)]
    assert [(e.rank, e.local_rank, e.node_rank, e.world_size) for e in envs] == [
        (0, 0, 0, 4), (1, 1, 0, 4), (2, 0, 1, 4), (3, 1, 1, 4)]
    assert {e.style for e in envs} == {"slurm"}
    # Every task must agree on the rendezvous without talking: first node, port from the job id.
    assert {(e.master_addr, e.master_port) for e in envs} == {("n1", 15000 + 4242 % 15000)}


def test_exported_master_wins_over_nodelist():
    e = detect(_srun_task(1, 1, 0, MASTER_ADDR="10.0.0.7", MASTER_PORT="23456"))
    assert (e.master_addr, e.master_port, e.rank) == ("10.0.0.7", 23456, 1)


def test_step_size_wins_over_job_size():
    # `srun -n 2` inside a 4-task allocation: world is the step's 2 tasks, not the job's 4.
    e = detect(_srun_task(1, 1, 0, SLURM_NTASKS="4", SLURM_STEP_NUM_TASKS="2"))
    assert e.world_size == 2


def test_deepspeed_per_node_style_prefers_rank_variables():
    # `srun --ntasks-per-node=1 deepspeed --no_ssh --node_rank=1 ...`: the task is node 1's launcher
    # (SLURM_PROCID=1 of 2) but the rank it forked is global rank 3 of 4.
    env = _srun_task(1, 0, 1, ntasks=2, RANK="3", WORLD_SIZE="4", LOCAL_RANK="1",
                     MASTER_ADDR="127.0.0.1", MASTER_PORT="29511")
    e = detect(env)
    assert (e.rank, e.world_size, e.local_rank, e.node_rank, e.style) == (3, 4, 1, 1, "launcher")


def test_batch_script_is_not_mistaken_for_rank_zero_of_n():
    # The batch shell carries SLURM_PROCID=0 and SLURM_NTASKS=4 but no step: a plain `python` there
    # is a single process, not rank 0 waiting for 3 peers forever.
    env = _srun_task(0, 0, 0)
    del env["SLURM_STEP_ID"]
    assert detect(env).style == "single" and detect(env).world_size == 1


def test_single_process_defaults_and_resolve_is_idempotent():
    env: dict[str, str] = {}
    first = resolve(env)
    assert (first.rank, first.world_size, first.local_rank, first.master_addr) == (0, 1, 0, "127.0.0.1")
    assert env["RANK"] == "0" and env["WORLD_SIZE"] == "1" and int(env["MASTER_PORT"]) == first.master_port
    again = resolve(env)
    assert (again.rank, again.world_size, again.master_port) == (0, 1, first.master_port)


@pytest.mark.parametrize("env, message", [
    ({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "RANK=4"),
    ({"RANK": "x", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "MASTER_ADDR": "h"}, "RANK='x'"),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "MASTER_ADDR"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "70000"},
     "MASTER_PORT=70000"),
])
def test_bad_launch_variables_are_named(env, message):
    with pytest.raises(LaunchEnvError, match=message):
        detect(env)


def test_apply_writes_what_torch_reads():
    env: dict[str, str] = {}
    apply(detect(_srun_task(2, 0, 1)), env)
    assert env == {"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "MASTER_ADDR": "n1",
                   "MASTER_PORT": str(15000 + 4242)}
