"""Train a softmax classifier with plain NumPy and ``losskit.value_and_grad``.

The wine data set of scikit-learn (it ships inside the package; nothing is downloaded): 178
wines, 13 chemical measurements each, from 3 cultivars. A linear model gives logits
``Z = X W + b``. ``value_and_grad(cross_entropy)`` returns the loss and its gradient with
respect to the logits, ``(softmax(Z) - onehot(y)) / N``, and the chain rule through
``X W + b`` takes it to ``W`` and ``b``: full-batch gradient descent, no autograd anywhere.

    python examples/softmax_regression.py
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

import losskit as lk


@dataclass
class Run:
    """Per epoch: the training loss, the train accuracy (before the step) and the test
    accuracy (after it)."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def standardised_wine(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stratified 70/30 split, scaled with the training part's mean and deviation."""
    features, labels = load_wine(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.3, random_state=seed, stratify=labels
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def train(seed: int = 0, epochs: int = 100, learning_rate: float = 0.5, verbose: bool = False) -> Run:
    """Gradient descent on the cross-entropy of a linear softmax classifier."""
    x_train, x_test, y_train, y_test = standardised_wine(seed)
    classes = 3
    weights = 0.01 * np.random.default_rng(seed).standard_normal((x_train.shape[1], classes))
    bias = np.zeros(classes)
    loss_and_gradient = lk.value_and_grad(lk.cross_entropy)  # with respect to the logits
    run = Run()
    for epoch in range(1, epochs + 1):
        logits = x_train @ weights + bias
        loss, d_logits = loss_and_gradient(logits, y_train)
        # Z = X W + b, so dL/dW = X^T dL/dZ and dL/db sums dL/dZ over the samples.
        weights -= learning_rate * (x_train.T @ d_logits)
        bias -= learning_rate * d_logits.sum(axis=0)
        run.loss.append(float(loss))
        run.train_accuracy.append(float(np.mean(logits.argmax(axis=1) == y_train)))
        run.test_accuracy.append(float(np.mean((x_test @ weights + bias).argmax(axis=1) == y_test)))
        if verbose:
            print(
                f"epoch {epoch:3d}  loss {run.loss[-1]:.4f}  "
                f"train accuracy {run.train_accuracy[-1]:.3f}  test accuracy {run.test_accuracy[-1]:.3f}"
            )
    return run


if __name__ == "__main__":
    result = train(verbose=True)
    print(f"final test accuracy: {result.test_accuracy[-1]:.3f}")
