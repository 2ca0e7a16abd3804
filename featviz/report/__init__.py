"""The static HTML gallery and its plots.

    from featviz.report import build_gallery
    build_gallery(["models/digits-joint", "models/digits-layerwise"], "gallery",
                  attacks="runs/attack", hierarchy="runs/hierarchy")
"""

from ..text import slug as slugify  # the name this package exported before featviz.text.slug
from .build import build_gallery, compute_matches, prepare_gallery
from .gallery import GalleryModel, layer_summary, write_gallery
from .matching import correlation_matrix, match_units, unit_activations

__all__ = ["GalleryModel", "build_gallery", "compute_matches", "correlation_matrix", "layer_summary", "match_units",
           "prepare_gallery", "slugify", "unit_activations", "write_gallery"]
