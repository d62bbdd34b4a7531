"""Training with ``torch.compile(model, backend="tensorlang")``: a small CNN and a small
BERT-like encoder, trained for a few SGD steps in eager PyTorch and with tensorlang from the
same initial weights and batches.

AOTAutograd hands the backend a forward and a backward graph; tensorlang compiles both
(convolution_backward as convolutions over the gradient, training batch norm, max pooling's
indices and their backward, layer-norm and embedding backward written with graph ops). What
still runs in PyTorch is listed from the backend's warning.

Prints the losses side by side, the largest difference of the final parameters, and the
median time per step after a warm-up step (which compiles).

Run: ``python -m examples.pytorch.training``
"""

import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn


STEPS = 10


class SmallCNN(nn.Module):
    """conv -> batch norm -> ReLU -> 2x2 max pool -> linear, for ``image`` x ``image`` RGB."""

    def __init__(self, channels=16, image=16):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels * (image // 2) ** 2, 10)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1))


class SmallBert(nn.Module):
    """One encoder layer (single-head attention, layer norms, GELU MLP), mean-pooled."""

    def __init__(self, vocab=100, dim=64, classes=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.cls = nn.Linear(dim, classes)

    def forward(self, ids):
        x = self.emb(ids)
        att = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / x.shape[-1] ** 0.5, -1)
        x = self.ln1(x + self.o(att @ self.v(x)))
        x = self.ln2(x + self.fc2(F.gelu(self.fc1(x))))
        return self.cls(x.mean(1))


def train(model, batches, compiled):
    """Losses and seconds per step; the tensorlang warnings (ops left to PyTorch)."""
    model.train()
    run = torch.compile(model, backend="tensorlang") if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses, times = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, y in batches:
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = F.cross_entropy(run(x), y)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
            losses.append(loss.item())
    in_torch = sorted({str(w.message).split("PyTorch: ", 1)[1] for w in caught
                       if type(w.message).__name__ == "TensorlangWarning"})
    return losses, times, in_torch


def compare(name, make, batches):
    torch.manual_seed(0)
    eager_model, tl_model = make(), make()
    tl_model.load_state_dict(eager_model.state_dict())
    ref, ref_t, _ = train(eager_model, batches, compiled=False)
    torch._dynamo.reset()
    got, got_t, in_torch = train(tl_model, batches, compiled=True)
    print(f"== {name}: {STEPS} SGD steps, eager vs tensorlang from the same init")
    print(f"{'step':>4}  {'eager loss':>12}  {'tensorlang loss':>15}  {'rel diff':>9}")
    for i, (a, b) in enumerate(zip(ref, got)):
        print(f"{i:>4}  {a:>12.6f}  {b:>15.6f}  {abs(a - b) / abs(a):>9.2e}")
    eager_params, tl_params = eager_model.state_dict(), tl_model.state_dict()
    diff = max((eager_params[k].float() - tl_params[k].float()).abs().max().item()
               for k in eager_params)
    print(f"final parameters: max |eager - tensorlang| = {diff:.2e}")
    print(f"median step time (after step 0): eager {statistics.median(ref_t[1:]) * 1e3:.2f} ms, "
          f"tensorlang {statistics.median(got_t[1:]) * 1e3:.2f} ms "
          f"(step 0, compiling: {got_t[0]:.2f} s)")
    print("ran in PyTorch: " + ("; ".join(in_torch) if in_torch else "nothing"))
    print()


def main():
    torch.manual_seed(1)
    cnn_batches = [(torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,)))
                   for _ in range(STEPS)]
    bert_batches = [(torch.randint(0, 100, (8, 16)), torch.randint(0, 4, (8,)))
                    for _ in range(STEPS)]
    compare("small CNN (conv-BN-ReLU-maxpool-linear)", SmallCNN, cnn_batches)
    compare("small BERT (embedding-attention-layernorm-GELU MLP-mean-linear)", SmallBert,
            bert_batches)


if __name__ == "__main__":
    main()
