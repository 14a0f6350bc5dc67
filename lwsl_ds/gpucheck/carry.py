"""The carry kit: wheels (and sample JPEGs) packed into batch folders that each fit one device call.

The lent GPU machine receives the working tree plus the git-ignored paths a call names in ``carry``, at most
64 MiB per call; ignored files stay there while the machine is warm. ``pack`` (here) sorts the files into
batch folders ``b1 .. bN`` under that limit, splitting a file larger than a batch (the 199 MB DALI wheel)
into parts, and writes ``kit.json`` (every file's sha256, parts, batch) into each batch.
``assemble`` (there) checks that every batch arrived, joins the parts, verifies every sha256 and lays
the wheels and images out for ``pip install --no-index --find-links``. Stdlib only: it runs before
anything is installed.

    python -m lwsl_ds.gpucheck.carry pack --wheels .whl/wheels --out .whl/carry [--images DIR]
    python -m lwsl_ds.gpucheck.carry verify --wheels .whl/wheels          # here: resolves for Python 3.12?
    python -m lwsl_ds.gpucheck.carry install --carry .whl/carry --dest .whl/kit   # there: assemble + pip
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["CALL_LIMIT", "REQUIREMENTS", "GPU_IMAGE", "Item", "tree_bytes", "plan_batches", "pack", "describe",
           "assemble", "placeholder_wheel", "verify", "install"]

MIB = 2 ** 20
CALL_LIMIT = 64 * MIB  # the device tool's limit on what one call sends (working tree + carried paths)
MARGIN = 2 * MIB  # room for files the tree gains before the calls (reports, a new source file) and kit.json
IMAGES_TAR = "images.tar"
# What the GPU machine installs from the kit; pip takes their requirements from the kit only where the
# machine's own packages do not satisfy them.
REQUIREMENTS = ("deepspeed==0.19.8", "fvcore==0.1.5.post20221221", "nvidia-dali-cuda130==2.4.0")
# The GPU image's packages that these requirements use (docs/gpu_check.md: versions read off the machine where
# known, else the version this project's venv runs, as a stand-in); ``verify`` resolves against them.
GPU_IMAGE = {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.5.2", "scipy": "1.17.1", "pillow": "13.0.0",
             "pyyaml": "6.0.4", "tqdm": "4.70.1", "psutil": "7.2.2", "ninja": "1.13.2", "msgpack": "1.2.4",
             "py-cpuinfo": "9.0.0", "einops": "0.8.2", "setuptools": "84.2.1",
             "matplotlib": "3.11.2"}


@dataclass
class Item:
    """One file of the kit (a wheel, or the images tar), maybe split into parts, each part in one batch."""

    name: str
    size: int
    sha256: str
    parts: list[dict] = field(default_factory=list)  # [{"file": name, "size": n, "batch": k}]


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 8 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 * MIB), b""):
            h.update(block)
    return h.hexdigest()


def tree_bytes(repo: Path) -> int:
    """Bytes of what every call sends besides ``carry``: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    total = 0
    for rel in out.split(b"\0"):
        p = repo / os.fsdecode(rel)
        if rel and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    shared = repo / "shared"  # a shared/ folder inside the checkout travels too
    if shared.is_dir():
        total += sum(p.stat().st_size for p in shared.rglob("*") if p.is_file())
    return total


