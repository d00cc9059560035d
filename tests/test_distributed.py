"""Data-parallel TBPTT (`learn.distrib_ctx()` under torchrun): 2 CPU processes with 4 windows each train exactly as one
process with 8 windows per batch, for k2 = k1, k2 < k1 and k2 > k1; a fit interrupted after a checkpoint and resumed
with `resume_fit` under `distrib_ctx` ends where an uninterrupted one does; a process killed mid-epoch stops the group
with `PeerLostError`, and the fit resumes exactly. Needs the `distributed` extra (Accelerate)."""
import importlib.util
import pytest

if importlib.util.find_spec('accelerate') is None:
    pytest.skip('data-parallel tests need Accelerate: pip install -e ".[distributed]"', allow_module_level=True)

from tsfast_lite.test_utils import check_data_parallel


def test_two_processes_train_as_one():
    df = check_data_parallel(nproc=2, bs=4, k2s=(None, 5, 20), tol=1e-5)
    assert list(df.k2) == ['k1', 5, 20]
    assert (df.updates == 48).all() and (df.updates == df.updates_per_process).all()
    assert (df.max_weight_diff < 1e-5).all() and (df.max_loss_metric_diff < 1e-5).all()
    assert (df.valid_loss - df.valid_loss_ddp).abs().max() < 1e-6
    assert df.attrs['resume_weight_diff'] < 1e-5


@pytest.mark.parametrize('killed_rank', [0, 1])
def test_lost_process_stops_the_group_and_resume_is_exact(killed_rank):
    "SIGKILL of one of 2 torchrun processes mid-epoch: the other stops with PeerLostError within seconds, the checkpoint is whole, resume_fit under a fresh torchrun equals an uninterrupted fit"
    from tsfast_lite.test_utils import check_peer_loss
    r = check_peer_loss(killed_rank=killed_rank)
    assert r['stop_s'] < 60, r['stop_s']  # measured 0.5-0.6 s on 2 cores; torchrun stops the rest within its monitor interval
    assert r['message'].startswith(f"PeerLostError: Process {1 - killed_rank} of 2: a peer process of the data-parallel "
                                   "group was lost in epoch 1, training batch "), r["message"]
    assert r['files'][0] == 'ck.json' and r['files'][1].startswith('ck_e0_') and r['files'][1].endswith('.pth')
    assert r['resume_weight_diff'] < 1e-5
