r"""Gradient preprocessing (Andrychowicz et al. 2016, appendix A).

Gradients of a learner span many orders of magnitude; an LSTM sees them better as a (magnitude,
sign) pair:

    ∇ -> (log|∇| / p, sgn ∇)    if |∇| >= e^{-p}
         (-1, e^p ∇)            otherwise

with p = 10 in the paper. Both features are continuous at |∇| = e^{-p}: there log|∇| / p = -1
and e^p ∇ = sgn ∇. The official code (google-deepmind/learning-to-learn, `LogAndSign`) uses a
clamped variant instead: (max(log(|∇| + ε) / k, −1), clip(∇ e^k, −1, 1)) with k = 5; we follow the
paper.
"""
import autograd.numpy as np

__all__ = ["log_and_sign"]


def log_and_sign(x, p=10.0):
    r"""Preprocess every coordinate of x into two features; returns shape x.shape + (2,).

    x -> (log|x| / p, sgn x) if |x| >= e^{-p}, else (-1, e^p x)   (Andrychowicz et al. 2016, app. A)
    """
    threshold = np.exp(-p)
    big = np.abs(x) >= threshold
    # np.maximum keeps log() away from 0 in the branch np.where discards, so that neither the value
    # nor its derivative is ever inf or NaN (autograd differentiates both branches of np.where).
    magnitude = np.where(big, np.log(np.maximum(np.abs(x), threshold)) / p, -1.0)
    sign = np.where(big, np.sign(x), np.exp(p) * x)
    return np.stack([magnitude, sign], axis=-1)
