"""The architecture registry: each entry builds, and says truly what it costs.

``--architecture`` help and docs/training.md quote these descriptions, and issue 11's latency
budget is planned from their MACs; member 2 (resnet18-n) is built for the first time hours into
the recipe, so a network that does not build must fail here, not there.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from emocam.train.architectures import ARCHITECTURES, build, count_macs, has_pooling_head

SIZED = sorted(name for name, entry in ARCHITECTURES.items() if "params" in entry.description)


def test_every_real_architecture_states_its_size() -> None:
    assert {"vgg-s", "vgg-m", "vgg-m-pool", "resnet18-n"} <= set(SIZED)


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", SIZED)
def test_the_description_gives_the_built_networks_params_and_macs(name: str) -> None:
    stated = re.search(r"([\d.]+)M params, (\d+)M MACs", ARCHITECTURES[name].description)
    assert stated, ARCHITECTURES[name].description
    model = build(name, 48, 6)
    assert f"{model.count_params() / 1e6:.2f}" == stated.group(1)
    assert round(count_macs(model) / 1e6) == int(stated.group(2))


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", [name for name in SIZED if has_pooling_head(name)])
def test_a_pooling_net_trains_on_40px_crops_and_scores_whole_48px_faces(name: str) -> None:
    model = build(name, None, 6)  # what crop training builds: any input size
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    crops = rng.uniform(0, 255, (4, 40, 40, 1)).astype("float32")
    loss = model.train_on_batch(crops, np.arange(4) % 6)
    assert np.isfinite(loss)
    for size in (40, 48):
        probs = model.predict(rng.uniform(0, 255, (2, size, size, 1)).astype("float32"), verbose=0)
        assert probs.shape == (2, 6)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
