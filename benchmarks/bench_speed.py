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
- `tsfast_lite@NAME` (`--compare-with DIR`, NAME its folder name): another checkout of the package, e.g. before a change
  (a folder named after its commit), in a worker process.

The final validation loss of `tsfast_lite` and `bare` is printed beside the times: from the same seed they do the
same mathematics, so the two must agree (to float rounding).

    python benchmarks/bench_speed.py                 # W1 and W2, 5 rounds
    python benchmarks/bench_speed.py --quick         # 20 window-batches, 2 rounds: a smoke run
    python benchmarks/bench_speed.py --tsfast-python /tmp/venv-tsfast/bin/python --compare-with /tmp/before

`--families [FAMILY ...]`: instead of W1/W2, every model family (rnn, tcn, lru, linear_ss, linear_ss_gru; default
all) at its default size on the W1 setting (bs 16, win_sz 500, stp_sz 10, sub_seq_len 100). Each family is built once
by its learner constructor (RNNLearner, TCNLearner, LRULearner, LinearSSLearner: the library's initialisation, e.g. the
BLA fit, outside the timing); `tsfast_lite` trains a copy with `seq_learner(dls, model, n_skip=...).fit_flat_cos(1,
lr=3e-3)`, `bare` trains another copy (same weights, same seed and windows) with `bare_epoch`, a loop written over the
contract `model(u, state) -> (y, state)` alone. Every `--family-threads` setting ('default': torch's default, '1': one
thread pinned with `taskset -c --pin`) runs in a fresh process; the table (medians, ratios, both validation losses)
goes to benchmarks/results/speed_families.md.

    python benchmarks/bench_speed.py --families --n-batches 60 --n-batches-threaded 10   # ~45 min on 2 busy cores
    python benchmarks/bench_speed.py --families --quick   # 1 window-batch, 2 rounds, 1 thread: < 1 min

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
    """Silverbox DataLoaders (from TSFAST_LITE_DATA or the download cache); where the files cannot be had, the simulated
    Silverbox-like Duffing oscillator (`create_dls_duffing`), with a warning"""
    from tsfast_lite.data.benchmarks import create_dls_silverbox, create_dls_duffing
    kw = dict(bs=w['bs'], win_sz=w['win_sz'], stp_sz=w['stp_sz'], sub_seq_len=w['sub_seq_len'], n_batches_train=n_batches)
    try: return create_dls_silverbox(**kw)
    except Exception as e:
        print(f"Silverbox data not available ({type(e).__name__}: {e}); using the simulated Duffing oscillator",
              file=sys.stderr, flush=True)
        return create_dls_duffing(**kw)


def dls_source(dls) -> str:
    name = getattr(dls, 'benchmark', '?')
    return {'silverbox': 'Silverbox (measured data)',
            'duffing': 'simulated Duffing oscillator (Silverbox-like; the Silverbox files were not found)'}.get(name, name)


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


def detach(state):
    "`state` (a tensor or a nested tuple/list of tensors) cut from the graph"
    if isinstance(state, torch.Tensor): return state.detach()
    return type(state)(detach(s) for s in state)


class BareSim(nn.Module):
    "Any model of the contract `model(u, state) -> (y, state)` on normalised data, its output in physical units"
    def __init__(self, model, y_mean, y_std):
        super().__init__()
        self.model = model
        self.register_buffer('y_mean', torch.tensor(y_mean, dtype=torch.float32).reshape(-1))
        self.register_buffer('y_std', torch.tensor(y_std, dtype=torch.float32).reshape(-1))

    def forward(self, u, state=None):
        y, state = self.model(u, state)
        return y * self.y_std + self.y_mean, state


