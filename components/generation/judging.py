"""What the judge says of candidate images, for the filter's checks (components/stages/filter.py) and the blends
(components/generation/blends.py): its class probabilities, and the distance to the nearest real train image in
its features (the duplicate check)."""

import numpy as np
import torch

from components.generation.filtering import nearest_distance
from components.models import classifier


def judge_images(images: np.ndarray, judge: classifier.Classifier, real_features: np.ndarray, batch_size: int,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """The judge's class probabilities of the images and each one's distance to the nearest real image (in judge
    features: `real_features`)."""
    features = classifier.embed(judge, images, batch_size, device)
    return classifier.proba_from_features(judge, features, device), nearest_distance(features, real_features)
