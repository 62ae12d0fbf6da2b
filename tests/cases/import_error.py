"""A model file that fails to import (for the error-path tests)."""
import torch

raise RuntimeError("this file is broken on purpose")
