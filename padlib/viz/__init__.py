"""Figures: one module per chapter, shared helpers (``common``), the book's style (``style``, applied by the
chapters with :func:`padlib.viz.style.use_book_style`, never at import) and the padding report's HTML (``report``)."""
