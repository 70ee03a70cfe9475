"""Transcoders for every MLP of SmolLM2-135M-Instruct, trained by ``interp`` on English text.

Data only: ``WEIGHTS`` is a folder of ``layer_L`` sae-lens folders (float16) and the held-out
figures in ``metrics.json``. ``interp.load_transcoders("smollm2-135m")`` finds it once this
package is installed (``pip install packages/interp-smollm2-transcoders`` in a clone of interp);
``interp train transcoder smollm2-135m`` rebuilds it.
"""

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"
