"""train_judge: train the judge, a classifier of the real train images, into data/models/judge.

It trains with the downstream recipe and the classic augmentation (the strongest classifier of the real
images genaug makes), class-weighted where the classes are imbalanced if train_judge.balance says so. Its
penultimate features are the embedding of evaluate's generative metrics (Fréchet distance, KID,
precision/recall); its class probabilities are the filter's label check and the soft labels
of the synthetic samples. The output folder persists between runs (dvc.yaml: persist: true): a killed run
resumes from its last checkpoint.
"""

import torch

from components import paths
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import DatasetInfo, read_manifest, read_split
from components.device import describe, resolve_device
from components.metrics.classification import scores
from components.models import classifier
from components.training.checkpoint import save
from components.training.classify import balancing_weights, train_classifier

BATCH = 512


def run(params: Params) -> dict:
    info = DatasetInfo.read(paths.PREPARED)
    images, labels = read_split(paths.PREPARED, "train")
    device = resolve_device(params.device)
    p = params.train_judge
    # weighting balanced classes changes nothing: the plain run, whose fingerprint evaluate's real_classic shares
    balance = p.balance if balancing_weights(labels, len(info.class_names)) is not None else "none"
    weighted = ", class-weighted loss" if balance == "weighted" else ""
    print(f"train_judge: classifier (width {p.model.width}, {p.model.stages} stages) on {len(labels)} images of "
          f"{len(info.class_names)} classes{weighted}, {p.steps} steps on {describe(device, p.precision)}")
    model, summary = train_classifier(images, labels, len(info.class_names), p.model, p.recipe(), params.seed,
                                      device, paths.JUDGE, "train_judge", balance=balance, augment=params.classic,
                                      label_smoothing=p.label_smoothing, finals=(paths.JUDGE_FILE,))
    summary["balance"] = balance
    save(paths.JUDGE / paths.JUDGE_FILE, classifier.export(model, p.model, info.class_names, info.size, summary["steps"]))
    summary["val"] = validation(model, info, device)
    write_json(paths.metrics_file("train_judge"), summary)
    return summary


def validation(model: classifier.Classifier, info: DatasetInfo, device: torch.device) -> dict:
    """Scores on the prepared val split; empty when the budget keeps no validation images."""
    if not (read_manifest(paths.PREPARED)["split"] == "val").any():
        return {}
    images, labels = read_split(paths.PREPARED, "val")
    predicted = classifier.predict_proba(model, images, BATCH, device).argmax(1)
    result = scores(labels, predicted, len(info.class_names))
    print(f"train_judge: val accuracy {result['accuracy']:.3f}, balanced {result['balanced_accuracy']:.3f} "
          f"on {len(labels)} images")
    return {"images": int(len(labels)), "accuracy": round(result["accuracy"], 5),
            "balanced_accuracy": round(result["balanced_accuracy"], 5)}

