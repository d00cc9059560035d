"""Bad input, table-driven: every case raises exactly the named exception type (or warns), with a message that names
the record, signal, value or file at fault and what would be valid.

The benchmark downloads (checksum mismatch, interrupted download, concurrent cache) are tested in
nbs/00_data/02_benchmarks.ipynb; checkpoint errors are also tested in nbs/02_learner/04_checkpoint.ipynb."""
import warnings
from dataclasses import dataclass, field
import numpy as np
import pytest
import torch
from tsfast_lite.data.records import Record, save_hdf5, load_hdf5, load_csv, load_dataset, NormStats
from tsfast_lite.data.loaders import create_dls, window_starts
from tsfast_lite.data.benchmarks import split_last, simulated_duffing_dataset, arrow_signal, benchmark_file
from tsfast_lite.learner.core import RNNLearner
from tsfast_lite.learner.checkpoint import CheckpointCB
from tsfast_lite.learner.tbptt import check_normalization
from tsfast_lite.models.rnn import SimModel, RNN
import tsfast_lite.inference  # predict_sequence, evaluate_tests
from tsfast_lite.raytune import tune_learner

torch.set_num_threads(1)

@dataclass
class Case:
    id: str
    run: object  # ctx -> anything; must raise `exc` (or warn, for a Warning class)
    exc: type
    contains: list = field(default_factory=list)  # fragments of the message; '{tmp}' is the temporary folder

def recs(lengths=(100, 60), first=0, **signals):
    "Records with a ramp input and its square as output"
    return [Record({'u': np.arange(n)*0.1, 'y': (np.arange(n)*0.1)**2}, fs=10., name=f'r{k}')
            for k, n in enumerate(lengths, start=first)]

def ds(): return {'train': recs(), 'valid': recs((50,), first=2), 'test': recs((30,), first=3)}

def dls(**kw): return create_dls('u', 'y', ds(), **{'win_sz': 20, 'stp_sz': 5, 'bs': 4, 'device': 'cpu', **kw})

def with_nan(n, i, v=np.nan):
    a = np.arange(n, dtype=float); a[i] = v; return a

def write(ctx, name, data):
    p = ctx['tmp']/name
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
    return p

def h5(ctx, name, **datasets):
    import h5py
    p = ctx['tmp']/name
    with h5py.File(p, 'w') as f:
        for k, v in datasets.items():
            if isinstance(v, str): f.create_group(k)
            else: f.create_dataset(k, data=v)
    return p

def h5_with(ctx, name, attrs=None, **datasets):
    "An HDF5 record `name` with `datasets` (str: a text dataset) and file attributes `attrs`"
    import h5py
    p = ctx['tmp']/name
    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, 'w') as f:
        for k, v in datasets.items(): f.create_dataset(k, data=v)
        for k, v in (attrs or {}).items(): f.attrs[k] = v
    return p

def extra_h5(ctx):
    "A record with signals u, y and unused datasets: text, 2-D, a scalar string and a group"
    p = h5_with(ctx, 'extra.hdf5', u=np.arange(20.), y=np.arange(20.), note=np.array([b'hello']), mat=np.zeros((20, 3)),
                title='bench run 1')
    import h5py
    with h5py.File(p, 'a') as f: f.create_group('meta')
    return p

def dup_folder(ctx):
    "A dataset folder whose test/ holds run.h5 beside run.hdf5"
    d = ctx['tmp']/'dup'
    for s in ('train', 'valid'): save_hdf5(Record({'u': np.arange(50.), 'y': np.arange(50.)}, fs=1., name=s), d/s/f'{s}.hdf5')
    for ext in ('h5', 'hdf5'): save_hdf5(Record({'u': np.arange(30.), 'y': np.arange(30.)}, fs=1., name='run'), d/'test'/f'run.{ext}')
    return d

def ds2(): return {s: [Record({'u': np.sin(np.arange(n)*0.1), 'u2': np.cos(np.arange(n)*0.1), 'y': np.arange(n)*0.1}, fs=10., name=f'{s}{n}')]
                   for s, n in (('train', 100), ('valid', 50))}

def model_without_offset():
    "A model built with the statistics of offset DataLoaders but not their offset, checked against them"
    d = create_dls('u', 'y', offset_ds(), win_sz=20, device='cpu')
    check_normalization(SimModel(RNN(1, 1), d.norm_u.mean, d.norm_u.std, d.norm_y.mean, d.norm_y.std), d)

def offset_ds(offset=2e7):
    "Records whose output is a unit sine riding on a large constant"
    t = np.arange(400)*0.1
    return {s: [Record({'u': np.sin(t), 'y': offset + np.sin(t)}, fs=10., name=s)] for s in ('train', 'valid')}

def same_names(): return {**ds(), 'test': [Record({'u': np.zeros(n), 'y': np.zeros(n)}, name='run') for n in (30, 40)]}

def good_h5(ctx): return save_hdf5(Record({'u': np.arange(200.), 'y': np.arange(200.)}, fs=1., name='ok'), ctx['tmp']/'ok.hdf5')

