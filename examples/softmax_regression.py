"""Train a softmax classifier with plain NumPy and ``losskit.value_and_grad``.

The wine data set of scikit-learn (it ships inside the package; nothing is downloaded): 178
wines, 13 chemical measurements each, from 3 cultivars. A linear model gives logits
``X @ W + b``; ``value_and_grad(cross_entropy)`` returns the loss and its gradient with
respect to the logits (softmax minus one-hot, divided by the batch size), and the chain rule
takes it to ``W`` and ``b``. No autograd anywhere.

    python examples/softmax_regression.py
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

import losskit as lk


@dataclass
class History:
    """Loss and accuracies per epoch."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def wine_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised train/test split (the scaling learnt on the training part only)."""
    x, y = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def train(
    loss=lk.cross_entropy,  # noqa: ANN001 - any losskit loss of (logits, class indices)
    *,
    epochs: int = 100,
    learning_rate: float = 0.5,
    seed: int = 0,
    verbose: bool = False,
    **loss_options: object,
) -> History:
    """Full-batch gradient descent on a linear softmax classifier."""
    x_train, x_test, y_train, y_test = wine_split(seed)
    rng = np.random.default_rng(seed)
    weights = 0.01 * rng.standard_normal((x_train.shape[1], 3))
    bias = np.zeros(3)
    value_and_grad = lk.value_and_grad(loss)
    history = History()
    for epoch in range(epochs):
        logits = x_train @ weights + bias
        value, d_logits = value_and_grad(logits, y_train, **loss_options)
        weights -= learning_rate * (x_train.T @ d_logits)
        bias -= learning_rate * d_logits.sum(axis=0)
        history.loss.append(float(value))
        history.train_accuracy.append(float(np.mean(logits.argmax(axis=1) == y_train)))
        history.test_accuracy.append(float(np.mean((x_test @ weights + bias).argmax(axis=1) == y_test)))
        if verbose:
            print(
                f"epoch {epoch + 1:3d}  loss {value:.4f}  "
                f"train accuracy {history.train_accuracy[-1]:.3f}  test accuracy {history.test_accuracy[-1]:.3f}"
            )
    return history


if __name__ == "__main__":
    result = train(verbose=True)
    print(f"final test accuracy: {result.test_accuracy[-1]:.3f}")
