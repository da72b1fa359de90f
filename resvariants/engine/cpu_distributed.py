"""Distributed runs on machines without CUDA: ``tools/dist_train.sh CONFIG 2`` and
``--launcher slurm`` on CPU nodes train with gloo and a CPU-friendly DDP wrapper, and the
process group is torn down cleanly at the end."""
import os


def cpu_batchnorm_instead_of_syncbn(node, where='model'):
    """Rewrite every ``norm_cfg`` of type SyncBN to BN (in place); returns the places changed.

    torch's SyncBatchNorm refuses CPU tensors in a multi-process run, so the SyncBN configs
    could not run on a CPU gloo group. Each process then normalises over its own batch.
    """
    changed = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (key == 'norm_cfg' and isinstance(value, dict)
                    and value.get('type') in ('SyncBN', 'MMSyncBN', 'TorchSyncBN')):
                value['type'] = 'BN'
                changed.append(f'{where}.{key}')
            else:
                changed += cpu_batchnorm_instead_of_syncbn(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            changed += cpu_batchnorm_instead_of_syncbn(value, f'{where}.{i}')
    return changed


def cpu_distributed_cfg(cfg):
    """The config of a distributed run without CUDA (in place): gloo, a device-less DDP wrapper,
    SyncBN -> BN (torch's SyncBatchNorm refuses CPU tensors), with a warning naming the places."""
    changed = cpu_batchnorm_instead_of_syncbn(cfg.model)
    if cfg.get('sync_bn', None):
        cfg.sync_bn = None
        changed.append('sync_bn')
    if changed:
        from mmengine.logging import print_log
        print_log('no CUDA device: SyncBN cannot run on the CPU, using per-process BN in '
                  + ', '.join(changed), logger='current', level=30)
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})
    env_cfg['dist_cfg']['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg', None) or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def start_cpu_process_group(cfg):
    """Start the gloo process group of a distributed run without CUDA (``--launcher pytorch``
    or ``slurm``; Slurm's variables become torch.distributed's first). A no-op with CUDA, without
    a launcher, or when a group exists."""
    import torch
    import torch.distributed as dist
    launcher = cfg.get('launcher', 'none')
    if torch.cuda.is_available() or launcher not in ('pytorch', 'slurm') or dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env_for_cpu(cfg.get('env_cfg', {}).get('dist_cfg', {}).get('port', None))
    dist.init_process_group(backend='gloo', init_method='env://')


def _slurm_env_for_cpu(port=None):
    """torch.distributed env variables from Slurm's, as mmengine's slurm launcher sets them
    (it also selects a CUDA device, which a CPU-only node does not have)."""
    import subprocess
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if k not in os.environ]
    if missing:
        raise RuntimeError('--launcher slurm needs the variables srun sets; missing: '
                           + ', '.join(missing))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        out = subprocess.run(['scontrol', 'show', 'hostname', nodes], capture_output=True,
                             text=True)
        if out.returncode != 0 or not out.stdout.split():
            raise RuntimeError(f'cannot resolve the master node of SLURM_NODELIST={nodes!r} '
                               f'with scontrol; set MASTER_ADDR')
        os.environ['MASTER_ADDR'] = out.stdout.split()[0]
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def finish_distributed():
    """After a successful run: wait for every rank, then tear the process group down cleanly.

    Without it the gloo threads are still alive when the interpreter exits, and a rank can
    abort in their destructors ("terminate called without an active exception", SIGABRT)
    after the run has finished, which torchrun reports as a failed run.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
