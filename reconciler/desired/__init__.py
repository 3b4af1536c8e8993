"""Desired state: ``repos.yaml`` loaded, validated and frozen.

``load_desired(path)`` returns a ``DesiredState`` or raises ``ConfigError`` whose
``diagnostics`` list every problem (``FILE:LINE:COL: PATH: message``).
"""

from reconciler.desired.diagnostics import Diagnostic
from reconciler.desired.loader import check_text, load_desired
from reconciler.desired.model import ALL, CopySpec, DesiredState, Removal, RepositorySpec, TagPin, Upload

__all__ = ["ALL", "CopySpec", "DesiredState", "Diagnostic", "RepositorySpec", "Removal", "TagPin", "Upload",
           "check_text", "load_desired"]
