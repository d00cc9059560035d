"""Where one W1 training update spends its time: the LSTM's forward, its backward (with the linear head and the L1
loss) and the optimizer step, as a bare PyTorch loop on random data of W1's shapes (LSTM 40, bs 16, sub-window 100).

    python benchmarks/bench_update_breakdown.py             # 1 torch thread
    python benchmarks/bench_update_breakdown.py --threads 2
    python benchmarks/bench_update_breakdown.py --levers    # two ways to do less work per update, timed against torch

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


class _LoopLSTM(torch.autograd.Function):
    "An LSTM layer as a Python time loop with a hand-written backward (the lean-loop idea of the nonlinear state space)"
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b):
        B, T, _ = x.shape; H = h0.shape[-1]
        xw = torch.addmm(b, x.reshape(-1, x.shape[-1]), w_ih.t()).view(B, T, -1)
        hs, cs, acts = x.new_empty(T + 1, B, H), x.new_empty(T + 1, B, H), x.new_empty(T, B, 4 * H)
        hs[0], cs[0] = h0, c0
        for t in range(T):
            g = torch.addmm(xw[:, t], hs[t], w_hh.t()); a = acts[t]
            torch.sigmoid(g, out=a); torch.tanh(g[:, 2*H:3*H], out=a[:, 2*H:3*H])
            i, f, gg, o = a.chunk(4, 1)
            torch.addcmul(f * cs[t], i, gg, out=cs[t + 1]); torch.mul(o, torch.tanh(cs[t + 1]), out=hs[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, hs, cs, acts)
        return hs[1:].transpose(0, 1)

    @staticmethod
    def backward(ctx, dout):
        x, w_ih, w_hh, hs, cs, acts = ctx.saved_tensors
        T, B, H = acts.shape[0], acts.shape[1], hs.shape[-1]
        dg_all, dh, dc, dout = acts.new_empty(T, B, 4 * H), torch.zeros_like(hs[0]), torch.zeros_like(cs[0]), dout.transpose(0, 1)
        for t in range(T - 1, -1, -1):
            dh = dh + dout[t]
            i, f, gg, o = acts[t].chunk(4, 1); tc = torch.tanh(cs[t + 1])
            dc = dc + dh * o * (1 - tc * tc)
            di, df, dgg, do = dg_all[t].chunk(4, 1)
            torch.mul(dc * gg, i * (1 - i), out=di); torch.mul(dc * cs[t], f * (1 - f), out=df)
            torch.mul(dc * i, 1 - gg * gg, out=dgg); torch.mul(dh * tc, o * (1 - o), out=do)
            dc, dh = dc * f, dg_all[t] @ w_hh
        dg = dg_all.transpose(0, 1).reshape(-1, 4 * H)
        return ((dg @ w_ih).view_as(x), dh, dc, dg.t() @ x.reshape(-1, x.shape[-1]),
                dg.t() @ hs[:-1].transpose(0, 1).reshape(-1, H), dg.sum(0))


def levers(lstm, head, u, y, B, H):
    "Time the two levers against what every implementation runs; check the loop LSTM's gradients against torch's"
    w = lambda: (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
    h0 = torch.zeros(B, H)
    def torch_fb():
        out, _ = lstm(u); F.l1_loss(head(out), y).backward()
    def loop_fb():
        F.l1_loss(head(_LoopLSTM.apply(u, h0, h0, *w())), y).backward()
    for f in (torch_fb, loop_fb):  # the same gradients (to float rounding)
        lstm.zero_grad(); f(); g = lstm.weight_hh_l0.grad.clone()
        if f is torch_fb: ref = g
    assert torch.allclose(g, ref, atol=1e-5), float((g - ref).abs().max())
    ps = [*lstm.parameters(), *head.parameters()]
    for p in ps: p.grad = torch.randn_like(p)
    flat = torch.cat([p.detach().reshape(-1) for p in ps]).requires_grad_(); flat.grad = torch.randn_like(flat)
    kw = dict(lr=3e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, fused=True)
    o_many, o_flat = torch.optim.AdamW(ps, **kw), torch.optim.AdamW([flat], **kw)
    print("| lever | torch (what every implementation runs) ms | lever ms |\n|---|---|---|")
    print(f"| LSTM forward+backward as a Python loop with a hand-written backward | {median_ms(torch_fb, 50):.2f} | {median_ms(loop_fb, 50):.2f} |")
    print(f"| fused AdamW step on one flat tensor instead of {len(ps)} | {median_ms(o_many.step):.3f} | {median_ms(o_flat.step):.3f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--levers', action='store_true', help='time the two levers tried instead of the breakdown')
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    B, T, H = 16, 100, 40
    lstm, head = nn.LSTM(1, H, batch_first=True), nn.Linear(H, 1)
    opt = torch.optim.AdamW([*lstm.parameters(), *head.parameters()], lr=3e-3, betas=(0.9, 0.99), eps=1e-5,
                            weight_decay=0.01, fused=True)
    u, y = torch.randn(B, T, 1), torch.randn(B, T, 1)
    if a.levers: return levers(lstm, head, u, y, B, H)
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