CASES = [
    # records: values
    Case('nan in a signal', lambda c: Record({'u': np.zeros(10), 'y': with_nan(10, 7)}, name='run3'), ValueError,
         ["Record 'run3': signal 'y' has a non-finite value (nan) at index 7 (1 non-finite values in all); clean or cut the record"]),
    Case('inf in a signal', lambda c: Record({'u': with_nan(10, 2, np.inf), 'y': np.zeros(10)}, name='run3'), ValueError,
         ["Record 'run3': signal 'u' has a non-finite value (inf) at index 2"]),
    Case('-inf, several bad values', lambda c: Record({'u': np.r_[0., -np.inf, np.nan]}, name='run4'), ValueError,
         ["signal 'u' has a non-finite value (-inf) at index 1 (2 non-finite values in all)"]),
    Case('u and y of different lengths', lambda c: Record({'u': np.zeros(100), 'y': np.zeros(99)}, name='run5'), ValueError,
         ["Record 'run5': signals have different lengths {'u': 100, 'y': 99}; all signals of a record must have the same number of samples"]),
    Case('empty record (0 samples)', lambda c: Record({'u': [], 'y': []}, name='run6'), ValueError,
         ["Record 'run6': signal 'u' is empty (0 samples); a record needs at least one sample in every signal"]),
    Case('no signals at all', lambda c: Record({}, name='run7'), ValueError,
         ["Record 'run7': signals must be a non-empty dict of name -> 1-D array"]),
    Case('strings', lambda c: Record({'u': ['0.1', 'n/a']}, name='run8'), TypeError,
         ["Record 'run8': signal 'u' has dtype <U3; signals must be real numbers (bool, int or float) (first non-number: 'n/a' at index 1)"]),
    Case('numbers stored as text', lambda c: Record({'u': ['1', '2']}, name='run9'), TypeError,
         ["signal 'u' has dtype <U1", "numbers stored as text or objects: convert them with np.asarray(x, dtype=float)"]),
    Case('object array with None', lambda c: Record({'u': np.array([1., None, 3.], dtype=object)}, name='run10'), TypeError,
         ["Record 'run10': signal 'u' has dtype object", "(first non-number: None at index 1)"]),
    Case('complex values', lambda c: Record({'u': np.ones(3) * 1j}, name='run11'), TypeError,
         ["signal 'u' has dtype complex128; signals must be real numbers"]),
    Case('2-D signal', lambda c: Record({'u': np.zeros((10, 2))}, name='run12'), ValueError,
         ["Record 'run12': signal 'u' has shape (10, 2); each signal must be 1-D"]),
    Case('empty column (0, 1)', lambda c: Record({'u': np.zeros((0, 1))}, name='run12b'), ValueError,
         ["Record 'run12b': signal 'u' is empty (0 samples, shape (0, 1)); a record needs at least one sample in every signal"]),
    Case('empty row (1, 0)', lambda c: Record({'u': np.zeros((1, 0)), 'y': np.zeros((1, 0))}, name='run12c'), ValueError,
         ["Record 'run12c': signal 'u' is empty (0 samples, shape (1, 0))"]),
    Case('non-positive fs', lambda c: Record({'u': np.zeros(3)}, fs=0, name='run13'), ValueError,
         ["Record 'run13': fs=0 must be a positive sampling frequency in Hz"]),
    Case('missing signal', lambda c: create_dls('u', 'x', ds(), win_sz=20), KeyError,
         ["Record 'r0' has no signal 'x'; its signals are ['u', 'y']"]),
    Case('missing signal (get)', lambda c: recs()[0].get(['u', 'v']), KeyError,
         ["Record 'r0' has no signal 'v'; its signals are ['u', 'y']"]),
    Case('complex normalisation statistics', lambda c: NormStats([1 + 2j], [1.], ['u']), TypeError,
         ["NormStats: mean=[(1+2j)] has complex values; give real numbers, one per signal"]),
    Case('constant signal', lambda c: NormStats.from_records([Record({'u': np.full(50, 0.1)})], ['u']), UserWarning,
         ["Signal(s) ['u'] are constant in the training records (std 0); they are scaled by 1 instead of being divided by zero"]),
    # files
    Case('HDF5: random bytes', lambda c: load_hdf5(write(c, 'garbage.hdf5', b'\x00garbage' * 50)), OSError,
         ["Cannot read HDF5 record {tmp}/garbage.hdf5: not an HDF5 file (no HDF5 signature; it starts with b'\\x00garbage')"]),
    Case('HDF5: truncated', lambda c: load_hdf5(write(c, 'cut.hdf5', good_h5(c).read_bytes()[:1500])), OSError,
         ["Cannot read HDF5 record {tmp}/cut.hdf5: the file is truncated (1,500 bytes, fewer than its header says: ", "truncated file"]),
    Case('HDF5: 0 bytes', lambda c: load_hdf5(write(c, 'zero.hdf5', b'')), OSError,
         ["Cannot read HDF5 record {tmp}/zero.hdf5: the file is empty (0 bytes)"]),
    Case('HDF5: no dataset', lambda c: load_hdf5(h5(c, 'groups.hdf5', run1='group')), ValueError,
         ["HDF5 record {tmp}/groups.hdf5 holds no signal (no 1-D numeric dataset at its top level; it has 'run1' (group)): expected one 1-D dataset per signal"]),
    Case('HDF5: only text datasets', lambda c: load_hdf5(h5(c, 'text.hdf5', u=np.array([b'a', b'b']))), ValueError,
         ["HDF5 record {tmp}/text.hdf5 holds no signal (no 1-D numeric dataset at its top level; it has 'u' (text)): expected one 1-D dataset per signal"]),
    Case('HDF5: missing signal', lambda c: load_hdf5(good_h5(c), signals=['u', 'v']), KeyError,
         ["HDF5 record {tmp}/ok.hdf5 has no signal 'v'; it has ['u', 'y']"]),
    Case('HDF5: no such file', lambda c: load_hdf5(c['tmp']/'none.hdf5'), FileNotFoundError,
         ["No HDF5 record at {tmp}/none.hdf5"]),
    Case('CSV: 0 bytes', lambda c: load_csv(write(c, 'empty.csv', '')), ValueError,
         ["Cannot parse CSV record {tmp}/empty.csv: No columns to parse from file"]),
    Case('CSV: header only', lambda c: load_csv(write(c, 'header.csv', 'u,y\n')), ValueError,
         ["CSV record {tmp}/header.csv: the table has no data (0 rows, columns ['u', 'y']); a record needs at least one sample"]),
    Case('CSV: truncated in a number', lambda c: load_csv(write(c, 'cut.csv', 'u,y\n1,2\n3,4\n5,6.1e')), TypeError,
         ["CSV record {tmp}/cut.csv: signal 'y' has dtype object; signals must be real numbers (bool, int or float) (first non-number: '6.1e' at index 2)"]),
    Case('CSV: truncated line', lambda c: load_csv(write(c, 'short.csv', 'u,y\n1,2\n3,4\n5')), ValueError,
         ["CSV record {tmp}/short.csv: signal 'y' has a non-finite value (nan) at index 2"]),
    Case('CSV: ragged line', lambda c: load_csv(write(c, 'ragged.csv', 'u,y\n1,2\n3,4,5,6\n')), ValueError,
         ["Cannot parse CSV record {tmp}/ragged.csv: Error tokenizing data. C error: Expected 2 fields in line 3, saw 4"]),
    Case('CSV: binary (gzip) file', lambda c: load_csv(write(c, 'gz.csv', b'\x1f\x8b\x08\x00' + bytes(64))), ValueError,
         ["Cannot parse CSV record {tmp}/gz.csv: 'utf-8' codec can't decode byte 0x8b"]),
    Case('CSV: text column', lambda c: load_csv(write(c, 'dates.csv', 't,u\n2024-01-01,1\n2024-01-02,2\n')), TypeError,
         ["CSV record {tmp}/dates.csv: signal 't' has dtype object", "(first non-number: '2024-01-01' at index 0); to keep only the signal columns pass columns=[...]"]),
    Case('folder with no records', lambda c: load_dataset(write(c, 'empty/train/notes.txt', 'x').parent.parent), ValueError,
         ["Dataset folder {tmp}/empty holds no records: expected HDF5 files (*.hdf5, *.h5) in train/, valid/, test/"]),
    Case('folder does not exist', lambda c: load_dataset(c['tmp']/'nowhere'), FileNotFoundError,
         ["Dataset folder {tmp}/nowhere does not exist"]),
    Case('a file given as folder', lambda c: load_dataset(good_h5(c)), NotADirectoryError,
         ["Dataset folder {tmp}/ok.hdf5 is a file; expected a folder with subfolders train/, valid/, test/"]),
    Case('corrupted file in a folder', lambda c: load_dataset(write(c, 'ds/train/bad.hdf5', b'xx').parent.parent), OSError,
         ["Cannot read HDF5 record {tmp}/ds/train/bad.hdf5: not an HDF5 file (no HDF5 signature; it starts with b'xx')"]),
    Case('no valid records', lambda c: create_dls('u', 'y', {'train': recs()}, win_sz=20), ValueError,
         ["The dataset has no valid records; create_dls needs train and valid records"]),
    Case('unknown split', lambda c: load_dataset({'training': recs()}), ValueError,
         ["Unknown split 'training'; valid splits are ['train', 'valid', 'test']"]),
    Case('not a (split, record) pair', lambda c: load_dataset([recs()[0]]), TypeError,
         ["Dataset items must be (split, Record) pairs, got Record('r0'"]),
    # files: nothing dropped, merged or reinterpreted silently; every error names the file
    Case('CSV: one field more than the header', lambda c: load_csv(write(c, 'shifted.csv', 'u,y\n1,2,3\n4,5,6\n')), ValueError,
         ["Cannot read CSV record {tmp}/shifted.csv: line 2 has 3 fields but the header (line 1) names 2 columns ['u', 'y']; "
          "pandas would read the first field as a row index and shift every column by one: fix the file, or pass index_col=0 "
          "if the first field is a row index"]),
    Case('CSV: nan names the file', lambda c: load_csv(write(c, 'gap.csv', 'u,y\n1,2\n3,\n')), ValueError,
         ["CSV record {tmp}/gap.csv: signal 'y' has a non-finite value (nan) at index 1"]),
    Case('folder: run.h5 beside run.hdf5', lambda c: load_dataset(dup_folder(c)), ValueError,
         ["Dataset folder {tmp}/dup: test/run.h5 and test/run.hdf5 are both records named 'run' (a record is named after its "
          "file without the extension); remove or rename one"]),
    Case('two test records with the same name', lambda c: create_dls('u', 'y', same_names(), win_sz=20, device='cpu'), UserWarning,
         ["2 test records are named 'run'; test sets are keyed by name, so they are kept as ['run', 'run_2']: give the "
          "records distinct names (Record(..., name=...)) to choose them"]),
    Case('HDF5: requested 2-D dataset', lambda c: load_hdf5(extra_h5(c), signals=['u', 'mat']), ValueError,
         ["HDF5 record {tmp}/extra.hdf5: dataset 'mat' has shape (20, 3); a signal must be a 1-D dataset"]),
    Case('HDF5: requested text dataset', lambda c: load_hdf5(extra_h5(c), signals=['u', 'note']), TypeError,
         ["HDF5 record {tmp}/extra.hdf5: signal 'note' has dtype |S5; signals must be real numbers (bool, int or float) "
          "(first non-number: 'hello' at index 0)"]),
    Case('HDF5: requested group', lambda c: load_hdf5(extra_h5(c), signals=['meta']), ValueError,
         ["HDF5 record {tmp}/extra.hdf5: 'meta' is a group, not a dataset; a signal must be a 1-D dataset"]),
    Case('HDF5: unused datasets, all loaded', lambda c: load_hdf5(extra_h5(c)), UserWarning,
         ["HDF5 record {tmp}/extra.hdf5: skipped 4 entries that are not 1-D numeric datasets: 'mat' (shape (20, 3)), "
          "'meta' (group), 'note' (text), 'title' (text); pass signals=[...] to load only the signals you need"]),
    Case('HDF5: fs is text', lambda c: load_hdf5(h5_with(c, 'fs_text.hdf5', {'fs': 'fast'}, u=np.arange(5.))), ValueError,
         ["HDF5 record {tmp}/fs_text.hdf5: attribute fs='fast' is not a number; it must be the sampling frequency in Hz"]),
    Case('HDF5: fs of 2 values', lambda c: load_hdf5(h5_with(c, 'fs_two.hdf5', {'fs': [100., 200.]}, u=np.arange(5.))), ValueError,
         ["HDF5 record {tmp}/fs_two.hdf5: attribute fs=[100.0, 200.0] holds 2 values; it must be one number, the sampling frequency in Hz"]),
    Case('HDF5: fs = 0', lambda c: load_hdf5(h5_with(c, 'fs_zero.hdf5', {'fs': 0}, u=np.arange(5.))), ValueError,
         ["HDF5 record {tmp}/fs_zero.hdf5: fs=0.0 must be a positive sampling frequency in Hz"]),
    Case('HDF5: nan names the file', lambda c: load_hdf5(h5_with(c, 'nan.hdf5', u=with_nan(10, 3))), ValueError,
         ["HDF5 record {tmp}/nan.hdf5: signal 'u' has a non-finite value (nan) at index 3"]),
    Case('Record: fs = True', lambda c: Record({'u': np.zeros(3)}, fs=True, name='r14'), TypeError,
         ["Record 'r14': fs=True must be a number (the sampling frequency in Hz)"]),
    Case('Record: fs as text', lambda c: Record({'u': np.zeros(3)}, fs='100', name='r15'), TypeError,
         ["Record 'r15': fs='100' must be a number (the sampling frequency in Hz)"]),
    Case('Record: slice start 2.5', lambda c: recs()[0].slice(2.5), TypeError, ["start=2.5 must be an integer"]),
    # statistics
    Case('norm_u of 1 signal for 2 inputs', lambda c: create_dls(['u', 'u2'], 'y', ds2(), win_sz=20, norm_u=NormStats([0.], [1.], ['u'])), ValueError,
         ["norm_u holds statistics of 1 signal(s) ['u'], but the 2 input signal(s) are ['u', 'u2']; pass statistics of exactly "
          "these signals in this order (a trained model's dls.norm_u, or NormStats.from_records(records, ['u', 'u2']))"]),
    Case('norm_u of the inputs in another order', lambda c: create_dls(['u', 'u2'], 'y', ds2(), win_sz=20, norm_u=NormStats([0., 0.], [1., 1.], ['u2', 'u'])), ValueError,
         ["norm_u holds statistics of 2 signal(s) ['u2', 'u'], but the 2 input signal(s) are ['u', 'u2']"]),
    Case('norm_y not a NormStats', lambda c: create_dls('u', 'y', ds(), win_sz=20, norm_y=(0., 1.)), TypeError,
         ["norm_y=(0.0, 1.0) must be a NormStats (a trained model's dls.norm_y, or NormStats(mean, std, names)), got tuple"]),
    Case('NormStats: std 0', lambda c: NormStats([0.], [0.], ['u']), ValueError,
         ["NormStats: std of 'u' is 0.0 at float32 precision; every std must be a positive finite number between 1.2e-38 and 3.4e38 (it divides the signal)"]),
    Case('NormStats: lengths differ', lambda c: NormStats([0.], [1., 2.], ['u']), ValueError,
         ["NormStats: mean has 1 value(s) and std 2 for 1 signal name(s) ['u']; each needs one value per signal"]),
    Case('offset 2e7 in an output: a model without its offset', lambda c: model_without_offset(), ValueError,
         ["The DataLoaders' targets are the outputs less [20000000.0407] (norm_y.offset), but the model predicts the outputs "
          "less [0.0]: build the model with SimModel.from_dls(model, dls), or pass y_offset=dls.norm_y.offset"]),
    # numbers: validated where they enter
    Case('win_sz = np.float64(20.0)', lambda c: dls(win_sz=np.float64(20.)), TypeError, ["win_sz=np.float64(20.0) must be an integer"]),
    Case('stp_sz = -1', lambda c: dls(stp_sz=-1), ValueError, ["stp_sz=-1 must be >= 1"]),
    Case('bs = 2.5', lambda c: dls(bs=2.5), TypeError, ["bs=2.5 must be an integer"]),
    Case('sub_seq_len = True', lambda c: dls(sub_seq_len=True), TypeError, ["sub_seq_len=True must be an integer (win_sz=20)"]),
    Case('n_init >= a test record', lambda c: dls(n_init=30), ValueError,
         ["n_init=30 leaves nothing to score in test record 'r3' (30 samples); use n_init < 30"]),
    Case('WindowDL.new: bs = 0', lambda c: dls().train.new(bs=0), ValueError, ["bs=0 must be >= 1"]),
    Case('WindowDL.new: n_batches = -1', lambda c: dls().train.new(n_batches=-1), ValueError, ["n_batches=-1 must be >= 1"]),
    Case('WindowDL.new: num_workers = 1.5', lambda c: dls().train.new(num_workers=1.5), TypeError, ["num_workers=1.5 must be an integer"]),
    Case('window_starts: stp_sz = 0', lambda c: window_starts(10, 4, 0), ValueError, ["stp_sz=0 must be >= 1"]),
    Case('split_last: valid_frac = True', lambda c: split_last(recs()[0], True), TypeError,
         ["valid_frac=True must be a number (a fraction between 0 and 1, exclusive)"]),
    Case('simulated Duffing: noise_std = True', lambda c: simulated_duffing_dataset(noise_std=True), TypeError,
         ["noise_std=True must be a number (a standard deviation >= 0, in volts)"]),
    Case('simulated Duffing: f_max above Nyquist', lambda c: arrow_signal(100, f_max=400.), ValueError,
         ["f_max=400.0 must be between 0 and fs/2 = 305.175 Hz (exclusive)"]),
    Case('download: timeout = 0', lambda c: benchmark_file('silverbox', root=c['tmp'], cache=c['tmp']/'c', timeout=0), ValueError,
         ["timeout=0 must be > 0 (seconds to wait for the server)"]),
    # configuration
    Case('win_sz = 0', lambda c: dls(win_sz=0), ValueError, ["win_sz=0 must be >= 1"]),
    Case('win_sz not an integer', lambda c: dls(win_sz=20.5), TypeError, ["win_sz=20.5 must be an integer"]),
    Case('win_sz longer than every record', lambda c: dls(win_sz=101), ValueError,
         ["win_sz=101 is longer than every training record (longest: 100 samples); use win_sz <= 100"]),
    Case('win_sz longer than every valid record', lambda c: dls(win_sz=51), ValueError,
         ["No validation window: every valid record is shorter than win_sz=51 (lengths [50])"]),
    Case('stp_sz = 0', lambda c: dls(stp_sz=0), ValueError, ["stp_sz=0 must be >= 1"]),
    Case('valid_stp_sz = 0', lambda c: dls(valid_stp_sz=0), ValueError, ["valid_stp_sz=0 must be >= 1"]),
    Case('sub_seq_len does not divide win_sz', lambda c: dls(sub_seq_len=7), ValueError,
         ["sub_seq_len=7 does not divide win_sz=20; the nearest valid values are 5 and 10 (all valid: [1, 2, 4, 5, 10, 20])"]),
    Case('sub_seq_len > win_sz', lambda c: dls(sub_seq_len=40), ValueError, ["sub_seq_len=40 must be between 1 and 20 (win_sz=20)"]),
    Case('sub_seq_len = 0', lambda c: dls(sub_seq_len=0), ValueError, ["sub_seq_len=0 must be between 1 and 20 (win_sz=20)"]),
    Case('bs > number of windows', lambda c: dls(bs=64), ValueError,
         ["bs=64 is larger than the 26 training windows (win_sz=20, stp_sz=5); use bs <= 26, a smaller stp_sz, or n_batches_train"]),
    Case('bs = 0', lambda c: dls(bs=0), ValueError, ["bs=0 must be >= 1"]),
    Case('bs = True', lambda c: dls(bs=True), TypeError, ["bs=True must be an integer"]),
    Case('valid_bs = 0', lambda c: dls(valid_bs=0), ValueError, ["valid_bs=0 must be >= 1"]),
    Case('n_batches_train = 0', lambda c: dls(n_batches_train=0), ValueError, ["n_batches_train=0 must be >= 1"]),
    Case('num_workers < 0', lambda c: dls(num_workers=-1), ValueError, ["num_workers=-1 must be >= 0"]),
    Case('n_init < 0', lambda c: dls(n_init=-5), ValueError, ["n_init=-5 must be >= 0 (initialisation samples of the test sets, not scored)"]),
    Case('no input signal', lambda c: create_dls([], 'y', ds(), win_sz=20), ValueError, ["u=[] and y=['y'] must each name at least one signal"]),
    Case('n_skip >= sub_seq_len', lambda c: RNNLearner(dls(sub_seq_len=5), n_skip=5), ValueError,
         ["n_skip=5 must be smaller than sub_seq_len=5: n_skip applies to the first sub-window of each window only"]),
    Case('n_skip >= win_sz', lambda c: RNNLearner(dls(), n_skip=20), ValueError, ["n_skip=20 must be smaller than win_sz=20: nothing would be scored"]),
    Case('n_skip < 0', lambda c: RNNLearner(dls(), n_skip=-1), ValueError, ["n_skip=-1 must be a non-negative integer"]),
    Case('k2 = 0', lambda c: RNNLearner(dls(sub_seq_len=5), k2=0), ValueError, ["k2=0 must be a positive integer (the backprop depth in steps)"]),
    Case('k2 not an integer', lambda c: RNNLearner(dls(sub_seq_len=5), k2=2.5), ValueError, ["k2=2.5 must be a positive integer"]),
    Case('k2 without TBPTT', lambda c: RNNLearner(dls(), k2=5), ValueError, ["k2=5 needs TBPTT: create the DataLoaders with sub_seq_len"]),
    Case('sub_seq_len differs from the loaders', lambda c: RNNLearner(dls(sub_seq_len=5), sub_seq_len=10), ValueError,
         ["sub_seq_len=10 differs from the DataLoaders' sub_seq_len=5; create the DataLoaders with sub_seq_len=10"]),
    Case('unknown rnn_type', lambda c: RNNLearner(dls(), rnn_type='xlstm'), ValueError,
         ["rnn_type='xlstm' is not supported; valid values are ['lstm', 'gru', 'rnn']"]),
    Case('hidden_size = 0', lambda c: RNNLearner(dls(), hidden_size=0), ValueError, ["hidden_size=0 must be a positive integer"]),
    # inference
    Case('predict_sequence: 2 inputs for 1', lambda c: c['learn'].predict_sequence(np.zeros((10, 2))), ValueError,
         ["u has 2 input signal(s) (shape (10, 2)); the model takes 1"]),
    Case('predict_sequence: 1-D input', lambda c: c['learn'].predict_sequence(np.zeros(10)), ValueError,
         ["u has shape (10,); expected [T, n_u] = [T, 1] (for one signal use u[:, None], shape [10, 1])"]),
    Case('predict_sequence: empty input', lambda c: c['learn'].predict_sequence(np.zeros((0, 1))), ValueError,
         ["u is empty (shape (0, 1)); expected at least one sample"]),
    Case('predict_sequence: nan input', lambda c: c['learn'].predict_sequence(with_nan(10, 4)[:, None]), ValueError,
         ["u has a non-finite value at sample 4, signal 0"]),
    Case('predict_sequence: text input', lambda c: c['learn'].predict_sequence(np.array([['a']])), TypeError,
         ["u has dtype <U1; expected real numbers of shape [T, 1]"]),
    Case('predict_sequence: chunk_sz = 0', lambda c: c['learn'].predict_sequence(np.zeros((10, 1)), chunk_sz=0), ValueError,
         ["chunk_sz=0 must be a positive integer"]),
    Case('evaluate_tests: no test sets', lambda c: c['learn'].evaluate_tests(test_sets={}), ValueError,
         ["No test sets: the DataLoaders have none (dls.test_sets is empty)"]),
    Case('evaluate_tests: u and y lengths differ', lambda c: c['learn'].evaluate_tests(test_sets={'t': (np.zeros((10, 1)), np.zeros((9, 1)))}, plot=False),
         ValueError, ["Test set 't': u has 10 samples but y has 9"]),
    Case('fit: lr 1e39 overflows the weights', lambda c: RNNLearner(c['learn'].dls, hidden_size=4).fit(1, lr=1e39), FloatingPointError,
         ["Non-finite training loss at epoch 0, batch 1, because the weights are already non-finite (model.rnn.weight_ih_l0, "
          "model.rnn.weight_hh_l0, model.rnn.bias_ih_l0 and 3 more): an earlier update, whose loss was finite, overflowed them"]),
    Case('tune_learner: storage_path is a file', lambda c: tune_learner(lambda cfg: None, {'x': 1}, storage_path=write(c, 'a_file', b'x')),
         NotADirectoryError, ["the sweep storage_path {tmp}/a_file is a file, not a folder: remove it or choose another path"]),
    Case('tune_learner: max_failures = -1', lambda c: tune_learner(lambda cfg: None, {'x': 1}, max_failures=-1), ValueError,
         ["max_failures=-1 must be a whole number >= 0 (retries of a failed trial)"]),
    # checkpoints
    Case('resume_fit: no checkpoint', lambda c: c['learn'].resume_fit('nothing'), FileNotFoundError,
         ["No checkpoint 'nothing' in {tmp}/models (nothing.json is missing): train with cbs=CheckpointCB('nothing') to write one"]),
    Case('CheckpointCB: every_epoch = 0', lambda c: CheckpointCB(every_epoch=0), ValueError,
         ["every_epoch=0 must be True or a positive number of epochs"]),
    # CPU threads, data-parallel shards
    Case('learn.cpu_threads = 0', lambda c: setattr(c['learn'], 'cpu_threads', 0), ValueError,
         ["cpu_threads=0: give a positive number of torch threads, or None for torch's own setting"]),
    Case('TSFAST_LITE_CPU_THREADS=two', lambda c: _env_threads('two'), ValueError,
         ["TSFAST_LITE_CPU_THREADS='two': give a positive number of threads, or 'torch' for torch's own setting"]),
    Case('WindowDL.shard: rank >= world', lambda c: c['learn'].dls.train.shard(2, 2), ValueError,
         ["rank=2 must be below world=2 (ranks are 0 to 1)"]),
    Case('WindowDL.shard: fewer windows than one batch of all processes', lambda c: c['learn'].dls.train.shard(0, 64), ValueError,
         ["train: 26 windows make no window-batch of bs=4 per process x 64 processes = 256; use a smaller bs, or n_batches_train"]),
    # recipes (tsfast_lite.recipes; the command line's own cases are in nbs/05_cli/01_cli.ipynb)
    Case('recipe name unknown', lambda c: _recipes().get_recipe('silverbox', 'bestt'), ValueError,
         ["recipe='bestt' is not a recipe of silverbox; valid values are ['rnn', 'tcn', 'lru', 'linear_ss', 'encoder', 'nonlinear_ss', 'blocks', 'best', 'tutorial']"]),
    Case('recipe of another benchmark', lambda c: _recipes().get_recipe('duffing', 'best'), ValueError,
         ["recipe='best' is not a recipe of duffing; valid values are ['tutorial']"]),
    Case('recipe family unknown', lambda c: _recipes().get_recipe('duffing', 'tutorial').replace(family='transformer'), ValueError,
         ["family='transformer' is unknown; valid values are ['rnn', 'tcn', 'lru', 'linear_ss', 'nonlinear_ss', 'blocks']"]),
    Case('recipe n_epoch 0', lambda c: _recipes().get_recipe('duffing', 'tutorial').replace(n_epoch=np.int64(0)), ValueError,
         ["n_epoch=0 must be a positive integer"]),
    Case('recipe init encoder without an encoder', lambda c: _recipes().train_recipe('duffing', 'tutorial', init='encoder'), ValueError,
         ["init='encoder' needs a recipe with a learned encoder; duffing/tutorial has none"]),
    Case('recipe seed negative', lambda c: _recipes().train_recipe('duffing', 'tutorial', seed=-1), ValueError,
         ["seed=-1 must be an integer in [0, 2**32)"]),
]

