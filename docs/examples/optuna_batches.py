#!/usr/bin/env python3
"""An Optuna study whose trials train in batches: ask a batch of trials, fit their models
together with ``mlptrain.fit_many``, tell Optuna their scores. Each model reports its
validation accuracy after every epoch (``trial.report``) and stops there when Optuna's pruner
says so: ``fit_many``'s ``on_epoch`` returns True and that model sits out the rest of its
batch's epochs.

    pip install optuna
    python docs/examples/optuna_batches.py [--data FOLDER] [--device cpu|cuda]
                                           [--rounds 3] [--batch 8] [--epochs 5]

On MNIST (the 60,000 training images: 50,000 to train, 10,000 to validate) it searches the
learning rate, momentum and L2 penalty of the default 784-128-64-10 network. docs/SWEEP.md
says how this scales out (Ray Tune, a Slurm job array).
"""
import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
from sklearn.exceptions import ConvergenceWarning

import mlptrain
from mlptrain import MLPClassifier


def suggest(trial, epochs, device, seed):
    """The model a trial asks for."""
    return MLPClassifier(
        hidden_layer_sizes=(128, 64), solver="sgd", batch_size=64, max_iter=epochs, tol=0.0,
        learning_rate_init=trial.suggest_float("learning_rate_init", 1e-3, 0.3, log=True),
        momentum=trial.suggest_float("momentum", 0.0, 0.95),
        alpha=trial.suggest_float("alpha", 1e-6, 1e-2, log=True),
        nesterovs_momentum=False, random_state=seed + trial.number, device=device)


def run_study(X_train, y_train, X_val, y_val, *, rounds, batch, epochs, device="auto", seed=0,
              pruner=None):
    """`rounds` batches of `batch` trials; returns the study and each trial's epochs run."""
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.MedianPruner(
        n_startup_trials=batch, n_warmup_steps=1), sampler=optuna.samplers.TPESampler(seed=seed))
    epochs_run = {}
    for _ in range(rounds):
        trials = [study.ask() for _ in range(batch)]
        models = [suggest(t, epochs, device, seed) for t in trials]
        pruned = set()

        def on_epoch(i, model):
            score = model.score(X_val, y_val)
            trials[i].report(score, model.n_iter_)
            if trials[i].should_prune():
                pruned.add(i)
                return True  # this model stops here; the others train on
            return False

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlptrain.fit_many(models, X_train, y_train, on_epoch=on_epoch)
        for i, (trial, model) in enumerate(zip(trials, models)):
            epochs_run[trial.number] = model.n_iter_
            if i in pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, model.score(X_val, y_val))
    return study, epochs_run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="MNIST IDX folder (default: $MLPTRAIN_MNIST, "
                        "../shared/data/mnist beside the repository, then data/mnist)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from python_fit import mnist_or_exit
    data = mlptrain.load_idx(mnist_or_exit(args.data), flatten=True)
    X = data.X_train.astype(np.float32) / 255
    y = data.y_train
    study, epochs_run = run_study(X[:50000], y[:50000], X[50000:], y[50000:],
                                  rounds=args.rounds, batch=args.batch, epochs=args.epochs,
                                  device=args.device)
    for t in study.trials:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        print(f"trial {t.number}: {t.state.name.lower()}, {epochs_run[t.number]} epochs, "
              f"validation accuracy {value}, {t.params}")
    print(f"best: {study.best_value:.4f} with {study.best_params}")


if __name__ == "__main__":
    main()
