"""Train documented recipes on the official benchmarks and score them on the official test sets.

Each (recipe, seed) run trains with `fit_flat_cos`, scores every official test set with `evaluate_tests()` (free-run
simulation from the zero state, scored on y[n_init:]) and appends one JSON line to `<out>.jsonl`, so a long run that is
stopped keeps what finished. The markdown table (mean and spread over seeds, training time, published numbers beside
ours) is rebuilt from that file after every run and at the end.

    python benchmarks/bench_accuracy.py --quick                       # smoke run: every recipe, a few updates
    python benchmarks/bench_accuracy.py --recipes sb_gru_w2 --seeds 3 # three seeds of one recipe
    python benchmarks/bench_accuracy.py --table-only                  # rebuild the table from the .jsonl

Data: TSFAST_LITE_DATA must point at the benchmark files (or they are downloaded into the cache).
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

# Published simulation RMSE on the official test sets, in the benchmark's unit (see benchmarks/README.md for sources).
PUBLISHED = {
    'silverbox': {
        'tsfast GRU default recipe (W2, 10 epochs)': {'multisine': 0.325, 'arrow_full': 1.43, 'arrow_no_extrapolation': 0.312},
        'SUBNET': {'multisine': 0.36, 'arrow_full': 1.4, 'arrow_no_extrapolation': 0.32},
        'GP-NARX': {'multisine': 0.301, 'arrow_full': 0.60, 'arrow_no_extrapolation': 0.259},
        'PNLSS': {'arrow_full': 0.26},
    },
    'wiener_hammerstein': {'SUBNET': {'test': 0.241}, 'tsfast GRU': {'test': 0.580}},
    'cascaded_tanks': {'grey-box': {'test': 0.191}, 'best black-box': {'test': 0.306}},
}
TEST_ORDER = {'silverbox': ['multisine', 'arrow_full', 'arrow_no_extrapolation'], 'wiener_hammerstein': ['test'],
              'cascaded_tanks': ['test']}
TITLES = {'silverbox': 'Silverbox [mV]', 'wiener_hammerstein': 'Wiener-Hammerstein [mV]', 'cascaded_tanks': 'Cascaded Tanks [V]'}

# The recipes. `dls`: arguments of the benchmark's create_dls_*; `learner`: arguments of RNNLearner; `fit`: epochs, lr.
RECIPES = {
    'sb_gru_w2': dict(
        benchmark='silverbox',
        doc="tsfast's GRU default recipe (W2): GRU 100, bs 64, win_sz 200, stp_sz 1, 300 batches/epoch, n_skip 50, "
            "fit_flat_cos(10, 3e-3), full BPTT on 200-sample windows",
        dls=dict(bs=64, win_sz=200, stp_sz=1, n_batches_train=300),
        learner=dict(rnn_type='gru', hidden_size=100, n_skip=50),
        fit=dict(n_epoch=10, lr=3e-3)),
    'sb_gru_tbptt_2000': dict(
        benchmark='silverbox',
        doc="long windows with TBPTT: GRU 100, bs 32, win_sz 2000 cut into sub_seq_len 200 (10 updates per window, "
            "state carried), stp_sz 10, 60 window-batches/epoch (same samples per epoch as W2), n_skip 50, "
            "fit_flat_cos(10, 3e-3)",
        dls=dict(bs=32, win_sz=2000, stp_sz=10, sub_seq_len=200, n_batches_train=60),
        learner=dict(rnn_type='gru', hidden_size=100, n_skip=50),
        fit=dict(n_epoch=10, lr=3e-3)),
    'sb_lstm_tbptt_5000': dict(
        benchmark='silverbox',
        doc="very long windows with TBPTT: LSTM 64, bs 16, win_sz 5000 cut into sub_seq_len 250 (20 updates per "
            "window), stp_sz 10, 40 window-batches/epoch, n_skip 50, fit_flat_cos(15, 3e-3)",
        dls=dict(bs=16, win_sz=5000, stp_sz=10, sub_seq_len=250, n_batches_train=40),
        learner=dict(rnn_type='lstm', hidden_size=64, n_skip=50),
        fit=dict(n_epoch=15, lr=3e-3)),
    'sb_lstm_tbptt_5000_e25': dict(
        benchmark='silverbox',
        doc="as `sb_lstm_tbptt_5000`, 25 epochs (1,000 window-batches, 20,000 updates)",
        dls=dict(bs=16, win_sz=5000, stp_sz=10, sub_seq_len=250, n_batches_train=40),
        learner=dict(rnn_type='lstm', hidden_size=64, n_skip=50),
        fit=dict(n_epoch=25, lr=3e-3)),
    'sb_lstm_tbptt_5000_e50': dict(
        benchmark='silverbox',
        doc="as `sb_lstm_tbptt_5000`, 50 epochs (2,000 window-batches, 40,000 updates)",
        dls=dict(bs=16, win_sz=5000, stp_sz=10, sub_seq_len=250, n_batches_train=40),
        learner=dict(rnn_type='lstm', hidden_size=64, n_skip=50),
        fit=dict(n_epoch=50, lr=3e-3)),
    'wh_gru_w2': dict(
        benchmark='wiener_hammerstein',
        doc="W2 on Wiener-Hammerstein: GRU 100, bs 64, win_sz 200, stp_sz 1, 300 batches/epoch, n_skip 50, "
            "fit_flat_cos(10, 3e-3)",
        dls=dict(bs=64, win_sz=200, stp_sz=1, n_batches_train=300),
        learner=dict(rnn_type='gru', hidden_size=100, n_skip=50),
        fit=dict(n_epoch=10, lr=3e-3)),
    'ct_gru': dict(
        benchmark='cascaded_tanks',
        doc="Cascaded Tanks: GRU 32, bs 16, win_sz 100, stp_sz 1, all windows each epoch, n_skip 5, "
            "fit_flat_cos(100, 3e-3)",
        dls=dict(bs=16, win_sz=100, stp_sz=1),
        learner=dict(rnn_type='gru', hidden_size=32, n_skip=5),
        fit=dict(n_epoch=100, lr=3e-3)),
}
DEFAULT_RECIPES = ['sb_gru_w2', 'sb_gru_tbptt_2000', 'wh_gru_w2', 'ct_gru', 'sb_lstm_tbptt_5000']


def make_dls(recipe:dict, quick:bool):
    from tsfast_lite.data import benchmarks as B
    kw = dict(recipe['dls'])
    if quick: kw['n_batches_train'] = 2
    return getattr(B, f"create_dls_{recipe['benchmark']}")(**kw)


def run_one(name:str, seed:int, quick:bool) -> dict:
    "Train recipe `name` with `seed` and score it on the official test sets"
    from fastai.basics import set_seed
    from tsfast_lite.learner.core import RNNLearner
    import tsfast_lite.inference  # noqa: F401  (patches predict_sequence, evaluate_tests)
    recipe = RECIPES[name]
    dls = make_dls(recipe, quick)
    set_seed(seed)
    learn = RNNLearner(dls, **recipe['learner'])
    n_epoch = 1 if quick else recipe['fit']['n_epoch']
    t0 = time.perf_counter()
    with learn.no_bar(): learn.fit_flat_cos(n_epoch, lr=recipe['fit']['lr'])
    train_s = time.perf_counter() - t0
    res = learn.evaluate_tests(plot=False)
    col = next(c for c in res.columns if c.startswith('rmse'))
    return dict(recipe=name, benchmark=recipe['benchmark'], seed=seed, quick=quick, n_epoch=n_epoch,
                train_s=train_s, valid=[float(v) for v in learn.recorder.values[-1]],
                rmse={k: float(v) for k, v in res[col].items()}, unit=col, threads=torch.get_num_threads(),
                host=platform.node(), time=time.strftime('%Y-%m-%d %H:%M:%S'))


def _fmt(vals, digits=3):
    if not vals: return '–'
    if len(vals) == 1: return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def table(rows:list, quick:bool=False) -> str:
    "Markdown tables, one per benchmark: our recipes (mean ± sample std over seeds, training time) and published numbers"
    out = ["# Accuracy on the official test sets" + (" (QUICK smoke run: numbers meaningless)" if quick else ''), '',
           "Free-run simulation RMSE from the zero state, scored on y[n_init:] (`evaluate_tests`). Ours: mean ± sample "
           "standard deviation over seeds; training time is wall-clock for `fit_flat_cos` incl. validation, "
           f"with {rows[0]['threads'] if rows else '?'} torch thread(s) on a 2-core machine shared with other jobs.", '']
    for bm, tests in TEST_ORDER.items():
        mine = [r for r in rows if r['benchmark'] == bm]
        if not mine and bm not in PUBLISHED: continue
        out += [f"## {TITLES[bm]}", '', '| model / recipe | ' + ' | '.join(tests) + ' | seeds | train time [min] |',
                '|---' * (len(tests) + 3) + '|']
        for name in dict.fromkeys(r['recipe'] for r in mine):
            rs = [r for r in mine if r['recipe'] == name]
            cells = [_fmt([r['rmse'][t] for r in rs if t in r['rmse']]) for t in tests]
            tmin = _fmt([r['train_s'] / 60 for r in rs], 1)
            out.append(f"| tsfast_lite `{name}` | " + ' | '.join(cells) +
                       f" | {', '.join(str(r['seed']) for r in rs)} | {tmin} |")
        for name, vals in PUBLISHED.get(bm, {}).items():
            out.append(f"| {name} (published) | " + ' | '.join(f"{vals[t]:.3f}" if t in vals else '–' for t in tests)
                       + ' | | |')
        out.append('')
    out += ['## Recipes', '']
    for name in dict.fromkeys(r['recipe'] for r in rows):
        out.append(f"- `{name}`: {RECIPES[name]['doc']}")
    return '\n'.join(out) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--recipes', nargs='+', default=DEFAULT_RECIPES, choices=list(RECIPES), help='recipes to run')
    p.add_argument('--seeds', type=int, default=1, help='number of seeds (0, 1, ..., seeds-1)')
    p.add_argument('--first-seed', type=int, default=0, help='first seed')
    p.add_argument('--quick', action='store_true', help='smoke run: 1 epoch of 2 window-batches per recipe')
    p.add_argument('--out', default=None, help='markdown table to write (default benchmarks/results/accuracy.md, '
                   'or accuracy_quick.md with --quick); runs are appended to the same name with .jsonl')
    p.add_argument('--table-only', action='store_true', help='rebuild the table from the .jsonl without training')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1: on a shared machine more '
                   'threads than free cores make small RNNs many times slower; see benchmarks/README.md)')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out or ROOT/'benchmarks'/'results'/('accuracy_quick.md' if a.quick else 'accuracy.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix('.jsonl')
    if a.quick and log.exists() and not a.table_only: log.unlink()
    def rows(): return [json.loads(l) for l in log.read_text().splitlines() if l.strip()] if log.exists() else []
    if not a.table_only:
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            for name in a.recipes:
                print(f"=== {name} seed {seed}: {RECIPES[name]['doc']}", flush=True)
                r = run_one(name, seed, a.quick)
                print(f"=== {name} seed {seed}: {r['train_s']/60:.1f} min, {r['unit']} {r['rmse']}", flush=True)
                with log.open('a') as f: f.write(json.dumps(r) + '\n')
                out.write_text(table(rows(), a.quick))
    text = table(rows(), a.quick)
    out.write_text(text)
    print(text)


if __name__ == '__main__': main()