def _recipes():
    import tsfast_lite.recipes as R
    return R

def _env_threads(v):
    import os
    from unittest import mock
    from tsfast_lite.learner.loop import cpu_threads_default
    with mock.patch.dict(os.environ, {'TSFAST_LITE_CPU_THREADS': v}): return cpu_threads_default()

@pytest.fixture(scope='module')
def ctx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bad')
    return dict(tmp=tmp, learn=RNNLearner(dls(), hidden_size=4, path=tmp))

def test_case_ids_are_unique(): assert len({c.id for c in CASES}) == len(CASES)

@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input(case, ctx):
    fragments = [f.replace('{tmp}', str(ctx['tmp'])) for f in case.contains]
    if issubclass(case.exc, Warning):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            case.run(ctx)
        msgs = [str(x.message) for x in w if x.category is case.exc]
        assert len(msgs) == 1, [str(x.message) for x in w]
        msg = msgs[0]
    else:
        with pytest.raises(BaseException) as info: case.run(ctx)
        assert type(info.value) is case.exc, f"{type(info.value).__name__}: {info.value}"
        msg = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    for f in fragments: assert f in msg, f"{f!r} not in {msg!r}"

def test_constant_signal_is_scaled_by_one_not_divided_by_zero():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        d = create_dls('u', 'y', {'train': [Record({'u': np.full(100, 0.1), 'y': np.arange(100.)})],
                                  'valid': [Record({'u': np.full(40, 0.3), 'y': np.arange(40.)})]}, win_sz=20, device='cpu')
    assert d.norm_u.std.tolist() == [1.0]
    u, _ = d.valid.one_batch()
    assert torch.isfinite(u).all() and torch.allclose(u, torch.full_like(u, 0.2), atol=1e-6)  # 0.3 - 0.1, not 0.2/1e-17


