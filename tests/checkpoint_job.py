"""A small training job for tests/test_faults.py: run in a subprocess, it trains with `CheckpointCB`, can pause (to be
killed) at a given update, and can resume from the checkpoint. Importable, to build the same learner in-process."""
import os, sys, json, time, argparse
from pathlib import Path
import numpy as np
import torch
from fastai.basics import set_seed
from fastai.callback.core import Callback
from tsfast_lite.data.records import Record
from tsfast_lite.data.loaders import create_dls
from tsfast_lite.learner.core import RNNLearner
from tsfast_lite.learner.checkpoint import CheckpointCB

N_EPOCH, LR = 4, 1e-2

def lowpass_records(lengths, seed=0, a=0.9):
    "Records of y[t] = a*y[t-1] + (1-a)*u[t-1]^2 driven by random inputs"
    rng = np.random.default_rng(seed)
    recs = []
    for i, n in enumerate(lengths):
        u = rng.standard_normal(n); y = np.zeros(n)
        for t in range(1, n): y[t] = a*y[t-1] + (1-a)*u[t-1]**2
        recs.append(Record({'u': u, 'y': y}, fs=10., name=f'rec{i}'))
    return recs

def make_learner(path, seed=0, **kwargs):
    "The DataLoaders and learner of the job, built from `seed` (the same in every process)"
    ds = {'train': lowpass_records([300, 200]), 'valid': lowpass_records([120], seed=1)}
    dls = create_dls('u', 'y', ds, win_sz=40, stp_sz=10, sub_seq_len=20, bs=8, device='cpu')
    set_seed(seed)
    return RNNLearner(dls, 'gru', hidden_size=8, path=path, **kwargs)

class PauseCB(Callback):
    "Before update `it` of epoch `epoch`: write the file `flag` and sleep, waiting to be killed"
    def __init__(self, epoch, it, flag): self.at, self.flag = (epoch, it), Path(flag)
    def before_batch(self):
        if self.training and (self.epoch, self.iter) == self.at:
            self.flag.write_text(str(os.getpid()))
            time.sleep(300)

def save_result(learn, out):
    torch.save({k: v.clone() for k, v in learn.model.state_dict().items()}, out)
    Path(str(out) + '.json').write_text(json.dumps([[float(x) for x in v[:2]] for v in learn.recorder.values]))

def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['full', 'pause', 'resume'])
    p.add_argument('--path', required=True)
    p.add_argument('--out')
    p.add_argument('--pause-at', type=int, nargs=2, default=(2, 3))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    learn = make_learner(a.path, seed=0 if a.mode != 'resume' else 7)  # resume: everything comes from the checkpoint
    with learn.no_bar(), learn.no_logging():
        if a.mode == 'resume': learn.resume_fit()
        else:
            cbs = [CheckpointCB()] + ([PauseCB(*a.pause_at, Path(a.path)/'paused')] if a.mode == 'pause' else [])
            learn.fit_flat_cos(N_EPOCH, lr=LR, cbs=cbs)
    if a.out: save_result(learn, a.out)

if __name__ == '__main__': main()
