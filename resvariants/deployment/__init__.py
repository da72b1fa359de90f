"""Deployment: ONNX / TorchScript export of backbones (and necks, classifiers), checked
against PyTorch (``tools/deployment/export.py``, docs/deployment.md)."""
from .core import (DEFAULT_OPSET, DEFAULT_TOLERANCE, EXPORTERS, FORMATS, ExportablePart,
                   ExportError, Runner, VerificationError, build_exportable, compare_outputs,
                   example_input, export, export_onnx, export_torchscript, load_weights,
                   random_weights, verification_shapes, verify)

__all__ = ['DEFAULT_OPSET', 'DEFAULT_TOLERANCE', 'EXPORTERS', 'FORMATS', 'ExportablePart',
           'ExportError', 'Runner', 'VerificationError', 'build_exportable', 'compare_outputs',
           'example_input', 'export', 'export_onnx', 'export_torchscript', 'load_weights',
           'random_weights', 'verification_shapes', 'verify']