def test_unused_hdf5_datasets_are_ignored(tmp_path):
    "Datasets nobody asked for (text, 2-D, scalars, groups) do not block loading a folder, and warn about nothing"
    import h5py
    for s, n in (('train', 100), ('valid', 50), ('test', 30)):
        p = save_hdf5(Record({'u': np.arange(n)*0.1, 'y': np.arange(n)*0.2}, fs=10., name=s), tmp_path/s/f'{s}.hdf5')
        with h5py.File(p, 'a') as f:
            f['note'], f['mat'], f['title'] = np.array([b'hello']), np.zeros((n, 3)), 'bench run'
            f.create_group('meta')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        d = create_dls('u', 'y', tmp_path, win_sz=20, bs=4, device='cpu')
        ds_ = load_dataset(tmp_path, signals=['u', 'y'])
    assert list(d.test_sets) == ['test'] and d.test_sets['test'][1][:, 0].tolist() == (np.arange(30)*0.2).tolist()
    assert [list(r.signals) for s in ds_.values() for r in s] == [['u', 'y']]*3

def test_same_test_names_are_kept_apart():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        d = create_dls('u', 'y', same_names(), win_sz=20, device='cpu')
    assert {k: len(u) for k, (u, y) in d.test_sets.items()} == {'run': 30, 'run_2': 40}

