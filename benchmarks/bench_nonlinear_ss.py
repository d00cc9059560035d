"""The cost of a nonlinear state space's step-by-step state update, per training update.

`NonlinearSS` (tsfast_lite.models.nonlinear_ss) runs its state update one time step after the other. This script
times one training update (forward over a sub-window, backward, AdamW step) of:

- `lstm`: the LSTM 64 of the Silverbox recipes (cuDNN/oneDNN runs its loop in C++), the yardstick;
- `lite mlp` / `lite poly`: `NonlinearSS` as the library runs it (the fused loop: B u, the first layer's input part and
  the last bias computed for all steps before the loop, A and the first layer's state part in one matrix);
- `lean loop mlp` / `lean loop poly`: the library's loop with autograd recording every step (no custom backward), to
  show what each of the two levers buys;
- `bare mlp` / `bare poly`: the same model written as a user would write it in plain PyTorch, one step
  x = A x + B u_t + f([x, u_t]) with `f` an `nn.Sequential` called on the concatenation;
- `compiled mlp` (with `--compile`): the lite loop with its step function compiled by `torch.compile`.

Every variant gets the same input (sub-window 250, Silverbox's one input and output) at each batch size of `--bs`,
rounds alternate between the variants, and the table gives the median time per update over rounds, the training
samples per second it makes, its ratio to the LSTM and its speed-up over the plain loop (`bare`) measured in the same
rounds (medians of within-round ratios), and the fraction of the FLOP floor it reaches: the model's multiply-adds per
sample (forward, and twice that for the backward) at the rate this CPU runs a [bs, 64] x [64, 64] matrix product
(measured at the start of the run, `floor GFLOP/s` in the heading).

    python benchmarks/bench_nonlinear_ss.py                  # torch's default threads, bs 16, 7 rounds of 20 updates
    python benchmarks/bench_nonlinear_ss.py --threads 1 --bs 16 256 --rounds 7 --updates 4   # writes benchmarks/results/speed_nonlinear_ss.md
"""
from __future__ import annotations
import argparse, platform, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
from torch import nn


class BareNLSS(nn.Module):
    "x+ = A x + B u + f([x, u]), y = C x + D u: the plain loop a user would write (f an MLP or monomials times E)"
    def __init__(self, ref):
        super().__init__()
        self.A, self.B, self.C, self.D = (nn.Parameter(p.detach().clone()) for p in (ref.A, ref.B, ref.C, ref.D))
        self.f = ref.f_net
        self.bound = ref.bound if ref.f == 'poly' else None
    def forward(self, u, x=None):
        x = u.new_zeros(u.shape[0], self.A.shape[0]) if x is None else x
        xs = []
        for t in range(u.shape[1]):
            xs.append(x)
            z = torch.cat([x, u[:, t]], -1)
            if self.bound is not None: z = z.clamp(-self.bound, self.bound)
            x = x @ self.A.T + u[:, t] @ self.B.T + self.f(z)
        X = torch.stack(xs, 1)
        return X @ self.C.T + u @ self.D.T, x


class AutogradLoop(nn.Module):
    "NonlinearSS's lean loop with autograd through every step instead of its custom backward"
    def __init__(self, ref): super().__init__(); self.m = ref
    def forward(self, u, x=None):
        m = self.m
        X, x = m._loop(u.new_zeros(u.shape[0], m.nx) if x is None else x, u)
        return X @ m.C.T + u @ m.D.T, x


def compiled_step_model(ref):
    "The lite MLP loop with one compiled step function x, drive_t, pre_t -> x"
    class Compiled(nn.Module):
        def __init__(self):
            super().__init__(); self.m = ref
            self.step = torch.compile(self._step, dynamic=False)
        def _step(self, x, M, d, p, mids, last):
            ax, hx = (x @ M).split([self.m.nx, self.m.hidden_size], -1)
            h = torch.tanh(hx + p)
            for lin in mids: h = torch.tanh(h @ lin[0].T + lin[1])
            return ax + d + h @ last
        def forward(self, u, x=None):
            m = self.m; fn = m.f_net
            x = u.new_zeros(u.shape[0], m.nx) if x is None else x
            drive = u @ m.B.T + fn[-1].bias
            pre = u @ fn[0].weight[:, m.nx:].T + fn[0].bias
            M = torch.cat([m.A, fn[0].weight[:, :m.nx]]).T
            mids = [(l.weight, l.bias) for l in list(fn)[2:-1] if isinstance(l, nn.Linear)]
            xs = []
            for t in range(u.shape[1]):
                xs.append(x); x = self.step(x, M, drive[:, t], pre[:, t], mids, fn[-1].weight.T)
            X = torch.stack(xs, 1)
            return X @ m.C.T + u @ m.D.T, x
    return Compiled()


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__(); self.rnn = nn.LSTM(1, 64, batch_first=True); self.head = nn.Linear(64, 1)
    def forward(self, u, state=None):
        out, s = self.rnn(u, state); return self.head(out), s


