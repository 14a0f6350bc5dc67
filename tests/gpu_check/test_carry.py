"""The carry kit: batches under the per-call limit, parts joined and sha256-checked, resolution for Python 3.12."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lwsl_ds.gpucheck.carry import (MARGIN, MIB, REQUIREMENTS, assemble, describe, pack, placeholder_wheel,
                                    plan_batches, tree_bytes, verify)

REPO = Path(__file__).resolve().parents[2]


def test_plan_batches_splits_what_is_larger_than_a_batch_and_fills_first_fit():
    sizes = {"dali.whl": 25 * MIB, "a.whl": 7 * MIB, "b.whl": 3 * MIB, "c.whl": 2 * MIB}
    batches, split = plan_batches(sizes, 10 * MIB)
    assert split == {"dali.whl": 10 * MIB}
    assert all(sum(s for *_, s in b) <= 10 * MIB for b in batches)
    pieces = sorted((n, k) for b in batches for n, k, _ in b)
    assert pieces == [("a.whl", -1), ("b.whl", -1), ("c.whl", -1), ("dali.whl", 0), ("dali.whl", 1), ("dali.whl", 2)]
    assert len(batches) == 4  # 10 | 10 | 7+3 | 5+2: no batch more than needed
    with pytest.raises(ValueError, match="no room to carry"):
        plan_batches(sizes, 1000)


@pytest.fixture()
def kit(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A wheel folder (one file larger than a batch) + an image folder, packed with a 1 MiB batch budget."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    rng = os.urandom
    (wheels / "big-1.0-py3-none-any.whl").write_bytes(rng(int(2.5 * MIB)))
    (wheels / "small-2.0-py3-none-any.whl").write_bytes(rng(300_000))
    images = tmp_path / "imagenet-samples"
    (images / "images").mkdir(parents=True)
    (images / "manifest.csv").write_text("file,class_index\nx.jpg,3\n")
    (images / "images" / "x.jpg").write_bytes(rng(50_000))
    limit = tree_bytes(REPO) + MARGIN + MIB
    return wheels, images, pack(wheels, tmp_path / "carry", images, repo=REPO, limit=limit)


def test_pack_then_assemble_gives_back_the_same_bytes(kit, tmp_path: Path):
    wheels, images, doc = kit
    carry = tmp_path / "carry"
    assert doc["budget_bytes"] == MIB and doc["batches"] == 3  # 1 | 1 | 0.5 + 0.3 + images
    for b in range(1, doc["batches"] + 1):
        files = [p for p in (carry / f"b{b}").iterdir() if p.name != "kit.json"]
        assert sum(p.stat().st_size for p in files) <= MIB and (carry / f"b{b}" / "kit.json").is_file()
    big = next(i for i in doc["items"] if i["name"].startswith("big"))
    assert len(big["parts"]) == 3
    text = describe(doc, ".whl/carry")
    assert 'call 1: carry [".whl/carry/b1"]' in text and "(last: the call that also runs" in text
    assemble(carry, tmp_path / "kit")
    for w in wheels.iterdir():
        assert (tmp_path / "kit" / "wheels" / w.name).read_bytes() == w.read_bytes()
    got = tmp_path / "kit" / "images" / "imagenet-samples"
    assert (got / "images" / "x.jpg").read_bytes() == (images / "images" / "x.jpg").read_bytes()
    assemble(carry, tmp_path / "kit")  # a second call (say a rerun) finds everything in place


def test_assemble_names_a_missing_batch_and_a_cut_part(kit, tmp_path: Path):
    _, _, doc = kit
    carry = tmp_path / "carry"
    part = next(carry.glob("b*/big-1.0-py3-none-any.whl.part001"))
    data = part.read_bytes()
    part.write_bytes(data[:-10])  # a transfer cut short
    with pytest.raises(ValueError, match="sha256 .* after joining 3 part"):
        assemble(carry, tmp_path / "kit")
    part.write_bytes(data)
    for p in (carry / "b2").iterdir():
        p.unlink()
    (carry / "b2").rmdir()
    with pytest.raises(FileNotFoundError, match=r"batches \[2\] of 3 did not arrive"):
        assemble(carry, tmp_path / "kit2")


def test_pack_refuses_two_versions_of_one_package(tmp_path: Path):
    for v in ("1.0", "1.1"):
        (tmp_path / f"pkg-{v}-py3-none-any.whl").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"several versions of \['pkg'\]"):
        pack(tmp_path, tmp_path / "carry", repo=REPO)


def test_verify_resolves_against_the_image_and_names_what_is_missing(tmp_path: Path):
    """pip --dry-run for CPython 3.12 with stand-ins: the requirements' own needs come from kit or image."""
    kit = tmp_path / "kit"
    kit.mkdir()
    names = [r.split("==") for r in REQUIREMENTS]
    for name, version in names:
        placeholder_wheel(kit, name, version, ("torch>=2.0", "hjson") if name == "deepspeed" else ())
    hjson = placeholder_wheel(kit, "hjson", "3.1.0")
    rows = verify(kit)
    assert {(n.lower(), s) for n, _, s in rows} >= {("deepspeed", "kit"), ("hjson", "kit"), ("torch", "image")}
    assert ("torch", "2.11.0", "image") in rows
    hjson.unlink()
    with pytest.raises(ValueError, match="does not resolve for Python 3.12.*hjson"):
        verify(kit)
    assert json.dumps(rows)  # plain data for the wheelhouse script's print-out
