"""Exported translators (`crossnet export`): ONNX and TorchScript files that run without this package."""

from crossnet_dist.export.files import ExportReport, export_checkpoint, read_onnx_metadata
from crossnet_dist.export.graph import FORMATS, INPUT_NAME, OUTPUT_NAME, ExportError

__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "ExportError", "ExportReport", "export_checkpoint",
           "read_onnx_metadata"]
