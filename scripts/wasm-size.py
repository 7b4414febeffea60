#!/usr/bin/env python3
"""Code bytes of a wasm module per crate, read from its name section (what twiggy's `top` tells,
grouped by the first path segment of each function's name).

The page's module has no name section (wasm-opt drops it, scripts/wasm-opt.sh); build one
without that pass to measure it:

    UNMASK_WASM_OPT=0 trunk build --locked
    python3 scripts/wasm-size.py dist/unmask-web_bg.wasm [rows]
"""
import collections
import sys


def leb(data, at):
    """An unsigned LEB128 at `at`: (value, next offset)."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def imported_functions(data, at):
    """Functions among the imports section's entries (they come first in the index space)."""
    count, at = leb(data, at)
    functions = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            length, at = leb(data, at)
            at += length
        kind = data[at]
        at += 1
        if kind == 0:  # function: type index
            functions += 1
            _, at = leb(data, at)
        elif kind == 1:  # table: element type, limits
            at += 1
            flags, at = leb(data, at)
            _, at = leb(data, at)
            if flags & 1:
                _, at = leb(data, at)
        elif kind == 2:  # memory: limits
            flags, at = leb(data, at)
            _, at = leb(data, at)
            if flags & 1:
                _, at = leb(data, at)
        elif kind == 3:  # global: type, mutability
            at += 2
        else:
            sys.exit(f"unknown import kind {kind}")
    return functions


def crate_of(name):
    """The crate a function's name starts with: demangled (`crate::path`, as wasm-bindgen leaves
    them) or still in Rust's legacy mangling (`_ZN5crate4path...`, as rustc writes them: the
    module in the target directory, before wasm-bindgen)."""
    if name.startswith("_ZN"):
        at = 3
        digits = ""
        while at < len(name) and name[at].isdigit():
            digits += name[at]
            at += 1
        if not digits:
            return "(other)"
        first = name[at : at + int(digits)]
        # `<crate::Type as Trait>::f` mangles as `_$LT$crate..Type$u20$as$u20$Trait$GT$`.
        first = first.removeprefix("_$LT$").lstrip("_").removeprefix("$RF$").removeprefix("$BP$")
        return first.split("..")[0].split("$")[0] or "(other)"
    name = name.lstrip("<&* ")
    return name.split("::")[0] if "::" in name else "(other)"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data = open(sys.argv[1], "rb").read()
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    at, imports, code, names = 8, 0, None, None
    while at < len(data):
        section = data[at]
        size, at = leb(data, at + 1)
        if section == 0:
            length, start = leb(data, at)
            if data[start : start + length] == b"name":
                names = (start + length, at + size)
        elif section == 2:
            imports = imported_functions(data, at)
        elif section == 10:
            code = (at, at + size)
        at += size
    if names is None:
        sys.exit("the module has no name section: build it with UNMASK_WASM_OPT=0 trunk build")
    count, at = leb(data, code[0])
    sizes = []
    for _ in range(count):
        size, body = leb(data, at)
        sizes.append(body - at + size)
        at = body + size
    function_names = {}
    at, end = names
    while at < end:
        subsection = data[at]
        size, at = leb(data, at + 1)
        if subsection == 1:
            entries, cursor = leb(data, at)
            for _ in range(entries):
                index, cursor = leb(data, cursor)
                length, cursor = leb(data, cursor)
                function_names[index] = data[cursor : cursor + length].decode("utf8", "replace")
                cursor += length
        at += size
    per_crate = collections.Counter()
    for i, size in enumerate(sizes):
        per_crate[crate_of(function_names.get(i + imports, "?"))] += size
    total = sum(sizes)
    for crate, size in per_crate.most_common(rows):
        print(f"{size / 1e6:7.2f} MB {100 * size / total:5.1f}%  {crate}")
    print(f"{total / 1e6:.2f} MB of code in {len(sizes)} functions")


if __name__ == "__main__":
    main()