def test_numeric_text_fs_attribute_is_read(tmp_path):
    "An fs attribute stored as text that reads as one number (MATLAB's h5writeatt, some loggers) is that number"
    import h5py
    with h5py.File(tmp_path/'r.hdf5', 'w') as f: f['u'] = np.arange(5.); f.attrs['fs'] = b'1000'
    assert load_hdf5(tmp_path/'r.hdf5').fs == 1000.

def test_numpy_numbers_are_accepted():
    i = np.int64
    d = create_dls('u', 'y', ds(), win_sz=i(20), stp_sz=i(5), sub_seq_len=i(10), bs=i(4), valid_stp_sz=i(10),
                   n_batches_train=i(3), num_workers=i(0), valid_bs=i(2), n_init=i(5), device='cpu')
    assert len(d.train) == 6 and d.train.bs == 4 and type(d.train.bs) is int and type(d.win_sz) is int and type(d.n_init) is int
    u, y = d.train.new(bs=np.int32(2)).one_batch()
    assert u.shape == (2, 10, 1)
    r = Record({'u': np.arange(10.)}, fs=np.float32(10.), name='r')
    assert r.fs == 10. and len(r.slice(np.int64(2), np.int64(5))) == 3
    assert [len(x) for x in split_last(r, np.float32(0.2))] == [8, 2]
    sim = simulated_duffing_dataset(n_train=i(600), n_valid=i(600), n_test=i(600), seed=i(1), noise_std=np.float32(0.))
    assert len(sim['train'][0]) == 600

