"""Train a softmax classifier with plain NumPy and ``losskit.value_and_grad``.

The wine data set of scikit-learn (it ships inside the package; nothing is downloaded): 178
wines, 13 chemical measurements each, from 3 cultivars. A linear model gives logits
``X @ W + b``; ``value_and_grad(cross_entropy)`` returns the loss and its gradient with
respect to the logits (softmax minus one-hot, divided by the batch size), and the chain rule
takes it to ``W`` and ``b``. No autograd anywhere.

The training loop is ``train`` in ``losskit/_softmax_regression.py``, the same code that
``losskit demo wine`` runs to compare cross-entropy with MSE and focal loss.

    python examples/softmax_regression.py
"""

from __future__ import annotations

from losskit._softmax_regression import History, train


def report(epoch: int, history: History) -> None:
    """Print one line per epoch."""
    print(
        f"epoch {epoch:3d}  loss {history.loss[-1]:.4f}  "
        f"train accuracy {history.train_accuracy[-1]:.3f}  "
        f"test accuracy {history.test_accuracy[-1]:.3f}"
    )


if __name__ == "__main__":
    result = train(on_epoch=report)
    print(f"final test accuracy: {result.test_accuracy[-1]:.3f}")
