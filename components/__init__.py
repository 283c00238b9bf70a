"""genaug: generative data augmentation for image classifiers.

All stage logic lives in this package; `python -m components <stage>` runs one stage.
"""
