"""The papers' numbers and words as the book reads them, in one place (our readings say so)."""
from __future__ import annotations

PAPER_CLAIM = "from dozens to hundreds PANs per model (paper abstract); about 2% of filters (unverified summary)"


# How we read the paper's words as numbers. These are OUR readings, not numbers from the paper.
CLAIM_COUNT_RANGE = (24, 999)  # "from dozens to hundreds": at least two dozen, fewer than a thousand
CLAIM_SHARE_PCT = 2.0          # the unverified secondary summary's "about 2%" of filters
ABOUT_FACTOR = 2.0             # "about": within this factor of CLAIM_SHARE_PCT
# Chapter 1's smallest effects of interest, declared before the results (OUR choices; the paper gives no number):
LEARNED_EXCESS_SESOI_PCT = 1.0  # "PANs beyond random init": trained share above random init's by >= 1 point of
                                # padded filters, the size of the detector's own false-positive rate (fpr 0.01)
SIDE_FOLLOW_SESOI = 0.10        # "PAN sides follow the padding each layer reads": the top/left share of stride-2
                                # PAN-side flags within 10 points of the share the layers' read sides predict

