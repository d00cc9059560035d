"""Peak memory of training steps against the window length, full BPTT against TBPTT; long-sequence prediction.

Every point runs in a fresh subprocess. The process first trains a throw-away learner on short windows (one-off costs:
lazy imports, kernel set-up, the allocator's first pools), builds the data and the learner of the point, then resets
the high-water mark and trains `--steps` window-batches (optimizer creation included):

- CPU: the peak resident set size (Linux: write '5' to /proc/self/clear_refs, read VmHWM from /proc/self/status); the
  baseline is VmRSS right before the measured steps. The peak includes the Python/torch baseline, so the table shows
  the absolute peak and the increase over the baseline; the targets are judged on the increase.
- GPU: torch.cuda.max_memory_allocated after torch.cuda.reset_peak_memory_stats(); baseline memory_allocated.

Model and data: an LSTM of 40 units, bs 16, Silverbox's training record (50,000 samples, so windows up to 40,000),
windows every 10 samples; TBPTT with sub_seq_len 100. Validation is skipped (it does not train).

Prediction: `predict_sequence` on a 1,000,000-sample input (the Silverbox input repeated), chunked (default chunk of
65,536 samples) and in one piece, throughput and peak memory, also one fresh process per point.

    python benchmarks/bench_memory.py            # win_sz 500, 5,000, 40,000; prediction
    python benchmarks/bench_memory.py --quick    # win_sz 500 and 5,000, 1 step, prediction on 200,000 samples
"""
from __future__ import annotations
import argparse, gc, json, os, platform, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

HIDDEN, BS, STP_SZ, SUB_SEQ_LEN = 40, 16, 10, 100


def _status_kb(field:str) -> int:
    return int(re.search(rf'^{field}:\s+(\d+) kB', Path('/proc/self/status').read_text(), re.M).group(1))


class PeakMemory:
    "Baseline and peak memory around a block: process RSS on the CPU, allocated memory on a GPU (MiB)"
    def __init__(self, device): self.device = device
    def __enter__(self):
        gc.collect()
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device); torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            Path('/proc/self/clear_refs').write_text('5')  # reset VmHWM to the current RSS
            self.base = _status_kb('VmRSS') / 1024
        return self
    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else: self.peak = _status_kb('VmHWM') / 1024
        self.increase = self.peak - self.base


def train_point(mode:str, win_sz:int, steps:int) -> dict:
    "Peak memory of `steps` training window-batches with windows of `win_sz` samples, full BPTT or TBPTT"
    from fastai.callback.core import Callback, CancelValidException
    from fastai.basics import set_seed
    from tsfast_lite.data.benchmarks import silverbox_dataset
    from tsfast_lite.data.loaders import create_dls
    from tsfast_lite.learner.core import RNNLearner
    train = silverbox_dataset()['train']
    class NoValidation(Callback):
        def before_validate(self): raise CancelValidException()
    def learner(w, n):
        d = create_dls('u', 'y', {'train': train, 'valid': train}, win_sz=w, stp_sz=STP_SZ, bs=BS,
                       sub_seq_len=SUB_SEQ_LEN if mode == 'tbptt' else None, n_batches_train=n)
        set_seed(0)
        return d, RNNLearner(d, 'lstm', hidden_size=HIDDEN, head_gain=1., cbs=NoValidation())  # plain linear head
    # one-off costs (lazy imports, kernel set-up, the allocator's first pools) on short windows, in another learner
    _, warm = learner(2 * SUB_SEQ_LEN, 2)
    with warm.no_bar(), warm.no_logging(): warm.fit(1, lr=1e-3)
    del warm
    dls, learn = learner(win_sz, steps)
    with learn.no_bar(), learn.no_logging():
        t0 = time.perf_counter()
        with PeakMemory(dls.device) as m: learn.fit(1, lr=1e-3)
    return dict(mode=mode, win_sz=win_sz, steps=steps, updates=len(dls.train), base=m.base, peak=m.peak,
                increase=m.increase, seconds=time.perf_counter() - t0, device=str(dls.device))


def predict_point(n:int, chunk_sz:int|None) -> dict:
    "Throughput and peak memory of `predict_sequence` on `n` samples of input"
    from fastai.basics import set_seed
    from tsfast_lite.data.benchmarks import create_dls_silverbox
    from tsfast_lite.learner.core import RNNLearner
    import tsfast_lite.inference  # noqa: F401
    dls = create_dls_silverbox(bs=BS, win_sz=500, sub_seq_len=SUB_SEQ_LEN)
    set_seed(0)
    learn = RNNLearner(dls, 'lstm', hidden_size=HIDDEN, head_gain=1.)
    u_test = dls.test_sets['multisine'][0]
    u = np.resize(u_test, (n, u_test.shape[1]))
    learn.predict_sequence(u[:1000], chunk_sz=chunk_sz)  # one-off allocations
    dev = next(learn.model.parameters()).device
    t0 = time.perf_counter()
    with PeakMemory(dev) as m: y = learn.predict_sequence(u, chunk_sz=chunk_sz, progress=False)
    secs = time.perf_counter() - t0
    assert y.shape == (n, 1) and np.isfinite(y).all()
    return dict(n=n, chunk_sz=chunk_sz or 65536, base=m.base, peak=m.peak, increase=m.increase, seconds=secs,
                samples_per_s=n / secs, device=str(dev))


