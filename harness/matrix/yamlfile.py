"""YAML files the user writes (matrix.yaml, the ssh inventory), validated by a pydantic model: any
problem is one UserError line naming the file, the line and the key."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from ..common.errors import UserError


def _line_map(node, path=(), out=None) -> dict[tuple, int]:
    """YAML node tree -> {('axes', 'arch', 2): line} for error messages (1-based)."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[path + (k.value,)] = k.start_mark.line + 1
            _line_map(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)
    return out


def _dotted(loc: tuple) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s or "(top level)"


def parse(path: str | Path, model: type[BaseModel], kind: str):
    """The file's data validated by `model`; `kind` names the file in errors ("matrix file")."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: {kind} does not exist")
    text = p.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.BaseLoader)
        # BaseLoader keeps every scalar a string: 1.30 stays "1.30", not the float 1.3
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{p}{where}: malformed YAML: {e.problem or e.context}") from None
    if not isinstance(data, dict):
        top = ", ".join(f"'{k}'" for k, f in model.model_fields.items() if f.is_required())
        raise UserError(f"{p}: expected a mapping with {top} at the top level")
    lines = _line_map(node) if node is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        # pydantic adds the model name for unions; drop anything that isn't a real path element
        line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            msg = f"unknown key '{loc[-1]}'" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = f"missing key '{loc[-1]}'"
        elif err["type"] in ("list_type", "string_type", "model_type", "dict_type"):
            msg = f"wrong type: {msg.lower()}"
        where = f":{line}" if line else ""
        raise UserError(f"{p}{where}: {_dotted(loc)}: {msg}") from None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation
        model = getattr(ann, "__args__", (ann,))[0]
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return []
    return list(model.model_fields)
