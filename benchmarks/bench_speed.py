"""Time one training epoch (incl. validation) through RNNLearner against the same mathematics as a bare PyTorch loop.

Workloads (Silverbox, data in memory):

- W1: LSTM 40 hidden, bs 16, win_sz 500, stp_sz 10, TBPTT sub_seq_len 100, 300 window-batches -> 1,500 optimizer steps
- W2: GRU 100 hidden, bs 64, win_sz 200, stp_sz 1, 300 window-batches, n_skip 50, full BPTT -> 300 optimizer steps

Implementations, timed alternately in one run (`--repeats` rounds, each round runs every implementation once, in a
rotated order), medians (wall time and this process's CPU time) and ratios printed as a markdown table:

- `tsfast_lite`: `RNNLearner(...).fit_flat_cos(1, lr=3e-3)` with the default callbacks (progress bar included; its
  console output is discarded);
- `bare`: a hand-written loop: same model sizes and initialisation, same windows from the same random plan (sub-windows
  made contiguous, as the loader does), torch
  AdamW (fused, betas (0.9, 0.99), eps 1e-5, weight decay 0.01), the flat-cos learning rate set before every step, one
  step per sub-window with the detached state carried, the same validation windows (global L1 loss and RMSE);
- `tsfast`: the published tsfast 0.5.0 (`--tsfast-python`, a venv where it is installed), W1 only, in a worker process;
- `tsfast_lite@DIR` (`--compare-with DIR`): another checkout of the package, e.g. before a change, in a worker process.

The final validation loss of `tsfast_lite` and `bare` is printed beside the times: from the same seed they do the
same mathematics, so the two must agree (to float rounding).

    python benchmarks/bench_speed.py                 # W1 and W2, 5 rounds
    python benchmarks/bench_speed.py --quick         # 20 window-batches, 2 rounds: a smoke run
    python benchmarks/bench_speed.py --tsfast-python /tmp/venv-tsfast/bin/python --compare-with /tmp/before

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
    "Run `f()`; return (wall seconds, process CPU seconds, result), synchronising the device around it"
    sync(device); t0, c0 = time.perf_counter(), time.process_time()
    res = f()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0, res


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
    # head_gain=1: a plain linear output layer, as in the bare loop's BareRNN (the same mathematics)
    learn = RNNLearner(dls, w['rnn_type'], hidden_size=w['hidden_size'], n_skip=w['n_skip'], head_gain=1.)
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
                pred, state = model(u[:, i*L:(i+1)*L].contiguous(), state)
                skip = n_skip if i == 0 else 0
                loss = F.l1_loss(pred[:, skip:], y[:, i*L+skip:(i+1)*L].contiguous())
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
                    pred, state = model(u[:, i*L:(i+1)*L].contiguous(), state)
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


def serve(kind:str, arg:str, threads:int):
    "Worker process: answer timing requests from stdin with one JSON line each on stdout"
    torch.set_num_threads(threads)
    real_stdout = sys.stdout
    if kind == 'tsfast':
        import tsfast
        version, run = f"tsfast {tsfast.__version__}", tsfast_runner(Path(arg))
    else:  # another checkout of tsfast_lite (`--compare-with`): its package folder goes first on the path
        sys.path.insert(0, arg)
        import tsfast_lite
        version, cache = f"tsfast_lite from {tsfast_lite.__file__}", {}
        def run(wn, seed, n_batches):
            if wn not in cache: cache[wn] = make_dls(WORKLOADS[wn], n_batches)
            cache[wn].train.n_batches = n_batches
            return run_lite(WORKLOADS[wn], cache[wn], seed)
    print(json.dumps({'ready': version}), file=real_stdout, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            wall, cpu, vl = run(req['workload'], req['seed'], req['n_batches'])
        print(json.dumps({'wall': wall, 'cpu': cpu, 'valid_loss': float(vl)}), file=real_stdout, flush=True)


def tsfast_runner(folder:Path):
    "A function timing one epoch of tsfast 0.5.0 (TbpttLearner for W1) on the HDF5 files in `folder`"
    from functools import partial
    from tsfast.tsdata import create_dls
    from tsfast.training import RNNLearner
    files = {s: [str(p) for p in sorted((folder/s).glob('*.hdf5'))] for s in ('train', 'valid')}
    def run(wn, seed, n_batches):
        w = WORKLOADS[wn]
        torch.manual_seed(seed); np.random.seed(seed)
        dls = create_dls(['u'], ['y'], files, win_sz=w['win_sz'], stp_sz=w['stp_sz'], bs=w['bs'],
                         n_batches_train=n_batches, cache=True)
        opt = partial(torch.optim.AdamW, betas=BETAS, eps=EPS, weight_decay=WD, fused=True)
        learn = RNNLearner(dls, rnn_type=w['rnn_type'], hidden_size=w['hidden_size'], n_skip=w['n_skip'],
                           sub_seq_len=w['sub_seq_len'], opt_func=opt, show_bar=False)
        wall, cpu, _ = timed(lambda: learn.fit_flat_cos(1, lr=LR), learn.device)
        return wall, cpu, learn.recorder[-1][1]
    return run


class Worker:
    "A persistent worker process (`serve`) for an implementation that cannot share this process"
    def __init__(self, kind:str, python:str, threads:int, arg:str|None=None):
        self.tmp = None
        if kind == 'tsfast':
            self.tmp = tempfile.TemporaryDirectory(); arg = self.tmp.name
            write_hdf5(Path(arg))
        self.p = subprocess.Popen([python, __file__, '--worker', kind, arg, '--threads', str(threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        line = self.p.stdout.readline()
        if not line: raise RuntimeError(f'the {kind} worker did not start (see its error above)')
        self.version = json.loads(line)['ready']

    def run(self, workload:str, seed:int, n_batches:int):
        self.p.stdin.write(json.dumps(dict(workload=workload, seed=seed, n_batches=n_batches)) + '\n')
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line: raise RuntimeError('a worker died (see its error above)')
        r = json.loads(line)
        return r['wall'], r['cpu'], r['valid_loss']

    def close(self):
        self.p.stdin.close(); self.p.wait()
        if self.tmp is not None: self.tmp.cleanup()


# ----------------------------------------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workloads', nargs='+', default=['W1', 'W2'], choices=list(WORKLOADS))
    p.add_argument('--impls', nargs='+', default=['tsfast_lite', 'bare', 'tsfast'],
                   choices=['tsfast_lite', 'tsfast_lite_no_bar', 'bare', 'tsfast'])
    p.add_argument('--repeats', type=int, default=5, help='rounds; each runs every implementation once')
    p.add_argument('--repeats-w2', type=int, default=None, help='rounds for W2 (default --repeats)')
    p.add_argument('--n-batches', type=int, default=300, help='window-batches per epoch')
    p.add_argument('--quick', action='store_true', help='smoke run: 20 window-batches, 2 rounds')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1, see benchmarks/README.md)')
    p.add_argument('--tsfast-python', default=os.environ.get('TSFAST_PYTHON'),
                   help='python of an environment with tsfast 0.5.0 installed (W1 only)')
    p.add_argument('--compare-with', default=None, metavar='DIR',
                   help='a folder holding another tsfast_lite package (e.g. an older commit), timed side by side '
                        'as `tsfast_lite@DIR` in a worker process')
    p.add_argument('--out', default=None, help='markdown file (default benchmarks/results/speed[_quick].md)')
    p.add_argument('--worker', nargs=2, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker: return serve(*a.worker, a.threads)
    torch.set_num_threads(a.threads)
    if a.quick: a.n_batches, a.repeats, a.repeats_w2 = 20, 2, 2
    from fastai.torch_core import default_device
    device = default_device()
    workers, notes = {}, []
    if 'tsfast' in a.impls:
        if not a.tsfast_python: notes.append("tsfast 0.5.0: not timed (no --tsfast-python given)")
        elif 'W1' in a.workloads:
            try:
                workers['tsfast'] = Worker('tsfast', a.tsfast_python, a.threads)
                notes.append(f"{workers['tsfast'].version} in {a.tsfast_python}")
            except Exception as e: notes.append(f"tsfast 0.5.0: not timed ({e})")
    if a.compare_with:
        name = f"tsfast_lite@{a.compare_with}"
        workers[name] = Worker('lite', sys.executable, a.threads, str(Path(a.compare_with).resolve()))
        notes.append(f"`{name}`: {workers[name].version}")
    res = {}
    for wn in a.workloads:
        w = WORKLOADS[wn]
        dls = make_dls(w, a.n_batches)
        runners = {'tsfast_lite': lambda s, n: run_lite(w, dls, s), 'bare': lambda s, n: run_bare(w, dls, s),
                   'tsfast_lite_no_bar': lambda s, n: run_lite(w, dls, s, bar=False)}
        for k, wk in workers.items():
            if k != 'tsfast' or wn == 'W1': runners[k] = (lambda wk: lambda s, n: wk.run(wn, s, n))(wk)
        names = [i for i in a.impls if i in runners] + [k for k in workers if k != 'tsfast' and k in runners]
        # warm-up (not timed): first-call costs of every implementation, on an epoch of 2 window-batches
        dls.train.n_batches = 2
        for n in names: runners[n](0, 2)
        dls.train.n_batches = a.n_batches
        times = {n: [] for n in names}
        reps = a.repeats_w2 if wn == 'W2' and a.repeats_w2 else a.repeats
        for r in range(reps):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                wall, cpu, vl = runners[n](r + 1, a.n_batches)
                times[n].append((wall, cpu, vl))
                print(f"{wn} round {r}: {n:28s} wall {wall:8.2f} s  cpu {cpu:8.2f} s  valid loss {vl:.6f}", flush=True)
        res[wn] = dict(times=times, steps=a.n_batches * (w['win_sz'] // (w['sub_seq_len'] or w['win_sz'])), reps=reps)
    for wk in workers.values(): wk.close()
    text = table(res, a, device, notes)
    out = Path(a.out or ROOT/'benchmarks'/'results'/('speed_quick.md' if a.quick else 'speed.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def table(res, a, device, notes) -> str:
    dev = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == 'cuda' else \
          f"cpu, {a.threads} torch thread(s), {os.cpu_count()} CPU(s) shared with other jobs"
    lines = [f"# Training speed: one epoch incl. validation{' (QUICK smoke run)' if a.quick else ''}", '',
             f"Device: {dev}; torch {torch.__version__}; python {platform.python_version()}; {a.n_batches} "
             "window-batches per epoch. Implementations alternate within each round (order rotated every round); "
             "medians over rounds. `wall`: elapsed time; `cpu`: this process's CPU time (less sensitive to other "
             "jobs on a shared machine). Ratios: median / median of `bare`.", '']
    lines += [f"- {n}" for n in notes] + ([''] if notes else [])
    lines += ['| workload | implementation | updates | rounds | wall median [s] | wall min–max [s] | cpu median [s] | '
              'ms / update (cpu) | ratio wall | ratio cpu | valid loss (round 1) |', '|---' * 11 + '|']
    for wn, r in res.items():
        med = {n: (float(np.median([t[0] for t in ts])), float(np.median([t[1] for t in ts]))) for n, ts in r['times'].items()}
        base = med.get('bare')
        for n, ts in r['times'].items():
            wl = [t[0] for t in ts]
            rw = f"{med[n][0] / base[0]:.3f}" if base else '–'
            rc = f"{med[n][1] / base[1]:.3f}" if base else '–'
            lines.append(f"| {wn} | {n} | {r['steps']} | {r['reps']} | {med[n][0]:.2f} | {min(wl):.2f}–{max(wl):.2f} | "
                         f"{med[n][1]:.2f} | {1000 * med[n][1] / r['steps']:.2f} | {rw} | {rc} | {ts[0][2]:.6f} |")
    lines += ['', "Workloads (Silverbox, fit_flat_cos(1, lr=3e-3)): " + '; '.join(f"{k}: {v}" for k, v in WORKLOADS.items()),
              '', "`tsfast_lite` and `bare` start from the same seed and draw the same windows, so their validation "
              "losses agree (to float rounding): the loop is the same mathematics. tsfast 0.5.0 has its own "
              "initialisation, data pipeline (HDF5 files cached in memory) and schedule (stepped per window-batch), "
              "and checks `isnan(loss)` and calls `loss.item()` per update; it is given the same optimizer (fused "
              "AdamW, betas (0.9, 0.99), eps 1e-5, wd 0.01)."]
    return '\n'.join(lines) + '\n'


if __name__ == '__main__': main()
