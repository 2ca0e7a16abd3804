"""The static HTML gallery: pages written from result folders (the report only reads; what
needs models run or data loaded is produced beforehand, by :mod:`featviz.gallery` for
``featviz gallery`` and by :mod:`featviz.demo`).

    from featviz.gallery import build_gallery
    build_gallery(["models/digits-joint", "models/digits-layerwise"], "gallery",
                  attacks="runs/attack", hierarchy="runs/hierarchy")
"""

from ..text import slug as slugify  # the name this package exported before featviz.text.slug
from .gallery import GalleryModel, layer_summary, write_gallery
from .results import read_attacks, read_hierarchy
from .studies import read_studies, write_study_pages

__all__ = ["GalleryModel", "layer_summary", "read_attacks", "read_hierarchy", "read_studies", "slugify",
           "write_gallery", "write_study_pages"]
