"""Diagnosis: what stops or silently distorts an export, located in the user's source."""

from pt2kit.diagnose.specialization import Specialization, find_specializations

__all__ = ["Specialization", "find_specializations"]
