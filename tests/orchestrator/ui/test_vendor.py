"""The UI's vendored JavaScript (``orchestrator/ui/static/vendor/``) is what VENDOR.json says.

Each entry of VENDOR.json names a file, the npm package and version it came from, its licence
(an SPDX id) and licence file, and its sha256. To update htmx: ``npm pack htmx.org@VERSION``,
copy ``dist/htmx.min.js`` and ``LICENSE`` from the tarball over the two files, and change
``version``, ``sha256`` and ``source`` in VENDOR.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

VENDOR = Path(__file__).parents[3] / "orchestrator" / "ui" / "static" / "vendor"
KEYS = {"file", "package", "version", "license", "license_file", "sha256", "source"}

# SPDX id -> a sentence every copy of that licence holds (compared with whitespace collapsed).
# A licence not listed here fails the test: add its sentence after reading the licence.
LICENSE_TEXT = {
    "0BSD": "Permission to use, copy, modify, and/or distribute this software for any purpose "
    "with or without fee is hereby granted.",
    "MIT": "Permission is hereby granted, free of charge, to any person obtaining a copy",
    "BSD-2-Clause": "Redistribution and use in source and binary forms, with or without "
    "modification, are permitted",
    "Apache-2.0": "Licensed under the Apache License, Version 2.0",
}


def entries() -> list[dict[str, Any]]:
    listed = json.loads((VENDOR / "VENDOR.json").read_text())
    assert isinstance(listed, list), "VENDOR.json is a list of entries"
    return listed


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("entry", entries(), ids=lambda entry: str(entry.get("file")))
def test_a_vendored_file_is_the_release_its_entry_names(entry: dict[str, Any]) -> None:
    assert set(entry) == KEYS, f"an entry has exactly the keys {sorted(KEYS)}"
    data = (VENDOR / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{entry['file']} was changed"
    assert entry["version"].encode() in data, f"{entry['file']} does not say {entry['version']}"
    assert entry["package"] in entry["source"] and entry["version"] in entry["source"]


@pytest.mark.parametrize("entry", entries(), ids=lambda entry: str(entry.get("file")))
def test_a_vendored_file_ships_its_licence(entry: dict[str, Any]) -> None:
    assert entry["license"] in LICENSE_TEXT, f"add {entry['license']}'s text to LICENSE_TEXT"
    licence = VENDOR / entry["license_file"]
    assert licence.is_file(), f"{entry['file']}'s licence {licence.name} is missing"
    assert words(LICENSE_TEXT[entry["license"]]) in words(licence.read_text()), (
        f"{licence.name} is not the {entry['license']} licence"
    )


def test_every_file_in_the_vendor_directory_is_listed() -> None:
    listed = {"VENDOR.json"}
    for entry in entries():
        listed |= {entry["file"], entry["license_file"]}
    present = {path.relative_to(VENDOR).as_posix() for path in VENDOR.rglob("*") if path.is_file()}
    assert present - listed == set(), "list these in VENDOR.json (or remove them)"
    assert listed - present == set(), "VENDOR.json lists files that are not there"
