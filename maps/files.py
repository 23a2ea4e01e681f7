"""Reading the city's JSON data files against their schemas (pydantic), with one error format:
the file, the feature or field, and what is wrong with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from cityops.domain.errors import InvalidValue

M = TypeVar("M", bound=BaseModel)


class StrictFile(BaseModel):
    """Base of the file schemas: unknown fields are refused (a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _problem(error: ErrorDetails) -> str:
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def validate(model: type[M], data: Any, where: str) -> M:
    """`data` as a `model`, or an error naming `where` and every problem found."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_problem(e) for e in error.errors())
        raise InvalidValue(f"{where}: {problems}") from None


def read_json(path: Path) -> Any:
    """A JSON file's content, or an error naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidValue(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidValue(f"{path}: not valid JSON: {error}") from None


def read_json_file(path: Path, model: type[M]) -> M:
    """A JSON file validated against its schema."""
    return validate(model, read_json(path), str(path))