def make_variants(args) -> dict:
    from tsfast_lite.models.nonlinear_ss import NonlinearSS
    torch.manual_seed(0)
    mlp = NonlinearSS(1, 1, nx=4, f='mlp', h=None)
    poly = NonlinearSS(1, 1, nx=2, f='poly', h=None, degree=3)
    for m in (mlp, poly):  # train from a point where f is not zero (as after the first updates)
        with torch.no_grad(): m.f_net[-1].weight.normal_(0, .01)
    import copy
    v = {'lstm': LSTMModel(), 'lite mlp nx4 2x64': mlp, 'lean loop mlp nx4 2x64': AutogradLoop(copy.deepcopy(mlp)),
         'bare mlp nx4 2x64': BareNLSS(mlp), 'lite poly nx2 deg3': poly,
         'lean loop poly nx2 deg3': AutogradLoop(copy.deepcopy(poly)), 'bare poly nx2 deg3': BareNLSS(poly)}
    if args.compile:
        v['compiled mlp nx4 2x64'] = compiled_step_model(copy.deepcopy(mlp))
    return v


def macs_per_sample(m) -> int:
    "Multiply-adds of one step of a NonlinearSS's state update and output (its f MLP or polynomial, A, B, C, D)"
    n = m.nx * m.nx + m.nx * m.n_u + m.n_y * (m.nx + m.n_u)
    if m.f_net is not None: n += sum(l.weight.numel() for l in m.f_net if isinstance(l, nn.Linear))
    return n


def gemm_gflops(bs:int, n:int=64, reps:int=200) -> float:
    "GFLOP/s of a [bs, n] x [n, n] matrix product on this CPU (median of 5 timings): the rate the model's products could reach"
    a, b = torch.randn(bs, n), torch.randn(n, n)
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps): a @ b
        ts.append((time.perf_counter() - t0) / reps)
    return 2 * bs * n * n / statistics.median(ts) / 1e9


def time_updates(model, opt, u, y, n:int) -> float:
    "Seconds per update, mean over `n` updates (forward, MSE, backward, AdamW step)"
    t0 = time.perf_counter()
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        loss = ((model(u)[0] - y)**2).mean()
        loss.backward(); opt.step()
    return (time.perf_counter() - t0) / n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument('--rounds', type=int, default=7); p.add_argument('--updates', type=int, default=20)
    p.add_argument('--bs', type=int, nargs='+', default=[16], help='batch sizes, each its own table')
    p.add_argument('--sub-seq-len', type=int, default=250)
    p.add_argument('--compile', action='store_true', help='also time the lite MLP loop with a torch.compile-d step')
    p.add_argument('--out', default=str(ROOT/'benchmarks'/'results'/'speed_nonlinear_ss.md'), help='markdown file written')
    p.add_argument('--append', action='store_true', help='append to --out (another thread setting) instead of replacing it')
    a = p.parse_args()
    if a.threads is not None: torch.set_num_threads(a.threads)
    text = '\n'.join(run(a, bs) for bs in a.bs)
    print(text)
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    mode = 'a' if out.exists() and a.append else 'w'
    with out.open(mode) as f: f.write(('\n' if mode == 'a' else '') + text)
    print(f"written: {out}")


def run(a, bs:int) -> str:
    "The table of one batch size"
    u, y = torch.randn(bs, a.sub_seq_len, 1), torch.randn(bs, a.sub_seq_len, 1)
    variants = make_variants(a)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in variants.items()}
    for k, m in variants.items(): time_updates(m, opts[k], u, y, 3)  # warm-up (and compilation)
    gf = gemm_gflops(bs)
    times = {k: [] for k in variants}
    for _ in range(a.rounds):
        for k, m in variants.items(): times[k].append(time_updates(m, opts[k], u, y, a.updates))
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()}, "
             f"bs {bs}, sub-window {a.sub_seq_len}, {a.rounds} rounds of {a.updates} updates, floor GFLOP/s {gf:.1f}", '',
             '| model | ms per update (median) | samples/s | ratio to LSTM | speed-up over bare | % of FLOP floor |',
             '|---|---:|---:|---:|---:|---:|']
    for k, ts in times.items():
        ratio = statistics.median(t / l for t, l in zip(ts, times['lstm']))
        fam = k.split()[-3] if k != 'lstm' else None
        bare = f"bare {fam} " + ' '.join(k.split()[-2:]) if fam else None
        up = f"{statistics.median(b / t for t, b in zip(ts, times[bare])):.2f}" if bare in times else ''
        m = variants.get(f"lite {fam} " + ' '.join(k.split()[-2:])) if fam else None   # the model each variant runs
        floor = ''
        if m is not None:
            flops = 3 * 2 * macs_per_sample(m) * bs * a.sub_seq_len   # forward, and twice it backward
            floor = f"{100 * flops / statistics.median(ts) / 1e9 / gf:.1f}"
        sps = bs * a.sub_seq_len / statistics.median(ts)
        lines.append(f"| {k} | {1e3 * statistics.median(ts):.1f} | {sps:,.0f} | {ratio:.2f} | {up} | {floor} |")
    return '\n'.join(lines) + '\n'


if __name__ == '__main__': main()