def test_large_offset_output_keeps_its_variation():
    "An output riding on 2e7: the batches carry it less its exact mean (float64 first), with no warning; it trains"
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        d = create_dls('u', 'y', offset_ds(), win_sz=400, bs=1, device='cpu')
    _, y = d.valid.one_batch()
    raw = offset_ds()['valid'][0].signals['y']
    assert np.abs(y[0, :, 0].numpy() - (raw - raw.mean())).max() < 1e-6 and len(torch.unique(y)) == 400
    learn = RNNLearner(d, 'gru', hidden_size=4)
    assert float(learn.model.y_offset[0]) == d.norm_y.offset[0] and abs(d.norm_y.offset[0] - raw.mean()) < 1e-6
    p = learn.predict_sequence(offset_ds()['valid'][0].get(['u']))
    assert p.dtype == np.float64 and len(np.unique(p)) > 300  # physical values near 2e7, resolved to far below 2

def test_large_offset_input_is_normalised_in_float64():
    "An input riding on 2e7 keeps its variation: it is normalised in float64 before the cast to float32"
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t = np.arange(400)*0.1
        d = create_dls('u', 'y', {s: [Record({'u': 2e7 + np.sin(t), 'y': np.sin(t)}, name=s)] for s in ('train', 'valid')},
                       win_sz=400, bs=1, device='cpu')
    u, _ = d.valid.one_batch()
    expected = (2e7 + np.sin(t) - d.norm_u.mean[0]) / d.norm_u.std[0]
    assert np.abs(u[0, :, 0].numpy() - expected).max() < 1e-6

