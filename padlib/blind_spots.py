"""Deprecated path: padlib.blind_spots moved to padlib.chapters.ch4_blind_spots, padlib.experiments.ch4_blind_spots, padlib.experiments.planted. It keeps working for one release and warns once."""
from ._compat import moved_module

__getattr__, __dir__ = moved_module(__name__, {
    "EDGE": "experiments.ch4_blind_spots",
    "EFFECT_FLOOR": "experiments.ch4_blind_spots",
    "METRICS": "experiments.ch4_blind_spots",
    "MaskedBand": "experiments.planted",
    "MatchedStudy": "experiments.ch4_blind_spots",
    "SCHEMES": "experiments.ch4_blind_spots",
    "SIZES": "experiments.ch4_blind_spots",
    "TemplateClassifier": "experiments.planted",
    "accuracy_map": "experiments.ch4_blind_spots",
    "cell_table": "experiments.ch4_blind_spots",
    "chapter_findings_box": "chapters.ch4_blind_spots",
    "effect_lines": "chapters.ch4_blind_spots",
    "energy_effects": "experiments.ch4_blind_spots",
    "map_images": "experiments.ch4_blind_spots",
    "map_summary": "experiments.ch4_blind_spots",
    "masked_band": "experiments.planted",
    "matched_study": "experiments.ch4_blind_spots",
    "mean_maps": "experiments.ch4_blind_spots",
    "paired_effects": "experiments.ch4_blind_spots",
    "position_grid": "experiments.ch4_blind_spots",
    "template_classifier": "experiments.planted",
    "worst_regions": "experiments.ch4_blind_spots"
})