def in_subprocess(args:list, threads:int) -> dict:
    r = subprocess.run([sys.executable, __file__, '--threads', str(threads)] + args, capture_output=True, text=True,
                       cwd=str(ROOT))
    if r.returncode: raise RuntimeError(f"{args} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--win-szs', type=int, nargs='+', default=[500, 5_000, 40_000])
    p.add_argument('--steps', type=int, default=2, help='measured window-batches per point')
    p.add_argument('--n-predict', type=int, default=1_000_000, help='samples of input for predict_sequence')
    p.add_argument('--quick', action='store_true', help='smoke run: win_sz 500 and 5,000, 1 step, 200,000 samples')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    p.add_argument('--out', default=None, help='markdown file (default benchmarks/results/memory[_quick].md)')
    p.add_argument('--train-point', nargs=3, default=None, help=argparse.SUPPRESS)
    p.add_argument('--predict-point', nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.train_point:
        mode, w, s = a.train_point
        return print(json.dumps(train_point(mode, int(w), int(s))))
    if a.predict_point:
        n, c = a.predict_point
        return print(json.dumps(predict_point(n, c or None)))
    if a.quick: a.win_szs, a.steps, a.n_predict = [500, 5_000], 1, 200_000
    rows = []
    for w in a.win_szs:
        for mode in ('full', 'tbptt'):
            # TBPTT: the same number of updates at every win_sz (the Recorder keeps a record per update)
            steps = a.steps if mode == 'full' else a.steps * max(a.win_szs) // w
            r = in_subprocess(['--train-point', mode, str(w), str(steps)], a.threads)
            print(f"train {mode:5s} win_sz {w:6d}: peak {r['peak']:8.1f} MiB, increase {r['increase']:8.1f} MiB, "
                  f"{r['seconds']:.1f} s", flush=True)
            rows.append(r)
    preds = []
    for chunk in (0, a.n_predict):
        r = in_subprocess(['--predict-point', str(a.n_predict), str(chunk)], a.threads)
        print(f"predict {a.n_predict} samples, chunk {r['chunk_sz']}: {r['samples_per_s']:.0f} samples/s, "
              f"increase {r['increase']:.1f} MiB", flush=True)
        preds.append(r)
    text = table(rows, preds, a)
    out = Path(a.out or ROOT/'benchmarks'/'results'/('memory_quick.md' if a.quick else 'memory.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def table(rows, preds, a) -> str:
    dev = rows[0]['device'] if rows else 'cpu'
    what = 'allocated GPU memory (torch.cuda.max_memory_allocated)' if dev.startswith('cuda') else \
        'peak resident set size of the process (VmHWM)'
    L = [f"# Memory of training steps and long-sequence prediction{' (QUICK smoke run)' if a.quick else ''}", '',
         f"Device: {dev}; torch {torch.__version__}; python {platform.python_version()}. Memory: {what}, in MiB, one "
         f"fresh process per row. `increase` = peak - baseline measured right before the steps (the baseline holds "
         f"Python, torch, the data and the model); targets are judged on the increase.", '',
         f"## Training: LSTM {HIDDEN} units, bs {BS}; TBPTT: sub_seq_len {SUB_SEQ_LEN}", '',
         f"Full BPTT: {a.steps} window-batch(es) measured. TBPTT: the same number of updates at every win_sz "
         f"({a.steps} window-batch(es) of the longest windows), because fastai's `Recorder` keeps a record per update "
         "(a little memory per update, whatever the window length).", '',
         '| win_sz | mode | window-batches | updates | baseline [MiB] | peak [MiB] | increase [MiB] | time [s] |',
         '|---' * 8 + '|']
    for r in rows:
        L.append(f"| {r['win_sz']:,} | {'full BPTT' if r['mode'] == 'full' else 'TBPTT'} | {r['steps']} | {r['updates']} | "
                 f"{r['base']:.1f} | {r['peak']:.1f} | {r['increase']:.1f} | {r['seconds']:.1f} |")
    inc = {(r['mode'], r['win_sz']): max(r['increase'], 1e-9) for r in rows}
    L += ['', '### Targets (on the increase)', '']
    ws = sorted({r['win_sz'] for r in rows})
    if ('tbptt', 5000) in inc and ('tbptt', 40000) in inc:
        g = inc[('tbptt', 40000)] / inc[('tbptt', 5000)]
        L.append(f"- TBPTT flat within 30% from win_sz 5,000 to 40,000: increase x{g:.2f} "
                 f"({'met' if g <= 1.3 else 'missed'}); full BPTT x{inc[('full', 40000)] / inc[('full', 5000)]:.2f}.")
    if ('full', 5000) in inc:
        q = inc[('full', 5000)] / inc[('tbptt', 5000)]
        L.append(f"- full / TBPTT at win_sz 5,000 >= 10x: x{q:.1f} ({'met' if q >= 10 else 'missed'}).")
    for w in ws:
        if ('full', w) in inc and ('tbptt', w) in inc:
            L.append(f"- win_sz {w:,}: full / TBPTT = x{inc[('full', w)] / inc[('tbptt', w)]:.1f}")
    L.append("- (RSS is counted in 4 KiB pages and the allocator keeps freed memory: increases below ~1 MiB are at the "
             "resolution of the measurement.)")
    L += ['', f"## predict_sequence on {preds[0]['n']:,} samples (LSTM {HIDDEN} units, untrained weights)", '',
          '| chunk_sz | samples / s | time [s] | baseline [MiB] | peak [MiB] | increase [MiB] |', '|---' * 6 + '|']
    for r in preds:
        L.append(f"| {r['chunk_sz']:,} | {r['samples_per_s']:,.0f} | {r['seconds']:.2f} | {r['base']:.1f} | "
                 f"{r['peak']:.1f} | {r['increase']:.1f} |")
    L += ['', "The output array ([n, 1] float64, 7.6 MiB for 1,000,000 samples) is part of the increase in both rows."]
    return '\n'.join(L) + '\n'


if __name__ == '__main__': main()
