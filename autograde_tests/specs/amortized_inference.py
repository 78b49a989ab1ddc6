"""Autograde spec of unit 09_amortized_inference: typical mistakes and cheats (see autograde_tests/specs)."""

from autograde_tests.specs import Cheat, Mistake, UnitSpec

SPEC = UnitSpec(
    mistakes=(
        Mistake("reparametrized_elbo", " - log_sigma.sum(-1)\n", "\n",
                "log q without the -sum(log sigma) of the change of variables"),
        Mistake("reparametrized_elbo", "    return (log_px + log_pz - log_q).mean()",
                "    kl = (0.5 * (mu**2 + torch.exp(2 * log_sigma) - 1) - log_sigma).sum(-1)\n"
                "    return (log_px - kl).mean()",
                "the closed-form Gaussian KL instead of the one-sample log p(z) - log q(z|x) (the grader "
                "names it; tests/test_amortized_inference_graders.py checks the message)"),
        Mistake("flow_log_density", "log_q = log_q - log_det", "log_q = log_q + log_det",
                "adds the log-dets instead of subtracting them"),
        Mistake("iwae_estimate", "torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])",
                "torch.log(torch.exp(log_w).mean(0))", "averages exp(log_w) directly: underflows"),
    ),
    cheats=(
        Cheat("reparametrized_elbo", """\
def reparametrized_elbo(x, mu, log_sigma, eps, decoder):
    return (mu * 0).sum()
"""),
        Cheat("flow_log_density", """\
def flow_log_density(z0, log_q0, layers, context):
    return z0, log_q0
"""),
        Cheat("iwae_estimate", """\
def iwae_estimate(log_w):
    return torch.zeros(log_w.shape[1], dtype=log_w.dtype)
"""),
    ),
)
