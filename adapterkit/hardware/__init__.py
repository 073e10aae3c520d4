"""Hardware: profiles (``profiles.py``), detection of this machine (``detect.py``) and the memory
estimate (``memory.py``) the planner compares against a profile's budget."""

from .detect import cpu_flags, cpu_has_fast_bf16, detect
from .profiles import Hardware, known_profiles, load_profile, profile_path, resolve

__all__ = ["Hardware", "cpu_flags", "cpu_has_fast_bf16", "detect", "known_profiles", "load_profile",
           "profile_path", "resolve"]
