"""Time one training epoch (incl. validation) through RNNLearner against the same mathematics as a bare PyTorch loop.

Workloads (Silverbox, data in memory):

- W1: LSTM 40 hidden, bs 16, win_sz 500, stp_sz 10, TBPTT sub_seq_len 100, 300 window-batches -> 1,500 optimizer steps
- W2: GRU 100 hidden, bs 64, win_sz 200, stp_sz 1, 300 window-batches, n_skip 50, full BPTT -> 300 optimizer steps

Implementations, timed alternately in one run (`--repeats` rounds, each round runs every implementation once, in a
rotated order), medians and ratios printed as a markdown table:

- `tsfast_lite`: `RNNLearner(...).fit_flat_cos(1, lr=3e-3)` with the default callbacks (progress bar included; its
  console output is discarded);
- `bare`: a hand-written loop: same model sizes and initialisation, same windows from the same random plan, torch
  AdamW (fused, betas (0.9, 0.99), eps 1e-5, weight decay 0.01), the flat-cos learning rate set before every step, one
  step per sub-window with the detached state carried, the same validation windows (global L1 loss and RMSE);
- `tsfast`: the published tsfast 0.5.0 (`--tsfast-python`, a venv where it is installed), W1 only, in a worker process.

The final validation loss of `tsfast_lite` and `bare` is printed beside the times: from the same seed they do the
same mathematics, so the two must agree (to float rounding).

    python benchmarks/bench_speed.py                 # W1 and W2, 3 rounds
    python benchmarks/bench_speed.py --quick         # 20 window-batches, 2 rounds: a smoke run
    python benchmarks/bench_speed.py --tsfast-python /tmp/venv-tsfast/bin/python

On a GPU the script runs unchanged (fastai's `default_device()`); timings are taken between torch.cuda.synchronize().
"""
from __future__ import annotations
import argparse, contextlib, io, json, math, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

WORKLOADS = {
    'W1': dict(rnn_type='lstm', hidden_size=40, bs=16, win_sz=500, stp_sz=10, sub_seq_len=100, n_skip=0),
    'W2': dict(rnn_type='gru', hidden_size=100, bs=64, win_sz=200, stp_sz=1, sub_seq_len=None, n_skip=50),
}
LR, BETAS, EPS, WD = 3e-3, (0.9, 0.99), 1e-5, 0.01


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def timed(f, device):
    "Run `f()`, return (seconds, result), synchronising the device around it"
    sync(device); t0 = time.perf_counter()
    res = f()
    sync(device)
    return time.perf_counter() - t0, res


# ---------------------------------------------------------------------------------------------------- tsfast_lite
def make_dls(w:dict, n_batches:int):
    from tsfast_lite.data.benchmarks import create_dls_silverbox
    return create_dls_silverbox(bs=w['bs'], win_sz=w['win_sz'], stp_sz=w['stp_sz'], sub_seq_len=w['sub_seq_len'],
                                n_batches_train=n_batches)


def run_lite(w:dict, dls, seed:int, bar:bool=True):
    "One epoch of `RNNLearner.fit_flat_cos` with the default callbacks; returns (seconds, final validation loss)"
    from fastai.basics import set_seed
    from tsfast_lite.learner.core import RNNLearner
    set_seed(seed)
    learn = RNNLearner(dls, w['rnn_type'], hidden_size=w['hidden_size'], n_skip=w['n_skip'])
    def fit():
        with contextlib.redirect_stdout(io.StringIO()):
            if bar: learn.fit_flat_cos(1, lr=LR)
            else:
                with learn.no_bar(): learn.fit_flat_cos(1, lr=LR)
        return learn.recorder.values[-1][1]
    return timed(fit, dls.device)


