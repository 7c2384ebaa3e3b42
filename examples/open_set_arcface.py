"""Open-set verification: ArcFace against plain softmax cross-entropy, on the CPU in seconds.

Face recognition meets people after training who were never in the training set, so the
embedding must place any two samples of one identity close together and samples of different
identities far apart, for identities it has never seen. Plain cross-entropy only needs the
training classes to be separable by a linear layer; ArcFace asks for an angular margin
between every sample and the other classes' centres, which makes the classes compact.

The data are synthetic: 300 identities, each a random point on a sphere in a 16-dimensional
latent space. A sample is its identity's point plus a little noise, together with 16 nuisance
factors that every identity shares (think pose and lighting), seen through a fixed random
nonlinear map into 64 dimensions. The first 200 identities train a small network; the last
100 are held out. Cross-entropy stops caring about the nuisance once the training identities
are told apart; ArcFace keeps pulling each sample toward its class centre, which removes it. For held-out pairs of
samples (half of one identity, half of two), the cosine of their embeddings decides "same"
above a threshold; the threshold is fitted on one half of the pairs and the accuracy
reported on the other half.

Needs torch and rich (the ``cli`` extra), which draws a progress bar per training run:

    python examples/open_set_arcface.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from rich.progress import Progress
from torch import nn

from losskit.torch.nn import ArcFaceLoss, CrossEntropyLoss

IDENTITIES, TRAINING_IDENTITIES, SAMPLES, LATENT, NUISANCE, OBSERVED, EMBEDDING = 300, 200, 24, 16, 16, 64, 32


class Data(NamedTuple):
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def make_data(gen: torch.Generator) -> Data:
    """Identities on a latent sphere with shared nuisance factors, through a nonlinear map."""
    centres = nn.functional.normalize(torch.randn(IDENTITIES, LATENT, generator=gen), dim=1)
    labels = torch.arange(IDENTITIES).repeat_interleave(SAMPLES)
    identity = centres[labels] + 0.1 * torch.randn(len(labels), LATENT, generator=gen)
    nuisance = 0.3 * torch.randn(len(labels), NUISANCE, generator=gen)
    mixing = torch.randn(LATENT + NUISANCE, OBSERVED, generator=gen) / (LATENT + NUISANCE) ** 0.5
    x = torch.tanh(2 * torch.cat([identity, nuisance], dim=1) @ mixing)
    seen = labels < TRAINING_IDENTITIES
    return Data(x[seen], labels[seen], x[~seen], labels[~seen] - TRAINING_IDENTITIES)


def embedder(gen: torch.Generator) -> nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    return nn.Sequential(nn.Linear(OBSERVED, 128), nn.ReLU(), nn.Linear(128, EMBEDDING))


def train(head: nn.Module, data: Data, gen: torch.Generator, epochs: int, on_epoch: Callable[[], object]) -> nn.Module:
    """Train an embedding network end to end with ``head(embeddings, labels)`` as the loss,
    calling ``on_epoch()`` after each epoch."""
    net = embedder(gen)
    params = [*net.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(data.train_y), generator=gen).split(128):
            optimizer.zero_grad()
            head(net(data.train_x[batch]), data.train_y[batch]).backward()
            optimizer.step()
        on_epoch()
    return net


class SoftmaxHead(nn.Module):
    """A linear classifier on the embedding, trained with losskit's cross-entropy."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(EMBEDDING, TRAINING_IDENTITIES)
        self.loss = CrossEntropyLoss()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(self.classifier(embeddings), labels)


def verification_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float:
    """Accuracy of "same identity iff cosine > t" on balanced held-out pairs, t fitted apart."""
    with torch.no_grad():
        e = nn.functional.normalize(net(x), dim=1)
    n = 20000
    first = torch.randint(0, len(y), (n,), generator=gen)
    same = torch.arange(n) % 2 == 0  # half of the pairs share an identity
    pool = [torch.nonzero(y == k).flatten() for k in range(int(y.max()) + 1)]
    partner = torch.randint(0, len(y), (n,), generator=gen)
    for i in torch.nonzero(same).flatten().tolist():
        members = pool[int(y[first[i]])]
        partner[i] = members[int(torch.randint(0, len(members), (1,), generator=gen))]
    same = y[first] == y[partner]
    cosine = (e[first] * e[partner]).sum(1)
    fit, report = slice(0, n // 2), slice(n // 2, n)
    thresholds = torch.linspace(-1, 1, 401)
    hits = ((cosine[fit, None] > thresholds) == same[fit, None]).float().mean(0)
    best = thresholds[hits.argmax()]
    return float(((cosine[report] > best) == same[report]).float().mean())


def compare(seed: int = 0, epochs: int = 30, progress: Progress | None = None) -> dict[str, float]:
    """Train both ways from the same seed; held-out verification accuracy of each. A
    ``progress`` display gets a bar per training run, advanced once an epoch."""
    progress = Progress(disable=True) if progress is None else progress
    gen = torch.Generator().manual_seed(seed)
    data = make_data(gen)
    heads = {
        "cross_entropy": SoftmaxHead(),
        "arcface": ArcFaceLoss(TRAINING_IDENTITIES, EMBEDDING, scale=16.0, margin=0.5),
    }
    result = {}
    for name, head in heads.items():
        task = progress.add_task(f"training with {name}", total=epochs)
        net = train(head, data, torch.Generator().manual_seed(seed + 1), epochs, lambda: progress.advance(task))
        result[name] = verification_accuracy(net, data.test_x, data.test_y, torch.Generator().manual_seed(seed + 2))
    return result


if __name__ == "__main__":
    with Progress() as shown:
        accuracies = compare(progress=shown)
    for name, accuracy in accuracies.items():
        print(f"{name:>14}: verification accuracy on held-out identities {accuracy:.3f}")