def bare_epoch(model:nn.Module, dls, n_skip:int):
    """One epoch of fit_flat_cos(1, lr=LR) of `model` (`model(u, state) -> (y physical, state)`) as a hand-written
    loop over the loaders' in-memory windows; returns the final validation loss. Works for any model of the contract."""
    device = dls.device
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD, fused=True)
    tr, va = dls.train.windows, dls.valid.windows
    bs, n_batches, win_sz = dls.train.bs, dls.train.n_batches, tr.win_sz
    L = dls.train.sub_seq_len or win_sz
    n_sub = win_sz // L
    steps = torch.arange(win_sz, device=device)
    # the plan: windows drawn in shuffled rounds (the draws WindowDL makes, from the same generator)
    need = n_batches * bs
    idxs = torch.cat([torch.randperm(len(tr)) for _ in range(-(-need // len(tr)))])[:need].to(device)
    total, step = n_batches * n_sub, 0
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
            step += 1
    # validation: the validation windows in order, state carried across sub-windows, global L1 and RMSE
    model.eval()
    sae, sse, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    vL = dls.valid.sub_seq_len or va.win_sz
    vsteps = torch.arange(va.win_sz, device=device)
    vbs = dls.valid.bs
    with torch.no_grad():
        for b in range(0, len(va), vbs):
            t = va.starts[b:b+vbs][:, None] + vsteps
            u, y = va.u[t], va.y[t]
            state = None
            for i in range(va.win_sz // vL):
                pred, state = model(u[:, i*vL:(i+1)*vL].contiguous(), state)
                skip = n_skip if i == 0 else 0
                e = pred[:, skip:] - y[:, i*vL+skip:(i+1)*vL]
                sae += e.abs().sum(); sse += (e*e).sum(); n += e.numel()
    return float(sae / n)


def run_bare(w:dict, dls, seed:int):
    "The same epoch as `run_lite`, as a hand-written loop over the same in-memory windows"
    from fastai.basics import set_seed
    set_seed(seed)
    model = BareRNN(w['rnn_type'], w['hidden_size'], dls.norm_y.mean, dls.norm_y.std).to(dls.device)
    return timed(lambda: bare_epoch(model, dls, w['n_skip']), dls.device)


# ------------------------------------------------------------------------------------------------------- families
FAMILY_NAMES = ['rnn', 'tcn', 'lru', 'linear_ss', 'linear_ss_gru']


def build_family(name:str, dls):
    """(model, n_skip, description): the family at its default size, built once by its own learner constructor (so
    the initialisation, e.g. LinearSS's BLA fit, is the library's); the timed runs train copies of it"""
    if name == 'rnn':
        from tsfast_lite.learner.core import RNNLearner
        learn, n_skip = RNNLearner(dls), 0
    elif name == 'tcn':
        from tsfast_lite.learner.families import TCNLearner
        learn = TCNLearner(dls)  # its default n_skip = receptive_field - 1; passed explicitly to both sides below
        n_skip = learn.model.model.receptive_field - 1
    elif name == 'lru':
        from tsfast_lite.learner.families import LRULearner
        learn, n_skip = LRULearner(dls), 0
    elif name == 'linear_ss':
        from tsfast_lite.learner.families import LinearSSLearner
        learn, n_skip = LinearSSLearner(dls, n_skip=0), 0
    elif name == 'linear_ss_gru':  # the GRU residual (LinearSSLearner's default residual is the MLP)
        from tsfast_lite.learner.families import LinearSSLearner
        learn, n_skip = LinearSSLearner(dls, residual='gru', n_skip=0), 0
    else: raise ValueError(f"family={name!r} is not supported; valid values are {FAMILY_NAMES}")
    m = learn.model.model.cpu()
    kw = {k: getattr(m, k) for k in ('rnn_type', 'nx', 'residual', 'hidden_size', 'num_layers', 'kernel_size',
                                     'state_size') if isinstance(getattr(m, k, None), (int, str))}
    desc = f"{type(m).__name__}({', '.join(f'{k}={v}' for k, v in kw.items())}), " \
           f"{sum(p.numel() for p in m.parameters()):,} parameters, n_skip {n_skip}"
    return m, n_skip, desc


def run_family_lite(base:nn.Module, n_skip:int, dls, seed:int):
    "One epoch of `seq_learner(dls, copy of base).fit_flat_cos(1, lr=LR)`, default callbacks and progress bar"
    import copy
    from fastai.basics import set_seed
    from tsfast_lite.learner.core import seq_learner
    learn = seq_learner(dls, copy.deepcopy(base), n_skip=n_skip)
    def fit():
        with contextlib.redirect_stdout(io.StringIO()): learn.fit_flat_cos(1, lr=LR)
        return learn.recorder.values[-1][1]
    set_seed(seed)
    return timed(fit, dls.device)


def run_family_bare(base:nn.Module, n_skip:int, dls, seed:int):
    "The same epoch as `run_family_lite`: a copy of `base` (same weights) trained by `bare_epoch`"
    import copy
    from fastai.basics import set_seed
    model = BareSim(copy.deepcopy(base), dls.norm_y.mean, dls.norm_y.std).to(dls.device)
    set_seed(seed)
    return timed(lambda: bare_epoch(model, dls, n_skip), dls.device)


def family_child(a):
    "Time the families in this process at one thread setting; write the results as JSON to `a.json_out`"
    if a.threads_setting != 'default': torch.set_num_threads(int(a.threads_setting))
    dls = make_dls(WORKLOADS['W1'], a.n_batches)
    res = dict(threads=torch.get_num_threads(), setting=a.threads_setting, data=dls_source(dls), n_batches=a.n_batches,
               affinity=sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None, families={})
    impls = {'tsfast_lite': run_family_lite, 'bare': run_family_bare}
    for fam in a.family_list:
        try: base, n_skip, desc = build_family(fam, dls)
        except Exception as e:  # a family not (yet) importable or buildable: reported in the table
            print(f"{fam}: not timed ({e})", flush=True); res['families'][fam] = dict(error=str(e)); continue
        # warm-up (not timed): first-call costs of both implementations, on an epoch of 1 window-batch
        dls.train.n_batches = 1
        for f in impls.values(): f(base, n_skip, dls, 0)
        dls.train.n_batches = a.n_batches
        times = {n: [] for n in impls}
        for r in range(a.repeats):
            for n in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
                wall, cpu, vl = impls[n](base, n_skip, dls, r + 1)
                times[n].append((wall, cpu, float(vl)))
                print(f"[threads {res['threads']}] {fam} round {r}: {n:12s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                      f"valid loss {vl:.7f}", flush=True)
        res['families'][fam] = dict(desc=desc, n_skip=n_skip, times=times,
                                    updates=a.n_batches * (dls.train.win_sz // dls.train.sub_seq_len))
    Path(a.json_out).write_text(json.dumps(res))


def _load_avg() -> str:
    try: return ' '.join(f"{v:.1f}" for v in os.getloadavg())
    except OSError: return '?'


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or '?'


def run_families(a, argv):
    "Run `family_child` for each thread setting in a fresh process (1 thread pinned with taskset); write the table"
    import shutil
    settings = a.family_threads
    results, load = [], [_load_avg()]
    for st in settings:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)/'res.json'
            nb = a.n_batches if st == '1' else a.n_batches_threaded
            cmd = [sys.executable, __file__, '--families-child', st, '--json-out', str(out), '--n-batches',
                   str(nb), '--repeats', str(a.repeats), '--families', *a.family_list]
            env = dict(os.environ)
            pin = None
            if st == 'default':
                for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): env.pop(k, None)
            elif st == '1' and a.pin != 'none' and shutil.which('taskset'):
                pin = a.pin; cmd = ['taskset', '-c', pin] + cmd
            print('$ ' + ' '.join(cmd), flush=True)
            subprocess.run(cmd, env=env, cwd=str(ROOT), check=True)
            r = json.loads(out.read_text()); r['pin'] = pin
            results.append(r)
    load.append(_load_avg())
    text = families_table(results, a, argv, load)
    out = Path(a.out or ROOT/'benchmarks'/'results'/('speed_families_quick.md' if a.quick else 'speed_families.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def families_table(results, a, argv, load) -> str:
    import datetime
    from fastai.torch_core import default_device
    device = default_device()
    dev = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == 'cuda' else 'cpu'
    r0 = results[0]
    lines = [f"# Training speed of every model family: tsfast_lite against a bare PyTorch loop"
             f"{' (QUICK smoke run)' if a.quick else ''}", '',
             f"Command: `python benchmarks/bench_speed.py {' '.join(argv)}`" +
             (f" (TSFAST_LITE_DATA={os.environ['TSFAST_LITE_DATA']})" if os.environ.get('TSFAST_LITE_DATA') else ''), '',
             f"Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Machine: {os.cpu_count()} CPU(s) ({_cpu_model()}), "
             f"device {dev}, torch {torch.__version__}, python {platform.python_version()}. **Other jobs were running on "
             f"the same CPUs** (load average {load[0]} at the start, {load[1]} at the end), so absolute times are noisy; "
             "the ratios of the alternating runs are what counts.", '',
             f"Setting (W1): {r0['data']}, bs 16, win_sz 500, stp_sz 10, TBPTT sub_seq_len 100, one epoch of `fit_flat_cos(1, lr=3e-3)` incl. validation. Each family at its "
             "default size, built once by its learner constructor (its initialisation included, e.g. LinearSS's BLA "
             "fit, outside the timing); both sides train copies of that model (same initial weights) from the same seed "
             "(same windows):", '',
             "- `tsfast_lite`: `seq_learner(dls, model, n_skip=...).fit_flat_cos(1, lr=3e-3)`, default callbacks and "
             "progress bar (console output discarded);",
             "- `bare`: a hand-written loop over the contract `model(u, state) -> (y, state)` (output scaled to physical "
             "units, fused AdamW betas (0.9, 0.99) eps 1e-5 wd 0.01, the flat-cos learning rate set before every "
             "update, L1 loss, the state detached and carried between sub-windows, the same validation windows).", '',
             f"{a.repeats} rounds per setting; the two implementations alternate (order swapped every round). Medians "
             "over rounds of wall time and of the process's CPU time; `ratio` = median tsfast_lite / median bare; "
             "`paired` = median over rounds of the per-round CPU-time ratio; `extra ms / update`: the difference of the CPU "
             "medians per update (framework cost per update, the fit's fixed costs included). `valid loss`: round 1's final validation "
             "loss (L1, V) of each side; `max rel. diff`: the largest relative difference of the two sides' losses "
             "over all rounds (same seed within a round). Target: ratio <= 1.05.", '']
    for r in results:
        pin = f", pinned to CPU {r['pin']} (taskset)" if r.get('pin') else ''
        lines.append(f"- threads `{r['setting']}`: torch.get_num_threads() = {r['threads']}{pin}; CPU affinity "
                     f"{r['affinity']}; {r['n_batches']} window-batches per epoch")
    lines += ['', '| threads | family | updates | bare wall [s] | lite wall [s] | ratio wall | bare cpu [s] | lite cpu [s] | '
              'ratio cpu | paired cpu | cpu min–max bare; lite [s] | ms / update (bare cpu) | extra ms / update (lite - bare cpu) | '
              'valid loss bare | valid loss lite | max rel. diff |', '|---' * 16 + '|']
    descs, noisy = {}, []
    for r in results:
        for fam, f in r['families'].items():
            if 'error' in f:
                lines.append(f"| {r['threads']} | {fam} | not timed: {f['error']} |" + ' |' * 13); continue
            descs[fam] = f['desc']
            t = f['times']
            med = {n: (float(np.median([x[0] for x in t[n]])), float(np.median([x[1] for x in t[n]]))) for n in t}
            rng = lambda n: f"{min(x[1] for x in t[n]):.2f}–{max(x[1] for x in t[n]):.2f}"
            if max(max(x[1] for x in t[n]) / min(x[1] for x in t[n]) for n in t) > 1.5:
                noisy.append(f"{fam} at {r['threads']} thread(s)")
            paired = float(np.median([l[1] / b[1] for l, b in zip(t['tsfast_lite'], t['bare'])]))
            diff = max(abs(l[2] - b[2]) / abs(b[2]) for l, b in zip(t['tsfast_lite'], t['bare']))
            lines.append(f"| {r['threads']} | {fam} | {f['updates']} | {med['bare'][0]:.2f} | {med['tsfast_lite'][0]:.2f} | "
                         f"{med['tsfast_lite'][0] / med['bare'][0]:.3f} | {med['bare'][1]:.2f} | {med['tsfast_lite'][1]:.2f} | "
                         f"{med['tsfast_lite'][1] / med['bare'][1]:.3f} | {paired:.3f} | {rng('bare')}; {rng('tsfast_lite')} | "
                         f"{1000 * med['bare'][1] / f['updates']:.2f} | "
                         f"{1000 * (med['tsfast_lite'][1] - med['bare'][1]) / f['updates']:.2f} | {t['bare'][0][2]:.7f} | "
                         f"{t['tsfast_lite'][0][2]:.7f} | {diff:.1e} |")
    if noisy:
        lines += ['', f"Noisy rows ({', '.join(noisy)}): the CPU time of one implementation varied by more than 1.5x "
                  "between rounds (min–max column). The other jobs' load, worst with several OpenMP threads on busy "
                  "cores (benchmarks/README.md, Threads), dominates there: those ratios measure that noise more than "
                  "the implementations."]
    lines += ['', 'Models:', ''] + [f"- {k}: {v}" for k, v in descs.items()]
    return '\n'.join(lines) + '\n'


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


def set_threads(threads:str):
    "Apply a thread setting: 'default' leaves torch's default (one per core), a number sets it"
    if str(threads) != 'default': torch.set_num_threads(int(threads))


def serve(kind:str, arg:str, threads:str):
    "Worker process: answer timing requests from stdin with one JSON line each on stdout"
    set_threads(threads)
    real_stdout = sys.stdout
    if kind == 'tsfast':
        import tsfast
        version, run = f"tsfast {tsfast.__version__}", tsfast_runner(Path(arg))
    else:  # another checkout of tsfast_lite (`--compare-with`): its package folder goes first on the path
        sys.path.insert(0, arg)
        import tsfast_lite
        version, cache = f"tsfast_lite from the folder {Path(tsfast_lite.__file__).parents[1].name}", {}
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
    def __init__(self, kind:str, python:str, threads:str, arg:str|None=None):
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
    p.add_argument('--threads', default='1', help="torch CPU threads: a number, or 'default' (torch's default, one "
                                                   "per core, as users run); default 1, see benchmarks/README.md")
    p.add_argument('--busy', type=int, default=0, help='competing busy processes (pure-Python loops, as other work on '
                                                       'a laptop) running through the timed rounds')
    p.add_argument('--matrix', action='store_true',
                   help='run the benchmark at every --matrix-threads x --matrix-busy setting, each in a fresh process; '
                        'one table (benchmarks/results/speed_threads.md)')
    p.add_argument('--matrix-threads', nargs='+', default=['default', '1'])
    p.add_argument('--matrix-busy', nargs='+', type=int, default=[0, 1])
    p.add_argument('--tsfast-python', default=os.environ.get('TSFAST_PYTHON'),
                   help='python of an environment with tsfast 0.5.0 installed (W1 only)')
    p.add_argument('--compare-with', default=None, metavar='DIR',
                   help='a folder holding another tsfast_lite package (e.g. an older commit), timed side by side '
                        'as `tsfast_lite@DIR` in a worker process')
    p.add_argument('--out', default=None, help='markdown file (default benchmarks/results/speed[_quick].md)')
    p.add_argument('--families', nargs='*', default=None, choices=FAMILY_NAMES, metavar='FAMILY',
                   help=f'instead of W1/W2: time every model family ({", ".join(FAMILY_NAMES)}; default all) at its '
                        'default size on the W1 setting, seq_learner against a bare loop, at each --family-threads '
                        'setting (writes benchmarks/results/speed_families[_quick].md)')
    p.add_argument('--family-threads', nargs='+', default=['default', '1'],
                   help="thread settings for --families, each in a fresh process: 'default' (torch's default) or a "
                        "number; '1' runs pinned to the CPU --pin")
    p.add_argument('--n-batches-threaded', type=int, default=None,
                   help='window-batches per epoch for the --families settings with more than one thread (default '
                        '--n-batches): on a busy machine a multi-threaded epoch can be many times slower')
    p.add_argument('--pin', default='1', help="CPU (taskset -c) of the 1-thread --families runs; 'none': not pinned")
    p.add_argument('--worker', nargs=2, default=None, help=argparse.SUPPRESS)
    p.add_argument('--families-child', dest='threads_setting', default=None, help=argparse.SUPPRESS)
    p.add_argument('--json-out', default=None, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    if a.threads != 'default' and not (a.threads.isdigit() and int(a.threads) > 0):
        p.error(f"--threads {a.threads!r}: give a positive number or 'default'")
    if a.worker: return serve(*a.worker, a.threads)
    if a.matrix: return run_matrix(a, argv)
    if a.families is not None or a.threads_setting is not None:
        a.family_list = a.families or FAMILY_NAMES
        if a.n_batches_threaded is None: a.n_batches_threaded = a.n_batches
        if a.quick:  # a smoke run of under a minute: 1 thread only, unless --family-threads is given
            a.n_batches = a.n_batches_threaded = 1; a.repeats = 2
            if '--family-threads' not in argv: a.family_threads = ['1']
        if a.threads_setting is not None: return family_child(a)
        return run_families(a, argv)
    set_threads(a.threads)
    if a.quick: a.n_batches, a.repeats, a.repeats_w2 = 20, 2, 2
    from fastai.torch_core import default_device
    device = default_device()
    workers, notes = {}, []
    if 'tsfast' in a.impls:
        if not a.tsfast_python: notes.append("tsfast 0.5.0: not timed (no --tsfast-python given)")
        elif 'W1' in a.workloads:
            try:
                workers['tsfast'] = Worker('tsfast', a.tsfast_python, a.threads)
                notes.append(f"{workers['tsfast'].version} in its own environment (--tsfast-python)")
            except Exception as e: notes.append(f"tsfast 0.5.0: not timed ({e})")
    if a.compare_with:
        name = f"tsfast_lite@{Path(a.compare_with).name}"  # the folder name (e.g. a commit), no local path
        workers[name] = Worker('lite', sys.executable, a.threads, str(Path(a.compare_with).resolve()))
        notes.append(f"`{name}`: {workers[name].version}")
    busy = start_busy(a.busy)
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
    for b in busy: b.kill()
    if a.json_out: Path(a.json_out).write_text(json.dumps(dict(res=res, threads=a.threads, torch_threads=torch.get_num_threads(),
                                                             busy=a.busy, notes=notes)))
    text = table(res, a, device, notes)
    out = Path(a.out or ROOT/'benchmarks'/'results'/('speed_quick.md' if a.quick else 'speed.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def start_busy(n:int) -> list:
    "Start `n` processes that keep one core each busy (a pure-Python loop, like other work on a user's machine)"
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(n)]


def run_matrix(a, argv):
    "Run this script at every thread x busy setting, each in a fresh process; write one table of medians and ratios"
    skip = {'--matrix'}
    base, i = [], 0
    while i < len(argv):  # the other arguments go through; the matrix's own and --threads/--busy/--out/--json-out do not
        x = argv[i]
        if x in skip: i += 1; continue
        if x in ('--threads', '--busy', '--out', '--json-out'): i += 2; continue
        if x in ('--matrix-threads', '--matrix-busy'):
            i += 1
            while i < len(argv) and not argv[i].startswith('--'): i += 1
            continue
        base.append(x); i += 1
    rows, t0 = [], time.time()
    with tempfile.TemporaryDirectory() as d:
        for busy in a.matrix_busy:
            for th in a.matrix_threads:
                js = Path(d)/f'{th}_{busy}.json'
                cmd = [sys.executable, __file__, *base, '--threads', th, '--busy', str(busy), '--json-out', str(js),
                       '--out', str(Path(d)/'t.md')]
                print(f"=== threads {th}, busy {busy}: {' '.join(cmd[1:])}", flush=True)
                subprocess.run(cmd, check=True)
                rows.append(json.loads(js.read_text()))
    lines = [f"# Training speed by thread setting and competing load{' (QUICK smoke run)' if a.quick else ''}", '',
             f"One epoch incl. validation, {os.cpu_count()} CPU(s), torch {torch.__version__}, python "
             f"{platform.python_version()}, {round(time.time() - t0)} s for the whole run. Every setting runs in a fresh "
             "process; inside it the implementations alternate within each round (order rotated). `threads`: the "
             "process's torch setting before training (`default`: torch's default, one per core, as users run). "
             "`busy`: competing processes each keeping a core busy with a pure-Python loop. Medians over rounds. "
             "`paired wall`: the median over rounds of the within-round ratio of wall times (the implementations of a "
             "round ran side by side, so load that comes and goes cancels), to `bare` (a hand-written loop, same "
             "mathematics) and to `tsfast` (0.5.0) in the same setting; `cpu`: the ratio of the CPU-time medians.", '']
    notes = sorted({n for r in rows for n in r['notes']})
    lines += [f"- {n}" for n in notes] + ([''] if notes else [])
    lines += ['| workload | threads | busy | implementation | updates | rounds | wall median [s] | wall min–max [s] | '
              'cpu median [s] | paired wall / bare | cpu / bare | paired wall / tsfast | cpu / tsfast |',
              '|---' * 13 + '|']
    for r in rows:
        for wn, w in r['res'].items():
            med = {n: (float(np.median([t[0] for t in ts])), float(np.median([t[1] for t in ts])))
                   for n, ts in w['times'].items()}
            rt = lambda n, ref, k: f"{med[n][k] / med[ref][k]:.3f}" if ref in med else '–'
            def paired(n, ref):  # rounds are aligned: round i of every implementation ran side by side
                if ref not in w['times']: return '–'
                return f"{np.median([a[0] / b[0] for a, b in zip(w['times'][n], w['times'][ref])]):.3f}"
            for n, ts in w['times'].items():
                wl = [t[0] for t in ts]
                lines.append(f"| {wn} | {r['threads']} ({r['torch_threads']}) | {r['busy']} | {n} | {w['steps']} | "
                             f"{w['reps']} | {med[n][0]:.2f} | {min(wl):.2f}–{max(wl):.2f} | {med[n][1]:.2f} | "
                             f"{paired(n, 'bare')} | {rt(n, 'bare', 1)} | {paired(n, 'tsfast')} | {rt(n, 'tsfast', 1)} |")
    text = '\n'.join(lines) + '\n'
    out = Path(a.out or ROOT/'benchmarks'/'results'/('speed_threads_quick.md' if a.quick else 'speed_threads.md'))
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(text)
    print(text)


def table(res, a, device, notes) -> str:
    dev = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == 'cuda' else \
          f"cpu, {torch.get_num_threads()} torch thread(s) (--threads {a.threads}), {os.cpu_count()} CPU(s), " \
          f"{a.busy} competing busy process(es)"
    lines = [f"# Training speed: one epoch incl. validation{' (QUICK smoke run)' if a.quick else ''}", '',
             f"Device: {dev}; torch {torch.__version__}; python {platform.python_version()}; {a.n_batches} "
             "window-batches per epoch. Implementations alternate within each round (order rotated every round); "
             "medians over rounds. `wall`: elapsed time; `cpu`: this process's CPU time (less sensitive to other "
             "jobs on a shared machine). Ratios: median / median of `bare`; `paired wall`: the median over rounds "
             "of each round's wall time / `bare`'s in the same round (the machine's speed drifts less within a round "
             "than across rounds).", '']
    lines += [f"- {n}" for n in notes] + ([''] if notes else [])
    lines += ['| workload | implementation | updates | rounds | wall median [s] | wall min–max [s] | cpu median [s] | '
              'ms / update (cpu) | ratio wall | ratio cpu | paired wall | valid loss (round 1) |', '|---' * 12 + '|']
    for wn, r in res.items():
        med = {n: (float(np.median([t[0] for t in ts])), float(np.median([t[1] for t in ts]))) for n, ts in r['times'].items()}
        base = med.get('bare')
        for n, ts in r['times'].items():
            wl = [t[0] for t in ts]
            rw = f"{med[n][0] / base[0]:.3f}" if base else '–'
            rc = f"{med[n][1] / base[1]:.3f}" if base else '–'
            bt = r['times'].get('bare')
            pw = f"{np.median([t[0] / b[0] for t, b in zip(ts, bt)]):.3f}" if bt and len(bt) == len(ts) else '–'
            lines.append(f"| {wn} | {n} | {r['steps']} | {r['reps']} | {med[n][0]:.2f} | {min(wl):.2f}–{max(wl):.2f} | "
                         f"{med[n][1]:.2f} | {1000 * med[n][1] / r['steps']:.2f} | {rw} | {rc} | {pw} | {ts[0][2]:.6f} |")
    lines += ['', "Workloads (Silverbox, fit_flat_cos(1, lr=3e-3)): " + '; '.join(f"{k}: {v}" for k, v in WORKLOADS.items()),
              '', "`tsfast_lite` and `bare` start from the same seed and draw the same windows, so their validation "
              "losses agree (to float rounding): the loop is the same mathematics. tsfast 0.5.0 has its own "
              "initialisation, data pipeline (HDF5 files cached in memory) and schedule (stepped per window-batch), "
              "and checks `isnan(loss)` and calls `loss.item()` per update; it is given the same optimizer (fused "
              "AdamW, betas (0.9, 0.99), eps 1e-5, wd 0.01)."]
    return '\n'.join(lines) + '\n'


if __name__ == '__main__': main()
