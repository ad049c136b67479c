"""A resumable, shardable loop over evaluation items, writing one JSON line per finished item.

The results file starts with a header line ``{"config": {...}}`` followed by one record per item
(``"index"``, ``"key"`` and what the item's evaluation returned). Under ``accelerate launch`` (or ``torchrun``) each
process takes every ``world``-th pending item and appends its records, as soon as each is done, to
its own part file ``<output>.part-<rank>``; at the end the main process merges the output, all part
files and the records gathered from every process into ``<output>`` (sorted by index, written
atomically) and removes the parts. A run that stops for any reason loses only the items in flight:
run the same command again and it skips every item already recorded, in the output or in a part.
Several machines should share the output's folder to resume without redoing work.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from ..devices import gpu_available
from ..files import atomic_path


def process_state():
    """accelerate's view of this process (rank, world size, device).

    Launched by ``accelerate launch`` on GPUs, or by ``torchrun`` on CPUs (gloo), or alone.
    """
    from accelerate import PartialState

    return PartialState(cpu=not gpu_available())


def items_digest(items: Sequence) -> str:
    """A short fingerprint of the items' full contents, so that results of other items are never mixed in."""
    return hashlib.sha256("\n".join(repr(item) for item in items).encode()).hexdigest()[:16]


def _read_lines(path: Path) -> list[dict]:
    """Parsed JSON lines of a results file; an incomplete last line (a run killed mid-write) is dropped."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}, line {number}: not valid JSON; the file is damaged, move it aside") from None
    return parsed


def read_run(path: str | os.PathLike) -> tuple[dict | None, list[dict]]:
    """The header's config and the records of a results file (``None, []`` when there is none yet)."""
    lines = _read_lines(Path(path))
    if not lines:
        return None, []
    if "config" not in lines[0]:
        raise ValueError(f"{path} is not a timelab results file (no config header line)")
    return lines[0]["config"], lines[1:]


def read_results(path: str | os.PathLike, config: dict | None = None) -> list[dict]:
    """The records in a results file (header checked against ``config`` when given)."""
    theirs, records = read_run(path)
    if config is not None and theirs is not None and theirs != config:
        differ = sorted(k for k in set(theirs) | set(config) if theirs.get(k) != config.get(k))
        raise ValueError(f"{path} holds results of a different run (differs in: {', '.join(differ)}); "
                         f"choose another output file or delete it to start over")
    return records


def write_results(path: str | os.PathLike, config: dict, records: Sequence[dict]) -> Path:
    """Header and records, atomically (temp file then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for line in [{"config": config}, *records]:
            f.write(json.dumps(line) + "\n")
    return Path(path)


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def part_files(output: Path) -> list[Path]:
    return sorted(output.parent.glob(output.name + ".part-*"))


def _merge(*groups: Sequence[dict]) -> list[dict]:
    by_index = {}
    for group in groups:
        for record in group:
            by_index[record["index"]] = record
    return [by_index[i] for i in sorted(by_index)]


def run_items(items: Sequence, evaluate: Callable[[object], dict], output: str | os.PathLike, config: dict,
              description: str = "items") -> list[dict]:
    """Evaluate every item not yet recorded in ``output`` and return all records, sorted by index.

    ``items`` need a ``key`` attribute; ``evaluate(item)`` returns a JSON-ready dict.
    Runs as one process, or sharded by rank under ``accelerate launch`` or ``torchrun``.
    """
    from accelerate.utils import broadcast_object_list, gather_object

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    keys = [item.key for item in items]
    config = {**config, "n_items": len(keys), "items": items_digest(items)}
    state = process_state()
    rank, world = state.process_index, state.num_processes

    done = None
    if state.is_main_process:
        found = _merge(read_results(output, config), *(read_results(p, config) for p in part_files(output)))
        done = [[r["index"], r["key"]] for r in found]
    if world > 1:
        done = broadcast_object_list([done])[0]
    finished = {(i, k) for i, k in done}  # the header check guarantees they are this dataset's items
    pending = [i for i in range(len(items)) if (i, keys[i]) not in finished]
    mine = pending[rank::world]

    part = output.with_name(f"{output.name}.part-{rank}")
    write_results(part, config, read_results(part, config))  # drop a half-written last line before appending
    for index in tqdm(mine, desc=f"{description} (process {rank + 1}/{world})" if world > 1 else description,
                      disable=not state.is_local_main_process or not mine):
        _append(part, {"index": index, "key": keys[index], **evaluate(items[index])})

    state.wait_for_everyone()
    own = read_results(part, config)
    gathered = gather_object(own) if world > 1 else own
    merged = None
    if state.is_main_process:
        parts = part_files(output)
        merged = _merge(read_results(output, config), *(read_results(p, config) for p in parts), gathered)
        write_results(output, config, merged)
        for p in parts:
            p.unlink()
    if world > 1:
        merged = broadcast_object_list([merged])[0]
    state.wait_for_everyone()
    return merged
