"""Feature visualization: synthesize the images that maximize units of a model,
measure them, and rank the dataset images that activate the same units.

Three lines on any ``nn.Module``::

    from featviz import vis
    result = vis.render(model, "layer3:*", shape=(3, 32, 32), regs="standard")
    result.images            # (units, 3, 32, 32) in [0, 1], one image per unit

Pieces, one concept per module: :mod:`~featviz.vis.objectives` (what to maximize,
composable), :mod:`~featviz.vis.param` (pixel / FFT parameterizations),
:mod:`~featviz.vis.transforms` (per-image random transforms),
:mod:`~featviz.vis.regularizers` (``--reg`` names -> a :class:`Recipe`; your own
:class:`Penalty` and transform functions go beside the names),
:mod:`~featviz.vis.render` (the loop), :mod:`~featviz.vis.metrics` (hf_ratio, tv,
shift stability), :mod:`~featviz.vis.neurons` (``LAYER:UNIT`` specs),
:mod:`~featviz.vis.examples` (top-k dataset images), :mod:`~featviz.vis.maximize`
(all of it, plus files).
"""

from .examples import TopExamples, top_examples
from .hooks import LOGITS, ActivationCapture
from .maximize import COMPARE_SETTINGS, Maximization, RenderedNeuron, maximize, save_maximization, to_pil
from .metrics import hf_ratio, objective_scores, shift_stability, total_variation
from .neurons import Neuron, NeuronSet, layer_shapes, parse_neuron_spec, resolve_neurons
from .objectives import Objective, channel, direction, diversity, layer_energy, logit, neuron
from .param import FourierImage, ImageParam, PixelImage, color_decorrelation, image_param
from .regularizers import REGULARIZERS, Penalty, Recipe, build_recipe, parse_regs
from .render import RenderResult, render

__all__ = [
    "ActivationCapture", "COMPARE_SETTINGS", "FourierImage", "ImageParam", "LOGITS", "Maximization", "Neuron",
    "NeuronSet", "Objective", "Penalty", "PixelImage", "REGULARIZERS", "Recipe", "RenderResult", "RenderedNeuron",
    "TopExamples", "build_recipe", "channel", "color_decorrelation", "direction", "diversity", "hf_ratio",
    "image_param", "layer_energy", "layer_shapes", "logit", "maximize", "neuron", "objective_scores",
    "parse_neuron_spec", "parse_regs", "render", "resolve_neurons", "save_maximization", "shift_stability", "to_pil", "top_examples",
    "total_variation",
]
