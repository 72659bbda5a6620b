"""The book's experiments: the designs the chapters run (planted networks, digit canvases, small networks trained
from scratch, the zoo audit, one module per chapter). They call padlib's methods and know nothing of verdicts."""
