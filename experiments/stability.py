"""Instability against the rewind step k (linear mode connectivity), for a dense model or an IMP mask.

    python -m experiments.stability --model=lenet_300_100 --dataset=fashion_mnist --optimizer=adam \
        --lr=1.2e-3 --batch_size=60 --steps=2ep --ks=0,25it,100it,500it [--mask=<imp run>/level_8/mask.npz]

For each k: the dense network is trained from its initialization to k (once, for all k, saving the
rewind points), the mask is applied (all ones by default; ``--mask=0=a.npz,100it=b.npz`` gives each k
its own, e.g. the masks of IMP runs rewound to each k, as in the LMC paper), and two copies are trained from theta_k
to T with data seeds --data_seeds; the train and test error along the straight line between them is
evaluated at --points values. The run directory (``<run_root>/stability/<changed flags>``) holds
``k_<k>/stability.json`` (the curves), ``results.csv`` and ``instability_vs_k.png``. Resumable like
every run directory; a directory holding other flags is refused.
"""

import dataclasses
import os
import sys

from absl import app, flags

from experiments import common
from keras_lottery import data, lottery, masks, models, runs, training, wrappers
from keras_lottery.callbacks.rewind import RewindCheckpoint, RewindPoint


@dataclasses.dataclass(frozen=True)
class StabilityHparams:
    """What the stability analysis measures.

    Attributes:
      ks: comma-separated rewind steps k ("0,100it,1ep,0.05").
      data_seeds: the two data-order seeds of the copies, "1,2".
      points: points on the linear path between the copies (30 in the paper).
      mask: a mask.npz (an IMP level's) to apply at every k, or one mask per k as "k=path,k=path" (every k
        of --ks, e.g. the same level of IMP runs rewound to each k); empty for the dense network.
      train_limit: training examples evaluated along the path (0 for all).
    """

    ks: str = "0,100it,500it"
    data_seeds: str = "1,2"
    points: int = 30
    mask: str = ""
    train_limit: int = 10000

    def validate(self):
        """Raises ValueError naming the first field that cannot work."""
        from keras_lottery.training import durations

        durations.to_step_list(self.ks, steps_per_epoch=1, total_steps=1)
        if not [k for k in self.ks.split(",") if k.strip()]:
            raise ValueError("--ks needs at least one rewind step.")
        seeds = [s for s in self.data_seeds.split(",") if s.strip()]
        if len(seeds) != 2 or not all(s.strip().lstrip("-").isdigit() for s in seeds):
            raise ValueError(f"--data_seeds takes two integers, got {self.data_seeds!r}.")
        if self.points < 2:
            raise ValueError(f"--points must be >= 2, got {self.points}.")
        for k, path in self.mask_paths().items():
            if not os.path.exists(path):
                raise ValueError(f"--mask: {path!r}{'' if k is None else f' (for k = {k})'} does not exist.")
        if self.train_limit < 0:
            raise ValueError(f"--train_limit must be >= 0, got {self.train_limit}.")

    def mask_paths(self):
        """``{None: path}`` for one mask at every k, ``{k as written: path}`` per k, ``{}`` for none."""
        if not self.mask:
            return {}
        if "=" not in self.mask:
            return {None: self.mask}
        pairs = {}
        for item in (i.strip() for i in self.mask.split(",") if i.strip()):
            k, sep, path = item.partition("=")
            if not sep or not k.strip() or not path.strip():
                raise ValueError(f"--mask: {item!r} is not k=path (per-k masks are \"k=path,k=path\").")
            if k.strip() in pairs:
                raise ValueError(f"--mask names k = {k.strip()} twice.")
            pairs[k.strip()] = path.strip()
        return pairs


runs.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams, StabilityHparams)
flags.DEFINE_boolean("plot", True, "Write instability_vs_k.png.")
FLAGS = common.FLAGS