# ----------------------------------------------------------------------------------------------------------- bare
class BareRNN(nn.Module):
    "The model of RNNLearner written out: recurrent layer, linear head, output scaled to physical units"
    def __init__(self, rnn_type, hidden_size, y_mean, y_std):
        super().__init__()
        self.rnn = {'lstm': nn.LSTM, 'gru': nn.GRU}[rnn_type](1, hidden_size, 1, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden_size, 1))
        self.register_buffer('y_mean', torch.tensor(y_mean, dtype=torch.float32).reshape(-1))
        self.register_buffer('y_std', torch.tensor(y_std, dtype=torch.float32).reshape(-1))

    def forward(self, u, state=None):
        out, state = self.rnn(u, state)
        return self.head(out) * self.y_std + self.y_mean, state


def flat_cos(pct, lr, pct_start=0.75, div_final=1e5):
    "fastai's fit_flat_cos schedule: `lr` until `pct_start`, then cosine annealing to lr/div_final"
    if pct < pct_start: return lr
    pos, end = (pct - pct_start) / (1 - pct_start), lr / div_final
    return lr + (1 + math.cos(math.pi * (1 - pos))) * (end - lr) / 2


def detach(state): return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def run_bare(w:dict, dls, seed:int):
    "The same epoch as `run_lite`, as a hand-written loop over the same in-memory windows"
    from fastai.basics import set_seed
    set_seed(seed)
    device = dls.device
    model = BareRNN(w['rnn_type'], w['hidden_size'], dls.norm_y.mean, dls.norm_y.std).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, fused=True)
    tr, va = dls.train.windows, dls.valid.windows
    bs, n_batches, win_sz, n_skip = w['bs'], dls.train.n_batches, w['win_sz'], w['n_skip']
    L = w['sub_seq_len'] or win_sz
    n_sub = win_sz // L
    steps = torch.arange(win_sz, device=device)

    def epoch():
        # the plan: windows drawn in shuffled rounds (the draws WindowDL makes, from the same generator)
        need = n_batches * bs
        idxs = torch.cat([torch.randperm(len(tr)) for _ in range(-(-need // len(tr)))])[:need].to(device)
        total, step, loss_sum = n_batches * n_sub, 0, torch.zeros((), device=device)
        model.train()
        for b in range(n_batches):
            t = tr.starts[idxs[b*bs:(b+1)*bs]][:, None] + steps
            u, y = tr.u[t], tr.y[t]
            state = None
            for i in range(n_sub):
                lr = flat_cos(step / total, LR)
                for g in opt.param_groups: g['lr'] = lr
                pred, state = model(u[:, i*L:(i+1)*L], state)
                skip = n_skip if i == 0 else 0
                loss = F.l1_loss(pred[:, skip:], y[:, i*L+skip:(i+1)*L])
                loss.backward()
                opt.step()
                opt.zero_grad()
                state = detach(state)
                loss_sum += loss.detach()
                step += 1
        # validation: the validation windows in order, state carried across sub-windows, global L1 and RMSE
        model.eval()
        sae, sse, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
        vsteps = torch.arange(va.win_sz, device=device)
        vbs = dls.valid.bs
        with torch.no_grad():
            for b in range(0, len(va), vbs):
                t = va.starts[b:b+vbs][:, None] + vsteps
                u, y = va.u[t], va.y[t]
                state = None
                for i in range(n_sub):
                    pred, state = model(u[:, i*L:(i+1)*L], state)
                    skip = n_skip if i == 0 else 0
                    e = pred[:, skip:] - y[:, i*L+skip:(i+1)*L]
                    sae += e.abs().sum(); sse += (e*e).sum(); n += e.numel()
        return float(sae / n)
    return timed(epoch, device)


# --------------------------------------------------------------------------------------------------------- tsfast
def write_hdf5(folder:Path):
    "The Silverbox train and valid records as HDF5 files (datasets 'u', 'y') for tsfast's create_dls"
    import h5py
    from tsfast_lite.data.benchmarks import silverbox_dataset
    ds = silverbox_dataset()
    files = {}
    for split in ('train', 'valid'):
        (folder/split).mkdir(parents=True, exist_ok=True)
        r = ds[split][0]
        fn = folder/split/f'{split}.hdf5'
        with h5py.File(fn, 'w') as f:
            f['u'] = r.get(['u'])[:, 0].astype(np.float32); f['y'] = r.get(['y'])[:, 0].astype(np.float32)
        files[split] = [str(fn)]
    return files


def tsfast_worker(folder:str, threads:int):
    "Serve timing requests for tsfast 0.5.0 W1 over stdin/stdout (one JSON line each)"
    torch.set_num_threads(threads)
    from functools import partial
    import tsfast
    from tsfast.tsdata import create_dls
    from tsfast.training import RNNLearner
    folder = Path(folder)
    files = {s: [str(p) for p in sorted((folder/s).glob('*.hdf5'))] for s in ('train', 'valid')}
    real_stdout = sys.stdout
    print(json.dumps({'ready': tsfast.__version__}), file=real_stdout, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        w, seed, n_batches = WORKLOADS[req['workload']], req['seed'], req['n_batches']
        torch.manual_seed(seed); np.random.seed(seed)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            dls = create_dls(['u'], ['y'], files, win_sz=w['win_sz'], stp_sz=w['stp_sz'], bs=w['bs'],
                             n_batches_train=n_batches, cache=True)
            opt = partial(torch.optim.AdamW, betas=BETAS, eps=EPS, weight_decay=WD, fused=True)
            learn = RNNLearner(dls, rnn_type=w['rnn_type'], hidden_size=w['hidden_size'], n_skip=w['n_skip'],
                               sub_seq_len=w['sub_seq_len'], opt_func=opt, show_bar=False)
            dev = learn.device
            secs, _ = timed(lambda: learn.fit_flat_cos(1, lr=LR), dev)
        print(json.dumps({'seconds': secs, 'valid_loss': learn.recorder[-1][1], 'device': str(dev)}),
              file=real_stdout, flush=True)


class TsfastClient:
    "A persistent worker process running tsfast 0.5.0 in its own environment"
    def __init__(self, python:str, threads:int):
        self.tmp = tempfile.TemporaryDirectory()
        write_hdf5(Path(self.tmp.name))
        self.p = subprocess.Popen([python, __file__, '--worker', self.tmp.name, '--threads', str(threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        self.version = json.loads(self.p.stdout.readline())['ready']

    def run(self, workload:str, seed:int, n_batches:int):
        self.p.stdin.write(json.dumps(dict(workload=workload, seed=seed, n_batches=n_batches)) + '\n')
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line: raise RuntimeError('the tsfast worker died (see its stderr above)')
        r = json.loads(line)
        return r['seconds'], r['valid_loss']

    def close(self):
        self.p.stdin.close(); self.p.wait(); self.tmp.cleanup()


def tsfast_status(python:str|None) -> str:
    if not python: return "not timed (no --tsfast-python given)"
    r = subprocess.run([python, '-c', 'import tsfast, torch; print(tsfast.__version__, torch.__version__)'],
                       capture_output=True, text=True)
    return f"tsfast {r.stdout.split()[0]} (torch {r.stdout.split()[1]})" if r.returncode == 0 else \
        f"not available in {python}: {r.stderr.strip().splitlines()[-1]}"


# ----------------------------------------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workloads', nargs='+', default=['W1', 'W2'], choices=list(WORKLOADS))
    p.add_argument('--impls', nargs='+', default=['tsfast_lite', 'bare', 'tsfast'],
                   choices=['tsfast_lite', 'tsfast_lite_no_bar', 'bare', 'tsfast'])
    p.add_argument('--repeats', type=int, default=3, help='rounds; each runs every implementation once')
    p.add_argument('--n-batches', type=int, default=300, help='window-batches per epoch')
    p.add_argument('--quick', action='store_true', help='smoke run: 20 window-batches, 2 rounds')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1, see benchmarks/README.md)')
    p.add_argument('--tsfast-python', default=os.environ.get('TSFAST_PYTHON'),
                   help='python of an environment with tsfast 0.5.0 installed (W1 only)')
    p.add_argument('--out', default=None, help='markdown file (default benchmarks/results/speed[_quick].md)')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker: return tsfast_worker(a.worker, a.threads)
    torch.set_num_threads(a.threads)
    if a.quick: a.n_batches, a.repeats = 20, 2
    from fastai.torch_core import default_device
    device = default_device()
    ts = None
    if 'tsfast' in a.impls and a.tsfast_python and 'W1' in a.workloads:
        ts = TsfastClient(a.tsfast_python, a.threads)
    status = tsfast_status(a.tsfast_python) if 'tsfast' in a.impls else 'not requested'
    impls = [i for i in a.impls if i != 'tsfast' or ts is not None]
    res = {}
    for wn in a.workloads:
        w = WORKLOADS[wn]
        dls = make_dls(w, a.n_batches)
        names = [i for i in impls if not (i == 'tsfast' and wn != 'W1')]
        runners = {'tsfast_lite': lambda s: run_lite(w, dls, s), 'tsfast_lite_no_bar': lambda s: run_lite(w, dls, s, False),
                   'bare': lambda s: run_bare(w, dls, s), 'tsfast': lambda s: ts.run(wn, s, a.n_batches)}
        # warm-up (not timed): first-call costs of every implementation, on an epoch of 2 window-batches
        dls.train.n_batches = 2
        for n in names: runners[n](0) if n != 'tsfast' else ts.run(wn, 0, 2)
        dls.train.n_batches = a.n_batches
        times, losses = {n: [] for n in names}, {n: [] for n in names}
        for r in range(a.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                secs, vl = runners[n](r + 1)
                times[n].append(secs); losses[n].append(vl)
                print(f"{wn} round {r}: {n:20s} {secs:8.2f} s  valid loss {vl:.6f}", flush=True)
        res[wn] = dict(times=times, losses=losses, steps=a.n_batches * (w['win_sz'] // (w['sub_seq_len'] or w['win_sz'])))
    if ts is not None: ts.close()
    text = table(res, a, device, status)
    out = Path(a.out or ROOT/'benchmarks'/'results'/('speed_quick.md' if a.quick else 'speed.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def table(res, a, device, status) -> str:
    lines = [f"# Training speed: one epoch incl. validation{' (QUICK smoke run)' if a.quick else ''}", '',
             f"Device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == 'cuda' else
                                    f", {a.threads} torch thread(s), {os.cpu_count()} CPU(s) shared with other jobs")
             + f"; torch {torch.__version__}; {a.n_batches} window-batches per epoch; {a.repeats} rounds, "
             "implementations alternating (order rotated each round). Medians; ratio = median / median of `bare`.",
             f"tsfast: {status}.", '',
             '| workload | implementation | updates | median [s] | min–max [s] | ms / update | ratio vs bare | '
             'valid loss (first round) |', '|---|---|---|---|---|---|---|---|']
    for wn, r in res.items():
        base = np.median(r['times']['bare']) if 'bare' in r['times'] else None
        for n, ts in r['times'].items():
            med = float(np.median(ts))
            ratio = f"{med / base:.3f}" if base else '–'
            lines.append(f"| {wn} | {n} | {r['steps']} | {med:.2f} | {min(ts):.2f}–{max(ts):.2f} | "
                         f"{1000 * med / r['steps']:.2f} | {ratio} | {r['losses'][n][0]:.6f} |")
    lines += ['', "Workloads: " + '; '.join(f"{k}: {v}" for k, v in WORKLOADS.items()),
              '', "`tsfast_lite` and `bare` start from the same seed, so their validation losses agree; tsfast 0.5.0 "
              "uses its own initialisation, data pipeline and schedule (stepped per window-batch), given the same "
              "optimizer (fused AdamW, betas (0.9, 0.99), eps 1e-5, wd 0.01)."]
    return '\n'.join(lines) + '\n'


if __name__ == '__main__': main()
