"""Compiling a definition into what the runtime serves (`CompiledBackend`)."""

from runtime.compile.backend import CompiledBackend, compile_definition

__all__ = ["CompiledBackend", "compile_definition"]