def plan_batches(sizes: dict[str, int], budget: int) -> tuple[list[list[tuple[str, int, int]]], dict[str, int]]:
    """First-fit decreasing of files into batches of at most ``budget`` bytes; larger files become parts.

    Returns the batches as lists of (name, part index, bytes) and the part size used for split files.
    """
    if budget < MIB:
        raise ValueError(f"batch budget {budget} B is under 1 MiB: the working tree leaves no room to carry")
    pieces: list[tuple[str, int, int]] = []
    split: dict[str, int] = {}
    for name, size in sizes.items():
        if size <= budget:
            pieces.append((name, -1, size))
            continue
        split[name] = budget
        n = -(-size // budget)
        pieces += [(name, k, min(budget, size - k * budget)) for k in range(n)]
    batches: list[list[tuple[str, int, int]]] = []
    free: list[int] = []
    for piece in sorted(pieces, key=lambda p: -p[2]):
        for b, room in enumerate(free):
            if piece[2] <= room:
                batches[b].append(piece)
                free[b] -= piece[2]
                break
        else:
            batches.append([piece])
            free.append(budget - piece[2])
    return batches, split


def _tar_images(src: Path, dest: Path) -> Path:
    """One uncompressed tar of the sample JPEG folder (JPEGs do not compress), named after the folder."""
    with tarfile.open(dest, "w") as tar:
        tar.add(src, arcname=src.name)
    return dest


def pack(wheels: Path, out: Path, images: Path | None = None, repo: Path | None = None,
         limit: int = CALL_LIMIT) -> dict:
    """Write batch folders ``out/b1..bN`` (hard links or parts) + ``kit.json``; return the kit description."""
    repo = repo or Path(__file__).resolve().parents[2]
    files = {p.name: p for p in sorted(wheels.glob("*.whl"))}
    if not files:
        raise FileNotFoundError(f"{wheels}: no .whl files (run scripts/gpu_wheelhouse.sh)")
    names = [n.split("-")[0].lower() for n in files]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{wheels}: several versions of {dup}; keep one of each (two stop the install)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if images is not None:
        files[IMAGES_TAR] = _tar_images(images, out / IMAGES_TAR)
    tree = tree_bytes(repo)
    budget = limit - tree - MARGIN
    sizes = {n: p.stat().st_size for n, p in files.items()}
    batches, split = plan_batches(sizes, budget)
    items = {n: Item(n, sizes[n], _sha256(p)) for n, p in files.items()}
    for b, batch in enumerate(batches, start=1):
        bdir = out / f"b{b}"
        bdir.mkdir()
        for name, k, size in batch:
            src = files[name]
            if k < 0:
                target = bdir / name
                try:
                    os.link(src, target)
                except OSError:
                    shutil.copy2(src, target)
            else:
                target = bdir / f"{name}.part{k:03d}"
                with open(src, "rb") as f, open(target, "wb") as g:
                    f.seek(k * split[name])
                    g.write(f.read(size))
            items[name].parts.append({"file": target.name, "size": size, "batch": b, "index": max(k, 0)})
    if images is not None:
        (out / IMAGES_TAR).unlink()  # its hard link or parts live in the batches
    kit = {"limit_bytes": limit, "tree_bytes": tree, "budget_bytes": budget, "batches": len(batches),
           "items": [asdict(i) for i in items.values()]}
    for b in range(1, len(batches) + 1):
        (out / f"b{b}" / "kit.json").write_text(json.dumps(kit, indent=1))
    return kit


def describe(kit: dict, carry_rel: str) -> str:
    """Sizes of every file and the batch plan: which path to carry in call 1, 2, ..."""
    lines = [f"{'file':<72} {'MiB':>8}"]
    for it in sorted(kit["items"], key=lambda i: -i["size"]):
        where = ", ".join(f"b{p['batch']}" for p in it["parts"])
        lines.append(f"{it['name']:<72} {it['size'] / MIB:8.2f}  ({len(it['parts'])} part(s) in {where})")
    total = sum(i["size"] for i in kit["items"])
    lines += [f"{'total':<72} {total / MIB:8.2f}", "",
              f"working tree sent with every call: {kit['tree_bytes'] / MIB:.2f} MiB; limit per call "
              f"{kit['limit_bytes'] / MIB:.0f} MiB; batch budget {kit['budget_bytes'] / MIB:.2f} MiB", ""]
    for b in range(1, kit["batches"] + 1):
        size = sum(p["size"] for i in kit["items"] for p in i["parts"] if p["batch"] == b)
        last = "  (last: the call that also runs scripts/gpu_check.sh)" if b == kit["batches"] else ""
        lines.append(f"call {b}: carry [\"{carry_rel}/b{b}\"]  {size / MIB:6.2f} MiB + tree "
                     f"{kit['tree_bytes'] / MIB:.2f} MiB = {(size + kit['tree_bytes']) / MIB:6.2f} MiB{last}")
    return "\n".join(lines)


def assemble(carry: Path, dest: Path) -> dict:
    """Join parts, verify sha256, put wheels in ``dest/wheels`` and unpack images into ``dest/images``."""
    kits = sorted(carry.glob("b*/kit.json"))
    if not kits:
        raise FileNotFoundError(f"{carry}: no b*/kit.json; carry the batch folders first (docs/gpu_check.md)")
    kit = json.loads(kits[0].read_text())
    have = {int(p.parent.name[1:]) for p in kits}
    missing = sorted(set(range(1, kit["batches"] + 1)) - have)
    if missing:
        raise FileNotFoundError(f"{carry}: batches {missing} of {kit['batches']} did not arrive (the machine went "
                                "cold between calls?): carry them again")
    (dest / "wheels").mkdir(parents=True, exist_ok=True)
    for it in kit["items"]:
        target = dest / ("wheels" if it["name"] != IMAGES_TAR else ".") / it["name"]
        if target.is_file() and target.stat().st_size == it["size"] and _sha256(target) == it["sha256"]:
            continue  # assembled by an earlier call
        with open(target, "wb") as g:
            for part in sorted(it["parts"], key=lambda p: p["index"]):
                with open(carry / f"b{part['batch']}" / part["file"], "rb") as f:
                    shutil.copyfileobj(f, g, 8 * MIB)
        got = _sha256(target)
        if got != it["sha256"]:
            target.unlink()
            raise ValueError(f"{it['name']}: sha256 {got[:12]}.. != {it['sha256'][:12]}.. after joining "
                             f"{len(it['parts'])} part(s): a transfer was cut; carry its batches again")
    tar = dest / IMAGES_TAR
    if tar.is_file():
        with tarfile.open(tar) as t:
            t.extractall(dest / "images", filter="data")
    return kit


def placeholder_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """An empty py3-none-any wheel that only declares ``name==version`` (stands for an installed package)."""
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n"
                                                                                  for r in requires)
    files = {f"{dist}.dist-info/METADATA": meta,
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: lwsl_ds\nRoot-Is-Purelib: true\n"
                                        "Tag: py3-none-any\n"}
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{k},,\n" for k in files) + f"{dist}.dist-info/RECORD,,\n"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def verify(wheels: Path, image: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """Resolve REQUIREMENTS for CPython 3.12 manylinux x86_64 from the kit + the GPU image's packages.

    Runs ``pip install --dry-run --no-index --only-binary=:all: --target`` (nothing is installed); the image's
    packages are stood in for by empty wheels. Returns (name, version, "kit" | "image") per package pip would
    take; raises ValueError with pip's last line when the set does not resolve.
    """
    import tempfile

    image = GPU_IMAGE if image is None else image
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = Path(tmp) / "image"
        stand_in.mkdir()
        for name, version in image.items():
            placeholder_wheel(stand_in, name, version)
        plats = [a for n in (17, 24, 27, 28, 31, 34, 35, 39) for a in ("--platform", f"manylinux_2_{n}_x86_64")]
        plats += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
               "--no-index", "--find-links", str(wheels), "--find-links", str(stand_in), "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", *plats,
               "--target", str(Path(tmp) / "x"), "--report", str(Path(tmp) / "report.json"), *REQUIREMENTS]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            last = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:]
            raise ValueError(f"the kit does not resolve for Python 3.12: {' '.join(last)}")
        report = json.loads((Path(tmp) / "report.json").read_text())
    out = []
    for inst in report["install"]:
        meta = inst["metadata"]
        src = "image" if Path(inst["download_info"]["url"].removeprefix("file://")).parent == stand_in else "kit"
        out.append((meta["name"], meta["version"], src))
    return sorted(out)


def install(carry: Path, dest: Path) -> None:
    """Assemble the kit, then ``pip install --no-index --find-links`` REQUIREMENTS into this interpreter."""
    assemble(carry, dest)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
           "--no-cache-dir", "--no-compile", "--find-links", str(dest / "wheels"), *REQUIREMENTS]
    for attempt in (cmd, [*cmd, "--break-system-packages"]):
        print("+ " + " ".join(attempt), flush=True)
        res = subprocess.run(attempt, capture_output=True, text=True)
        print(res.stdout + res.stderr, end="", flush=True)
        # A system python (PEP 668) refuses plain installs; the image's python3 is a venv, so this is a fallback.
        if res.returncode == 0 or "externally-managed-environment" not in res.stderr:
            break
    if res.returncode != 0:
        raise ValueError("pip install from the kit failed (see pip's message above)")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``pack`` (here) or ``assemble`` (on the GPU machine)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="batch folders from a wheel folder")
    p.add_argument("--wheels", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--images", type=Path, default=None, help="sample JPEG folder to carry too")
    for cmd, what in (("assemble", "join and verify the carried batches"),
                      ("install", "assemble, then pip install the requirements from the kit")):
        a = sub.add_parser(cmd, help=what)
        a.add_argument("--carry", type=Path, required=True)
        a.add_argument("--dest", type=Path, required=True)
    v = sub.add_parser("verify", help="dry-run: does the kit resolve for Python 3.12 with the GPU image?")
    v.add_argument("--wheels", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            kit = pack(args.wheels, args.out, args.images)
            text = describe(kit, os.path.relpath(args.out, Path.cwd()))
            (args.out / "plan.txt").write_text(text + "\n")
            print(text)
        elif args.cmd == "verify":
            rows = verify(args.wheels)
            for name, version, src in rows:
                print(f"  {name:<28} {version:<20} from the {src}")
            unused = {p.name.split("-")[0].lower().replace("_", "-") for p in args.wheels.glob("*.whl")} - \
                {n.lower().replace("_", "-") for n, _, s in rows if s == "kit"}
            print(f"resolves for CPython 3.12 manylinux x86_64: {sum(s == 'kit' for *_, s in rows)} wheel(s) from "
                  f"the kit, {sum(s == 'image' for *_, s in rows)} package(s) from the image"
                  + (f"; carried but not needed with the image's versions: {sorted(unused)}" if unused else ""))
        elif args.cmd == "install":
            install(args.carry, args.dest)
            print("installed from the kit: " + " ".join(REQUIREMENTS))
        else:
            kit = assemble(args.carry, args.dest)
            print(f"assembled {len(kit['items'])} file(s) from {kit['batches']} batch(es) into {args.dest}, "
                  "sha256 verified")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
