"""Plot an epsilon-ResNet run: discarded blocks and learning rate per epoch (PNG).

    python tools/analysis/plot_epsilon.py WORK_DIR_OR_SCALARS_JSON [--out epsilon.png]

Reads the per-epoch ``epsilon/discarded_cnt`` and ``epsilon/lr`` points that
``EpsilonResNetHook`` / ``EpsilonAdaptiveLRHook`` write to the visualiser (mmengine's
``LocalVisBackend`` file ``<work_dir>/<timestamp>/vis_data/scalars.json``; with a work dir the
newest run in it is used) and draws the count (left axis) and the learning rate (right axis,
log scale) over epochs, like the source repository's figure of repeated LR cycles.
"""
import argparse
import glob
import json
import os.path as osp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Plot discarded blocks and LR per epoch')
    parser.add_argument('path', help='work dir of the run, or its vis_data/scalars.json')
    parser.add_argument('--out', help='output PNG (default: epsilon_resnet.png beside the '
                                      'scalars file)')
    return parser.parse_args(argv)


def find_scalars(path):
    if osp.isfile(path):
        return path
    files = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    files += sorted(glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
    files = [f for f in files if 'epsilon/discarded_cnt' in open(f).read()]
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json with epsilon-ResNet points under '
                                f'{path} (was the run trained with EpsilonResNetHook?)')
    return files[-1]


def read_epsilon_curves(scalars_file):
    """Per-epoch curves: ``epoch``, ``discarded_cnt``, ``discarded_ratio`` (lists),
    ``lr`` ({epoch: lr}) and ``restarts`` (epochs where a restarted schedule begins)."""
    counts, ratios, lrs, restarts = {}, {}, {}, []
    with open(scalars_file) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            point = json.loads(line)
            step = point.get('step')
            if 'epsilon/discarded_cnt' in point:
                counts[step] = point['epsilon/discarded_cnt']
                ratios[step] = point.get('epsilon/discarded_ratio')
            if 'epsilon/lr' in point:
                lrs[step] = point['epsilon/lr']
            if point.get('epsilon/lr_restart'):
                restarts.append(step + 1)  # the new schedule starts with the next epoch
    if not counts:
        raise ValueError(f'{scalars_file} has no epsilon/discarded_cnt points')
    epochs = sorted(counts)
    return dict(epoch=epochs, discarded_cnt=[counts[e] for e in epochs],
                discarded_ratio=[ratios[e] for e in epochs], lr=lrs, restarts=restarts)


def plot(curves, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    def spans(epochs, values):  # the value of epoch e holds over [e, e + 1)
        return list(epochs) + [epochs[-1] + 1], list(values) + [values[-1]]

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.step(*spans(curves['epoch'], curves['discarded_cnt']), where='post', color='tab:red',
            label='discarded blocks')
    ax.set_xlabel('epoch')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel('discarded blocks', color='tab:red')
    top = ax
    if curves['lr']:
        lr_epochs = sorted(curves['lr'])
        top = ax2 = ax.twinx()
        ax2.step(*spans(lr_epochs, [curves['lr'][e] for e in lr_epochs]), where='post',
                 color='tab:blue', label='learning rate')
        ax2.set_yscale('log')
        ax2.set_ylabel('learning rate', color='tab:blue')
    # on the top axes, above the curves: a restart is where the learning rate jumps, and the
    # learning-rate step would hide the marker
    for i, epoch in enumerate(curves.get('restarts', [])):
        top.axvline(epoch, color='grey', linestyle=':', zorder=3,
                    label='LR restart' if i == 0 else None)
    ax.set_title('epsilon-ResNet: discarded blocks and learning rate')
    handles = [h for a in fig.axes for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc='center left', fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None):
    args = parse_args(argv)
    scalars = find_scalars(args.path)
    curves = read_epsilon_curves(scalars)
    out = args.out or osp.join(osp.dirname(scalars), 'epsilon_resnet.png')
    plot(curves, out)
    print(f'epochs {curves["epoch"][0]}-{curves["epoch"][-1]}: discarded '
          f'{curves["discarded_cnt"]}, lr {[curves["lr"].get(e) for e in curves["epoch"]]}')
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
