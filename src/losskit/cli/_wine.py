"""``losskit demo wine``: softmax regression on scikit-learn's wine data, trained with plain
NumPy and ``losskit.value_and_grad`` on several objectives (the classifier of
``examples/softmax_regression.py``, which writes its loop out for cross-entropy alone).

The wine data set ships inside scikit-learn (nothing is downloaded): 178 wines, 13 chemical
measurements each, from 3 cultivars. A linear model gives logits ``X @ W + b``; an objective
returns the loss and its gradient with respect to the logits, and the chain rule takes that
gradient to ``W`` and ``b``. No autograd anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import cross_entropy, mse_loss, softmax, value_and_grad

__all__ = ["EXAMPLE_RUN", "History", "softmax_mse", "train", "wine_split"]

EXAMPLE_RUN = {"epochs": 100, "learning_rate": 0.5, "seed": 0}
"""The settings of examples/softmax_regression.py's run, the defaults of its ``train``."""

Objective = Callable[[np.ndarray, np.ndarray], tuple[Any, np.ndarray]]
"""``objective(logits, class_indices) -> (loss, d loss / d logits)``."""


@dataclass
class History:
    """Loss, train accuracy (before the epoch's step) and test accuracy (after it) per epoch."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)

    def epochs_to(self, accuracy: float) -> int | None:
        """The first epoch (from 1) whose train accuracy reaches ``accuracy``, or ``None``."""
        reached = np.flatnonzero(np.asarray(self.train_accuracy) >= accuracy)
        return int(reached[0]) + 1 if reached.size else None


def wine_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised 70/30 stratified train/test split (scaling learnt on the training part)."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def softmax_mse(
    logits: np.ndarray, target: np.ndarray, *, reduction: str = "mean", grad_output: Any = None
) -> tuple[Any, np.ndarray]:
    r"""MSE between the softmax probabilities and the one-hot targets, with its gradient.

    .. math::

        \ell = \operatorname{mean}_{i, c}\,\bigl(p_{i,c} - [y_i = c]\bigr)^2,
        \qquad p_i = \operatorname{softmax}(x_i)

    Parameters
    ----------
    logits : ndarray, shape ``(N, C)``
        Unnormalised scores.
    target : ndarray of int, shape ``(N,)``
        Class indices.
    reduction : {"mean", "sum", "none"}, default "mean"
        As :func:`losskit.mse_loss` over the ``N * C`` probabilities.
    grad_output : array, optional
        The upstream gradient, required (shaped ``(N, C)``) for ``"none"``.

    Returns
    -------
    tuple
        The loss and its gradient with respect to ``logits``, like a function made by
        :func:`losskit.value_and_grad`.

    Notes
    -----
    The gradient with respect to the probabilities, ``g``, goes through the softmax's
    Jacobian: :math:`\partial \ell / \partial x_{i,c} = p_{i,c} (g_{i,c} - \sum_k p_{i,k} g_{i,k})`.
    It vanishes as a prediction saturates, right or wrong: why MSE learns slowly from a
    confident mistake, where cross-entropy's gradient ``p - onehot`` does not.

    References
    ----------
    P. Golik, P. Doetsch and H. Ney, "Cross-entropy vs. squared error training: a
    theoretical and experimental comparison", Interspeech 2013.

    Examples
    --------
    >>> import numpy as np
    >>> value, dlogits = softmax_mse(np.array([[2.0, 0.0]]), np.array([0]))
    >>> round(float(value), 6), dlogits.round(6)
    (0.014209, array([[-0.025031,  0.025031]]))
    """
    p = softmax(logits, 1)
    onehot = np.eye(logits.shape[1])[target]
    value, dp = value_and_grad(mse_loss)(p, onehot, reduction=reduction, grad_output=grad_output)
    return value, p * (dp - np.sum(p * dp, axis=1, keepdims=True))


def train(
    objective: Objective | None = None,
    *,
    epochs: int = 100,
    learning_rate: float = 0.5,
    seed: int = 0,
    on_epoch: Callable[[int, History], object] | None = None,
) -> History:
    r"""Full-batch gradient descent on a linear softmax classifier of the wine data.

    .. math::

        W \leftarrow W - \eta\, X^\top \frac{\partial \ell}{\partial Z}, \qquad
        b \leftarrow b - \eta \sum_i \frac{\partial \ell}{\partial Z_i}, \qquad Z = X W + b

    Parameters
    ----------
    objective : callable, optional
        ``objective(logits, class_indices) -> (loss, d loss / d logits)``, such as
        ``losskit.value_and_grad(losskit.cross_entropy)`` (the default) or :func:`softmax_mse`.
    epochs : int, default 100
        Number of gradient steps on the whole training set.
    learning_rate : float, default 0.5
        The step size :math:`\eta`.
    seed : int, default 0
        Seeds the train/test split and the initial weights.
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, history)`` after each epoch (counted from 1).

    Returns
    -------
    History
        Loss, train and test accuracy per epoch.

    Notes
    -----
    An epoch's train accuracy is measured on the logits its loss was computed from (before
    the step), its test accuracy after the step. The weights start at
    :math:`0.01\,\mathcal{N}(0, 1)` and the biases at 0.

    References
    ----------
    C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, section 4.3.4.

    Examples
    --------
    >>> history = train(epochs=30)
    >>> history.loss[-1] < history.loss[0], history.epochs_to(0.9) is not None
    (True, True)
    """
    objective = value_and_grad(cross_entropy) if objective is None else objective
    x_train, x_test, y_train, y_test = wine_split(seed)
    rng = np.random.default_rng(seed)
    weights = 0.01 * rng.standard_normal((x_train.shape[1], 3))
    bias = np.zeros(3)
    history = History()
    for epoch in range(1, epochs + 1):
        logits = x_train @ weights + bias
        value, d_logits = objective(logits, y_train)
        weights -= learning_rate * (x_train.T @ d_logits)
        bias -= learning_rate * d_logits.sum(axis=0)
        history.loss.append(float(value))
        history.train_accuracy.append(float(np.mean(logits.argmax(axis=1) == y_train)))
        history.test_accuracy.append(
            float(np.mean((x_test @ weights + bias).argmax(axis=1) == y_test))
        )
        if on_epoch is not None:
            on_epoch(epoch, history)
    return history
