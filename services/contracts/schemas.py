"""Load the JSON Schemas of schemas/ (the one source of truth) and compile their validators.

`$ref`s resolve to sibling files by name, never over the network.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import fastjsonschema

from salespulse.settings import REPO_ROOT

SCHEMA_BASE = "https://schemas.salespulse.dev/"


def schemas_dir() -> Path:
    """schemas/ of the checkout, or the copy a wheel installs as salespulse/schemas."""
    if "SALESPULSE_SCHEMAS_DIR" in os.environ:
        return Path(os.environ["SALESPULSE_SCHEMAS_DIR"])
    installed = Path(__file__).resolve().parents[1] / "schemas"
    return installed if installed.is_dir() else REPO_ROOT / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    path = schemas_dir() / name
    return json.loads(path.read_text())


def _local_handler(uri: str) -> dict[str, Any]:
    if not uri.startswith(SCHEMA_BASE):
        raise ValueError(f"schema reference outside schemas/: {uri}")
    return load_schema(Path(urlparse(uri).path).name)


@cache
def validator(name: str) -> Callable[[Any], Any]:
    """A compiled validator for schemas/<name>; raises fastjsonschema.JsonSchemaException."""
    return fastjsonschema.compile(load_schema(name), handlers={"https": _local_handler})


def event_type_schemas() -> dict[str, str]:
    """Event type -> schema file, for every type schema in schemas/."""
    return {
        p.stem: p.name for p in sorted(schemas_dir().glob("*.json"))
        if p.name not in {"cloudevent.json", "definitions.json"} and not p.name.startswith("directory.")
    }
