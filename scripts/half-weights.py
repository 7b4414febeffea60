#!/usr/bin/env python3
"""Stores a model folder's f32 weights in f16, in place: what `unmask train --half` writes at
export, for a folder exported in f32. Every F32 tensor of model.safetensors becomes F16 (rounded
to nearest); other dtypes are kept. training.json's "dtype" becomes "f16" and records the
conversion under "converted". The page and the CLI read f16 weights into f32, so a sample
changes only as far as the rounding does (BENCHMARKS.md, 2026-12-07 night).

Usage: scripts/half-weights.py FOLDER [FOLDER ...]   (no dependencies beyond Python 3)
"""

import array
import json
import struct
import sys
from pathlib import Path


def half(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = bytearray()
    new_header = {}
    for name, info in header.items():
        if name == "__metadata__":
            new_header[name] = info
            continue
        start, end = info["data_offsets"]
        raw = body[start:end]
        if info["dtype"] == "F32":
            values = array.array("f")
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
            raw = struct.pack(f"<{len(values)}e", *values)
            info = {**info, "dtype": "F16"}
        new_header[name] = {**info, "data_offsets": [len(out), len(out) + len(raw)]}
        out += raw
    text = json.dumps(new_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + out)
    return len(data), 8 + len(text) + len(out)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for folder in map(Path, sys.argv[1:]):
        before, after = half(folder / "model.safetensors")
        training = folder / "training.json"
        if training.exists():
            # The file's own formatting is kept: only its last field changes.
            text = training.read_text()
            old = '"dtype": "f32"'
            if json.loads(text).get("dtype") == "f32" and text.count(old) == 1:
                new = '"dtype": "f16",\n  "converted": "f32 → f16 by scripts/half-weights.py"'
                training.write_text(text.replace(old, new))
        print(f"{folder}: {before:,} → {after:,} bytes")


if __name__ == "__main__":
    main()
