"""Params of the classifier architecture (components/models/classifier.py), shared by the judge and the
downstream classifier of evaluate. Defaults train on 1000 28x28 images in seconds on a 2-core CPU."""

from pydantic import Field

from components.config.base import Section


class ClassifierParams(Section):
    """A ResNet-style CNN: a 3x3 stem, then `stages` stages of `blocks` residual blocks each; every stage
    after the first halves the resolution and doubles the channels, starting from `width`."""

    width: int = Field(16, ge=4, le=512)
    stages: int = Field(3, ge=1, le=5)
    blocks: int = Field(1, ge=1, le=8)    # residual blocks per stage
