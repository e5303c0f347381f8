"""Workflow definitions: the format (schema), the model, the parser, the builder, inputs."""

from engine.definition.builder import Workflow
from engine.definition.model import Definition, Node
from engine.definition.parser import from_document, load_file, loads
from engine.definition.values import parse_input_text, resolve_inputs

__all__ = [
    "Definition",
    "Node",
    "Workflow",
    "from_document",
    "load_file",
    "loads",
    "parse_input_text",
    "resolve_inputs",
]
