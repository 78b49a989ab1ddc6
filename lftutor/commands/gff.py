"""``python -m lftutor train gff``: the Gaussian free field, with the exact KL."""

from __future__ import annotations

from lftutor.commands._common import add_training_arguments, positive_float, positive_int, run_training, setup


def register(train, mcmc) -> None:
    """Add ``gff`` to the ``train`` sub-command group."""
    from lftutor.bijections.free_field import GFF_MODELS

    tsub = train
    gff = tsub.add_parser("gff", help="Gaussian free field on an L x L periodic lattice (exact KL)")
    gff.add_argument("--L", type=positive_int, default=8, help="lattice extent (even)")
    gff.add_argument("--m2", type=positive_float, default=0.25, help="mass squared (> 0)")
    gff.add_argument("--model", choices=sorted(GFF_MODELS), default="linear",
                     help="coupling model (default: linear)")
    gff.add_argument("--n-layers", type=positive_int, default=4, help="coupling layers (default 4)")
    gff.add_argument("--batch-size", type=positive_int, default=1024)
    gff.add_argument("--lr", type=positive_float, default=2e-2, help="Adam learning rate (cosine decay)")
    gff.add_argument("--gradient", choices=["path", "reparam"], default="path",
                     help="reverse-KL gradient estimator (default: path, whose noise vanishes as "
                     "q approaches p; see lftutor.training.loop.path_gradient_loss)")
    gff.add_argument("--threads", type=positive_int, default=1,
                     help="torch CPU threads while training (default 1: fastest for these sizes)")
    add_training_arguments(gff, default_budget=30)
    gff.set_defaults(run=train_gff)


def train_gff(args) -> dict:
    from lftutor.bijections.free_field import GFF_MODELS, exact_kl
    from lftutor.lattice.actions import FreeFieldAction
    from lftutor.training.loop import cosine_schedule

    device, dtype = setup(args)
    action = FreeFieldAction(args.m2, (args.L, args.L))
    flow = GFF_MODELS[args.model]((args.L, args.L), n_layers=args.n_layers, dtype=dtype).to(device)
    metrics, steps, seconds = run_training(args, flow, action, batch_size=args.batch_size, lr=args.lr,
                                            lr_schedule=cosine_schedule, ess_every=10,
                                            gradient=args.gradient, num_threads=args.threads)
    return {
        "model": f"gff-{args.model}", "L": args.L, "m2": args.m2, "n_layers": args.n_layers,
        "gradient": args.gradient,
        "seed": args.seed, "dtype": args.dtype, "device": str(device), "steps": steps,
        "train_seconds": round(seconds, 3), "ess": metrics["ess"], "acceptance": metrics["acceptance"],
        "kl": exact_kl(metrics["loss"], action.log_z), "loss": metrics["loss"],
        "eval_samples": metrics["n_samples"],
    }
