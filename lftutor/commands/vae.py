"""``python -m lftutor train vae``: a VAE on the 8x8 digits with a Gaussian, planar or IAF posterior;
held-out ELBO and importance-sampled log-likelihood (arXiv:1505.05770, sec. 6.2)."""

from __future__ import annotations

import sys
import time

from lftutor.commands._common import add_output_arguments, positive_float, positive_int


def register(train, mcmc) -> None:
    """Add ``vae`` to the ``train`` sub-command group."""
    p = train.add_parser("vae", help="variational autoencoder on sklearn's 8x8 digits (flow posteriors)")
    p.add_argument("--latent", type=int, choices=[2, 40], default=2, help="latent dimension (default 2)")
    p.add_argument("--posterior", choices=["gaussian", "planar", "iaf"], default="gaussian")
    p.add_argument("--layers", type=positive_int, default=8, help="flow layers K (default 8)")
    p.add_argument("--hidden", type=positive_int, default=128, help="width of encoder and decoder layers")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, help="number of training steps")
    budget.add_argument("--time-budget", type=positive_float, metavar="SECONDS",
                        help="train for this many seconds of wall time (default 60)")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (cosine decay)")
    p.add_argument("--iwae-samples", type=positive_int, default=1000,
                   help="importance samples per test image for log p(x) (default 1000)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="FILE", help="save the trained model (lftutor.amortized.weights format)")
    p.add_argument("--per-image", action="store_true",
                   help="include the per-image test log-likelihoods in the JSON (for paired comparisons)")
    add_output_arguments(p)
    p.set_defaults(run=train_vae_command)


def train_vae_command(args) -> dict:
    import torch

    from lftutor.amortized.digits import load_digits_split
    from lftutor.amortized.vae import VAE, evaluate, n_parameters, train_vae
    from lftutor.amortized.weights import save_vae
    from lftutor.course import seed_all
    from lftutor.training.live import ProgressBar

    seed_all(args.seed)
    split = load_digits_split()
    model = VAE(args.latent, args.posterior, n_layers=args.layers, hidden=args.hidden)
    time_budget = None if args.steps is not None else (args.time_budget or 60.0)
    bar = ProgressBar(total=args.steps, file=sys.stderr, disable=args.quiet, mininterval=1.0)
    start = time.perf_counter()
    history = train_vae(model, split.train_intensity, steps=args.steps, time_budget=time_budget,
                        batch_size=args.batch_size, lr=args.lr, callbacks=[bar], num_threads=args.threads)
    seconds = time.perf_counter() - start
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        result = evaluate(model, split.test, k=args.iwae_samples, seed=args.seed)
    finally:
        torch.set_num_threads(threads)
    if args.save:
        save_vae(model, args.save)
    per_image = {k: result.pop(k) for k in ("per_image_log_likelihood", "per_image_elbo")}
    out = {"model": f"vae-{args.posterior}", "latent": args.latent, "posterior": args.posterior,
           "layers": model.n_layers, "hidden": args.hidden, "parameters": n_parameters(model),
           "seed": args.seed, "steps": len(history), "train_seconds": round(seconds, 3),
           "train_loss_last100": sum(history.loss[-100:]) / len(history.loss[-100:]), **result,
           "test_images": int(split.test.shape[0])}
    if args.per_image:
        out.update(per_image)
    return out
