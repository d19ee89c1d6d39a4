"""The committed type stub ``scalingrl/_native.pyi`` describes the compiled extension: the same
classes, and in each class the same public methods and properties, with the same parameter names."""

import ast
import re
from pathlib import Path

import pytest

import scalingrl
from scalingrl import _native

STUB = Path(scalingrl.__file__).with_name("_native.pyi")


def _stub_classes() -> dict[str, dict[str, list[str]]]:
    tree = ast.parse(STUB.read_text())
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not any(
                    isinstance(d, ast.Attribute) and d.attr == "setter" for d in item.decorator_list
                ):
                    members[item.name] = [a.arg for a in item.args.args + item.args.kwonlyargs]
            classes[node.name] = members
    return classes


def _extension_classes() -> dict[str, dict[str, list[str]]]:
    classes = {}
    for name in _native.__all__ if hasattr(_native, "__all__") else dir(_native):
        cls = getattr(_native, name)
        if not isinstance(cls, type):
            continue
        members = {}
        for attr, value in vars(cls).items():
            if attr.startswith("_") and attr not in ("__init__", "__len__"):
                continue
            if isinstance(value, property):
                members[attr] = ["self"]
            elif callable(value):
                # pybind11 signatures live in the first docstring line: name(self: T, a: int, b: ...) -> R
                first = (value.__doc__ or "").lstrip().splitlines()[0] if value.__doc__ else ""
                match = re.match(rf"{re.escape(attr)}\((.*)\)", first)
                params = [p.split(":")[0].strip() for p in _split_params(match.group(1))] if match else None
                members[attr] = params
        classes[name] = members
    return classes


def _split_params(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in parts + [current] if p.strip()]


def test_stub_lists_the_extension_classes():
    assert set(_stub_classes()) == {n for n in dir(_native) if isinstance(getattr(_native, n), type)}


@pytest.mark.parametrize("name", sorted(n for n in dir(_native) if isinstance(getattr(_native, n), type)))
def test_stub_members_and_parameters_match(name):
    stub, built = _stub_classes()[name], _extension_classes()[name]
    assert set(stub) == set(built), (
        f"{name}: stub-only {set(stub) - set(built)}, extension-only {set(built) - set(stub)}"
    )
    for member, params in built.items():
        if params:  # None: the docstring carries no signature to compare
            assert stub[member] == params, f"{name}.{member}: stub {stub[member]} vs extension {params}"
