"""Where one W1 training update spends its time: the LSTM's forward, its backward (with the linear head and the L1
loss) and the optimizer step, as a bare PyTorch loop on random data of W1's shapes (LSTM 40, bs 16, sub-window 100).

    python benchmarks/bench_update_breakdown.py             # 1 torch thread
    python benchmarks/bench_update_breakdown.py --threads 2

Medians of 7 blocks of 300 repetitions each, after 20 warm-up repetitions; the differences between the lines are the
parts' costs. Every implementation of `bench_speed.py` runs these same kernels, so their sum bounds how much faster
any training loop can be at the same thread setting."""
import argparse, time
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def median_ms(f, n:int=300, blocks:int=7) -> float:
    for _ in range(20): f()
    ts = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(n): f()
        ts.append((time.perf_counter() - t0) / n * 1e3)
    return float(np.median(ts))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    B, T, H = 16, 100, 40
    lstm, head = nn.LSTM(1, H, batch_first=True), nn.Linear(H, 1)
    opt = torch.optim.AdamW([*lstm.parameters(), *head.parameters()], lr=3e-3, betas=(0.9, 0.99), eps=1e-5,
                            weight_decay=0.01, fused=True)
    u, y = torch.randn(B, T, 1), torch.randn(B, T, 1)
    def forward():
        with torch.no_grad(): lstm(u)
    def backward():
        out, _ = lstm(u); F.l1_loss(head(out), y).backward()
    def update():
        out, _ = lstm(u); F.l1_loss(head(out), y).backward(); opt.step(); opt.zero_grad()
    f, b, s = median_ms(forward), median_ms(backward), median_ms(update)
    print(f"{a.threads} torch thread(s), LSTM {H}, bs {B}, sub-window {T}: ms per update")
    print(f"| part | ms | share |\n|---|---|---|")
    for name, v in (('LSTM forward', f), ('LSTM backward, head and L1 loss', b - f), ('AdamW step and zero_grad', s - b),
                    ('whole update', s)):
        print(f"| {name} | {v:.2f} | {v / s:.0%} |")


if __name__ == '__main__': main()
