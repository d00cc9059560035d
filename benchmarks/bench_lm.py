"""Learning curves of Levenberg-Marquardt (`fit_lm`) against Adam (`fit_flat_cos`) on the same model: test RMSE against training time.

    python benchmarks/bench_lm.py --benchmarks silverbox emps wiener_hammerstein   # one torch thread, ~1 hour
    python benchmarks/bench_lm.py --table-only                                       # the table and figure from the .jsonl

Each arm trains from the same start (the best linear approximation: LM is deterministic, so a seed changes nothing for it)
and is scored on the benchmark's official test sets after its epochs / iterations, the scoring time kept off the clock.
Results go to benchmarks/results/lm_curves.jsonl (one line per arm), lm_curves.md and lm_curves.png.
"""
import argparse, json, time, platform
from pathlib import Path
import numpy as np

RESULTS = Path(__file__).parent/'results'
JSONL, TABLE, FIG = RESULTS/'lm_curves.jsonl', RESULTS/'lm_curves.md', RESULTS/'lm_curves.png'

def arms():
    "benchmark -> (structure in words, Adam recipe, LM recipe, test set plotted)"
    from tsfast_lite.recipes import get_recipe, Recipe
    sb = get_recipe('silverbox', 'nonlinear_ss')
    # the `blocks` recipe's model at a quarter of its width (4 branches, 16 units: 241 parameters instead of 1,200), so that
    # Levenberg-Marquardt iterations take about a minute each (a Jacobian costs one pass per parameter): 10 of them
    wh = get_recipe('wiener_hammerstein', 'blocks').replace(learner=dict(branches=4, hidden_size=16))
    em = Recipe('lss', 'emps', dict(win_sz=500, stp_sz=5, bs=32, n_batches_train=50), 'linear_ss',
                dict(nx=3, residual=None, encoder='lstsq', integrators=1), n_epoch=30, lr=3e-3, init='encoder',
                why="A linear state space with an integrator, every window from its least-squares state")
    return {'silverbox': ('PNLSS (nx 2, degree 3), 41 parameters', sb, sb.replace(n_epoch=0, lm_iter=20), 'arrow_full'),
            'emps': ('linear state space with an integrator (nx 3)', em, em.replace(n_epoch=0, lm_iter=20), 'test'),
            'wiener_hammerstein': ('Wiener-Hammerstein block model, 4 branches of 16 units', wh, wh.replace(n_epoch=0, lm_iter=10), 'test')}

def run(bench:str, which:str):
    import torch
    from fastai.callback.core import Callback
    from fastai.torch_core import set_seed
    from tsfast_lite.recipes import check_init
    import tsfast_lite.learner.lm, tsfast_lite.inference
    what, adam, lm, _ = arms()[bench]
    r = adam if which == 'adam' else lm
    d = r.create_dls(bench); set_seed(0)
    learn = r.create_learner(d)
    init = check_init(r, bench, None)
    n = r.n_epoch if which == 'adam' else r.lm_iter + 1
    marks = set(np.unique(np.geomspace(1, n, 8).round().astype(int)) - 1) | {n - 1}
    class Curve(Callback):
        order = 99
        def before_fit(self): self.t0, self.off, self.points = time.perf_counter(), 0., []
        def after_epoch(self):
            if self.epoch not in marks: return
            t = time.perf_counter()
            s = learn.evaluate_tests(plot=False, init=init)
            col = next(c for c in s.columns if c.startswith('rmse'))
            self.points.append(dict(epoch=int(self.epoch), seconds=t - self.t0 - self.off, rmse={k: float(v) for k, v in s[col].items()}))
            self.off += time.perf_counter() - t
    cb = Curve()
    if which == 'adam': learn.fit_flat_cos(r.n_epoch, lr=r.lr, cbs=cb)
    else: learn.fit_lm(r.lm_iter, cbs=cb)
    final = learn.evaluate_tests(plot=False, init=init)
    col = next(c for c in final.columns if c.startswith('rmse'))
    return dict(benchmark=bench, arm=which, structure=what, recipe=str(r), n_params=sum(p.numel() for p in learn.model.parameters()),
                unit=col, points=cb.points, final={k: float(v) for k, v in final[col].items()},
                threads=torch.get_num_threads(), host=platform.node(), time=time.strftime('%Y-%m-%d %H:%M:%S'))

def table(rows) -> str:
    lines = ['| benchmark | model | arm | parameters | training [min] | test RMSE (each set) |', '|---|---|---|---|---|---|']
    for r in rows:
        tr = r['points'][-1]['seconds'] / 60 if r['points'] else float('nan')
        lines.append(f"| {r['benchmark']} | {r['structure']} | {'Levenberg-Marquardt' if r['arm'] == 'lm' else 'Adam'} | "
                     f"{r['n_params']:,} | {tr:.1f} | " + ' / '.join(f'{v:.4g}' for v in r['final'].values()) + f" {r['unit'][5:]} |")
    return '\n'.join(lines) + '\n'

def latest(path=JSONL) -> list:
    "The latest run of each (benchmark, arm) in the results"
    rows = {}
    for line in path.read_text().splitlines(): r = json.loads(line); rows[(r['benchmark'], r['arm'])] = r
    return list(rows.values())

def figure(rows, save:bool=True):
    "Test RMSE against training minutes, LM beside Adam, one panel per benchmark"
    import matplotlib.pyplot as plt
    benches = list(dict.fromkeys(r['benchmark'] for r in rows))
    fig, axs = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 3.4), squeeze=False)
    sets = {b: a[3] for b, a in arms().items()}
    for ax, b in zip(axs[0], benches):
        for r in rows:
            if r['benchmark'] != b or not r['points']: continue
            t = [p['seconds'] / 60 for p in r['points']]; v = [p['rmse'][sets[b]] for p in r['points']]
            ax.semilogy(t, v, 'o-', ms=3, label='Levenberg-Marquardt' if r['arm'] == 'lm' else 'Adam (fit_flat_cos)')
        unit = next(r['unit'] for r in rows if r['benchmark'] == b)[5:]
        ax.set_title(f"{b}: {sets[b]}", fontsize=10); ax.set_xlabel('training time [min], one CPU thread')
        ax.set_ylabel(f"test RMSE {unit}"); ax.legend(fontsize=8)
    fig.tight_layout()
    if save: fig.savefig(FIG, dpi=110)
    return fig

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--benchmarks', nargs='+', default=['silverbox', 'emps', 'wiener_hammerstein'])
    p.add_argument('--arms', nargs='+', default=['lm', 'adam'], choices=['lm', 'adam'])
    p.add_argument('--table-only', action='store_true')
    a = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if not a.table_only:
        import torch; torch.set_num_threads(1)
        for b in a.benchmarks:
            for arm in a.arms:
                row = run(b, arm)
                with open(JSONL, 'a') as f: f.write(json.dumps(row) + '\n')
                print(table([row]).splitlines()[-1], flush=True)
    import matplotlib; matplotlib.use('Agg')
    rows = latest()
    TABLE.write_text('# Levenberg-Marquardt against Adam\n\n' + table(rows)); figure(rows)
    print(TABLE.read_text())

if __name__ == '__main__': main()