@pytest.mark.parametrize('case', [c for c in CASES if c.contains and c.contains[0].startswith(('HDF5 record', 'CSV record', 'Cannot read CSV'))],
                         ids=lambda c: c.id)
def test_file_is_named_once_at_the_start(case, ctx):
    "A message about a file starts with the file, once (not wrapped twice)"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        try: case.run(ctx); msg = str(w[-1].message)
        except Exception as e: msg = e.args[0] if isinstance(e, KeyError) else str(e)
    assert msg.startswith(case.contains[0].replace('{tmp}', str(ctx['tmp'])).split(':')[0]), msg
    assert msg.count(' record ' + str(ctx['tmp'])) == 1, msg


def test_damaged_benchmark_files_are_named(tmp_path):
    "A benchmark file that cannot be read: the error names the file, what it is and what went wrong (h5py, scipy)"
    from tsfast_lite.data import benchmarks as B
    (tmp_path/'boucwen').mkdir(); (tmp_path/'whprocessnoise').mkdir()
    for f in ('train.h5', 'bwdata.mat'): (tmp_path/'boucwen'/f).write_bytes(b'\x89HDF\r\n not hdf5' * 10)
    (tmp_path/'whprocessnoise'/'WH_EstimationExample.mat').write_bytes(b'MATLAB 5.0 not a mat file' * 10)
    cases = [(lambda: B.bouc_wen_dataset(root=tmp_path, cache=tmp_path/'c'), 'boucwen/train.h5', "Bouc-Wen benchmark's generated training set", 'OSError'),
             (lambda: B.bouc_wen_dataset(root=tmp_path, cache=tmp_path/'c', train='bwdata.mat'), 'boucwen/bwdata.mat', 'Bouc-Wen', 'ValueError'),
             (lambda: B.wh_process_noise_dataset(root=tmp_path, cache=tmp_path/'c'), 'whprocessnoise/WH_EstimationExample.mat',
              'Wiener-Hammerstein benchmark with process noise', 'ValueError')]
    for fn, f, what, kind in cases:
        with pytest.raises(ValueError) as e: fn()
        msg = str(e.value)
        assert msg.startswith(f"Cannot read {tmp_path/f} (") and what in msg and f"): {kind}: " in msg, msg
        assert msg.endswith('the file may be damaged or incomplete: replace it with the official one'), msg


