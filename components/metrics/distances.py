"""Distances between two sets of feature vectors (float arrays (N, D), e.g. the judge's penultimate
layer): Fréchet distance, kernel (inception) distance, k-NN precision and recall, and the real-vs-real
floor a report compares the Fréchet distance with.

Plain numpy: torchmetrics' FID/KID classes take images and run a feature net; here the features are
already computed. KID's kernel and estimator are the same as torchmetrics' (tested against it).
"""

import numpy as np

from components.errors import DataError

# Bounds the (rows x N) distance blocks of precision/recall to ~32 MB of float64, whatever N.
BLOCK_ELEMENTS = 1 << 22


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to `a` and `b`:
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2).

    tr((S_a S_b)^1/2) is taken as the sum of the square roots of the eigenvalues of the symmetric
    S_a^1/2 S_b S_a^1/2, which stays exact for singular covariances: no eps offset or complex
    parts to drop. So fewer samples than dimensions (N < D) is allowed, but each covariance then has
    rank N - 1 and the distance is biased upwards, the more so the smaller N: compare only distances
    computed from sets of similar sizes, e.g. with `real_floor` on as many real samples.
    """
    a, b = pair(a, b, minimum=2)
    mean_gap = np.sum((a.mean(0) - b.mean(0)) ** 2)
    cov_a, cov_b = covariance(a), covariance(b)
    root_a = psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    # Rounding can leave identical sets a hair below 0.
    return max(0.0, float(mean_gap + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subset_size: int = 1000, subsets: int = 100,
                              seed: int = 0) -> tuple[float, float]:
    """KID: the unbiased MMD^2 under the kernel (x.y / D + 1)^3, over `subsets` random subsets of each set;
    returns its mean and standard deviation. `subset_size` is cut to the smaller set, so a class with
    few samples still gets a value (a noisier one: see the std)."""
    a, b = pair(a, b, minimum=2)
    if subset_size < 2 or subsets < 1:
        raise DataError(f"KID needs subset_size >= 2 and subsets >= 1, got {subset_size} and {subsets}")
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    scores = [polynomial_mmd(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(scores)), float(np.std(scores))


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equal-sized x and y under the cubic polynomial kernel."""
    m, dim = x.shape
    k_xx, k_yy, k_xy = ((p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019): each set's manifold is the union of balls around its points, each
    reaching the point's k-th nearest neighbour in the set. Precision: the share of fake samples
    inside the real manifold (are they realistic); recall: the share of real samples inside the fake
    one (is the variety covered)."""
    if k < 1:
        raise DataError(f"precision/recall needs k >= 1, got {k}")
    real, fake = pair(real, fake, minimum=k + 1, names=("real", "fake"))
    precision = inside(fake, real, kth_neighbour_sq(real, k)).mean()
    recall = inside(real, fake, kth_neighbour_sq(fake, k)).mean()
    return float(precision), float(recall)


def real_floor(real: np.ndarray, seed: int = 0) -> float:
    """Fréchet distance between two disjoint random halves of the real features: what sampling noise
    alone gives at this size, the floor a generated set's distance is read against."""
    real = as_features(real, "real")
    if len(real) < 4:
        raise DataError(f"the real-vs-real floor needs at least 4 real samples (2 a half), got {len(real)}")
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    return frechet_distance(real[order[:half]], real[order[half:2 * half]])


def covariance(x: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.cov(x, rowvar=False))


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (rounding negatives cut to 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.clip(d, 0, None)


def blocks(x: np.ndarray, columns: int):
    """Row blocks of x small enough that (block x columns) stays within BLOCK_ELEMENTS."""
    step = max(1, BLOCK_ELEMENTS // max(columns, 1))
    for start in range(0, len(x), step):
        yield x[start:start + step]


def kth_neighbour_sq(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point of x (its own 0 is index 0)."""
    return np.concatenate([np.partition(squared_distances(block, x), k, axis=1)[:, k]
                           for block in blocks(x, len(x))])


def inside(points: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray) -> np.ndarray:
    """Whether each point lies in at least one ball (centre, radius) of the other set."""
    return np.concatenate([(squared_distances(block, centres) <= radii_sq[None, :]).any(1)
                           for block in blocks(points, len(centres))])


def pair(a: np.ndarray, b: np.ndarray, minimum: int,
         names: tuple[str, str] = ("first", "second")) -> tuple[np.ndarray, np.ndarray]:
    """Both sets as float64 (N, D) arrays of one D, each with at least `minimum` samples."""
    a, b = as_features(a, names[0]), as_features(b, names[1])
    if a.shape[1] != b.shape[1]:
        raise DataError(f"the {names[0]} and {names[1]} feature sets differ in dimension ({a.shape[1]} and "
                        f"{b.shape[1]}); embed both with the same network")
    for name, x in zip(names, (a, b)):
        if len(x) < minimum:
            raise DataError(f"the {name} feature set has {len(x)} samples; this measure needs at least {minimum}")
    return a, b


def as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"the {name} feature set must be shaped (N, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"the {name} feature set holds NaN or infinite values")
    return x