def _masks_by_step(sh, ks, steps_per_epoch, total):
    """``{k: Mask or None}`` for every rewind step of ``ks``; exits with a message when --mask does not fit."""
    paths = sh.mask_paths()
    if not paths:
        return {k: None for k in ks}
    if None in paths:
        mask = masks.Mask.load(paths[None])
        return {k: mask for k in ks}
    by_step = {}
    for written, path in paths.items():
        step = training.to_step_list(written, steps_per_epoch, total)[0]
        if step in by_step:
            sys.exit(f"error: --mask gives step {step} two masks.")
        by_step[step] = path
    if set(by_step) != set(ks):
        sys.exit(f"error: --mask gives masks for steps {sorted(by_step)} but --ks is {ks}: give one per k.")
    return {k: masks.Mask.load(by_step[k]) for k in ks}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        hparams = common.hparams_from_flags(stability=StabilityHparams)
        run = runs.RunDirectory(FLAGS.run_root, "stability", hparams, name=FLAGS.run_name or None)
        run.check()
    except (ValueError, runs.RunDirectoryMismatch) as error:
        sys.exit(f"error: {error}")
    run = common.distribute(run, hparams["dataset"].batch_size)  # --strategy, --mixed_precision, --jit_compile
    sh, th = hparams["stability"], hparams["training"]
    datasets = data.load(hparams["dataset"], data_seed=th.data_seed)
    spe = datasets.steps_per_epoch
    total = training.total_steps(th, spe)
    ks = sorted(set(training.to_step_list(sh.ks, spe, total)))
    if ks[-1] >= total:
        sys.exit(f"error: --ks reaches step {ks[-1]}; every k must come before T = {total}.")

    def build():
        return wrappers.mask(models.get(hparams["model"].model, datasets.input_shape, datasets.classes,
                                        seed=hparams["model"].model_seed))

    mask_for = _masks_by_step(sh, ks, spe, total)
    for mask in {id(m): m for m in mask_for.values() if m is not None}.values():
        masks.apply_mask(build(), mask)  # a mask of another architecture fails here, before training
    run.prepare()
    print(f"Run directory: {run.path}\nData: {datasets.describe()}\nT = {total}, ks = {ks}, mask density "
          + ", ".join(f"{m.density if m is not None else 1.0:.4f}" for m in mask_for.values()))

    points_dir = run.file("rewind_points")
    os.makedirs(points_dir, exist_ok=True)
    point_path = {k: os.path.join(points_dir, f"k_{k}.npz") for k in ks}
    missing = [k for k in ks if not os.path.exists(point_path[k])]
    if missing:  # one dense run from the initialization to the largest k captures every point
        if max(missing) == 0:
            model = build()
            training.compile_for_classification(model, th, spe)
            RewindPoint.capture(model, step=0).save(point_path[0])
        else:
            callbacks = [RewindCheckpoint(at=f"{k}it", steps_per_epoch=spe, total_steps=total, path=point_path[k])
                         for k in missing]
            training.fit(build(), datasets, th, run.file("pretrain"), end_step=max(missing), callbacks=callbacks,
                         verbose=0)

    seeds = tuple(int(s) for s in sh.data_seeds.split(",") if s.strip())
    rows = []
    for k in ks:
        result_path = run.file(f"k_{k}", "stability.json")
        result = runs.read_json(result_path)
        if result is None:
            point = RewindPoint.load(point_path[k])
            model = build()
            point.restore_weights(model)
            if mask_for[k] is not None:
                masks.apply_mask(model, mask_for[k])
            res = lottery.instability(model, datasets, th, start_step=k, optimizer_state=point, data_seeds=seeds,
                                      points=sh.points, directory=run.file(f"k_{k}"),
                                      train_limit=sh.train_limit, eval_every=common.eval_every(spe, total))
            result = res.as_dict()
            runs.write_json_atomic(result_path, result)
        row = {"k": k, "density": mask_for[k].density if mask_for[k] is not None else 1.0,
               "train_instability": result["train_instability"],
               "test_instability": result["test_instability"],
               "train_error_end": 0.5 * (result["train_error"][0] + result["train_error"][-1]),
               "test_error_end": 0.5 * (result["test_error"][0] + result["test_error"][-1])}
        rows.append(row)
        print(f"k = {k:6d}: instability train {row['train_instability']:.4f}, test {row['test_instability']:.4f}")
    lottery.imp.write_csv(rows, run.file("results.csv"))
    if FLAGS.plot:
        title = f"{hparams['model'].model} on {hparams['dataset'].dataset}" + (", masked" if sh.mask else ", dense")
        lottery.plots.instability_vs_k(rows, run.file("instability_vs_k.png"), title=title)
    print(f"Wrote {run.file('results.csv')}")


if __name__ == "__main__":
    app.run(main)