def test_damaged_fine_steering_mirror_files_are_named(tmp_path):
    "The Fine Steering Mirror's arrays, damaged or of the wrong shape, one file each or packed as the official npz"
    import shutil
    from tsfast_lite.data import benchmarks as B
    d = tmp_path/'finesteeringmirror'; d.mkdir()
    rng = np.random.default_rng(0)
    for k in B.FSM_ARRAYS: np.save(d/f'{k}.npy', rng.normal(size=(16, 3, 6 if k.endswith('train') else 3, 2)))
    with pytest.raises(ValueError, match=r"The Fine Steering Mirror array u_100mV_train \(.*u_100mV_train\.npy\) has shape \(16, 3, 6, 2\); the benchmark's is \(8192, 3, 6, 2\)"):
        B.fine_steering_mirror_dataset(root=tmp_path, cache=tmp_path/'c')
    (d/'y_200mV_test.npy').write_bytes(b'\x93NUMPY not an array' * 4)
    with pytest.raises(ValueError) as e: B.fine_steering_mirror_dataset(root=tmp_path, cache=tmp_path/'c')
    assert str(e.value).startswith(f"Cannot read {d/'y_200mV_test.npy'} (a Fine Steering Mirror array): ValueError: "), e.value
    (d/'y_200mV_test.npy').unlink()   # one array missing and no npz: the message names what is missing
    token = B._NO_DOWNLOAD.set(True)   # as without a network
    try:
        with pytest.raises(FileNotFoundError) as e: B.fine_steering_mirror_dataset(root=tmp_path, cache=tmp_path/'c')
    finally: B._NO_DOWNLOAD.reset(token)
    assert "Of the 12 .npy arrays that can stand for it, 11 were found; missing: ['y_200mV_test.npy']" in str(e.value), e.value
    (d/'combined_data.npz').write_bytes(b'PK\x03\x04 truncated zip' * 3)
    with pytest.raises(ValueError) as e: B.fine_steering_mirror_dataset(root=tmp_path, cache=tmp_path/'c')
    assert str(e.value).startswith(f"Cannot read {d/'combined_data.npz'} (the Fine Steering Mirror's combined_data.npz): "), e.value
    with pytest.raises(ValueError, match="n_valid=0 must be"): B.create_dls_fine_steering_mirror(n_valid=0, root=tmp_path)
