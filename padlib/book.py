"""Deprecated path: padlib.book moved to padlib.chapters.site. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__)
