r"""Graders of unit 3 (affine coupling): checkerboard masks, the affine coupling's reverse, a stack of layers.

What the test cells of ``solutions/03_affine_coupling`` call. The machinery (captured functions,
tripwire, tamper check, read-only module) is :mod:`lftutor.graders.core`'s.
"""

from __future__ import annotations

import lftutor.bijections.coupling as _layers
from lftutor.graders.core import (
    GradingError,
    T,
    begin,
    caller,
    capture_builtins,
    close,
    describe,
    diagnose,
    f64,
    function_codes,
    generator,
    make_read_only,
    max_abs_diff,
    ok,
    randn,
    tensor_result,
)

capture_builtins(globals())

__all__ = ["GradingError", "check_affine_reverse", "check_affine_stack", "check_checker_mask"]

# What each exercise's answer may not call (captured now, so re-binding names later does not help).
_FORBID = {
    "checker_mask": (function_codes(_layers.make_checker_mask), set()),
    "affine_reverse": (function_codes(_layers.AffineCoupling.reverse, _layers.AffineCoupling.forward,
                              _layers.AffineCoupling._s_t), set()),
    "affine_stack": (function_codes(_layers.make_phi4_affine_layers), set()),
}
_call = caller(_FORBID, forbidden="the reference implementation of this very exercise")
# captured now: the grader builds its own conditioner networks with the reference builder
_make_conv_net = _layers.make_conv_net


def _ref_mask(shape, parity):
    coords = T.meshgrid(*[T.arange(n) for n in shape], indexing="ij")
    total = parity
    for c in coords:
        total = total + c
    return T.to(total % 2 == 0, T.float64)


def check_checker_mask(mask_fn, level: str = "visible") -> None:
    """Check ``checker_mask(shape, parity)``: 1 where ``(i + j + parity)`` is even."""
    hidden = begin(level)
    cases = [((8, 8), 0), ((8, 8), 1)]
    if hidden:
        cases += [((2, 2), 0), ((4, 6), 1), ((6, 4), 0), ((2, 8), 1)]
    for shape, parity in cases:
        expected = _ref_mask(shape, parity)
        out = _call("checker_mask", "checker_mask(shape, parity)", mask_fn, tuple(shape), parity)
        what = f"checker_mask({shape}, {parity})"
        if not isinstance(out, T.Tensor) or type(out) is not T.Tensor:
            raise GradingError(f"{what} returned {describe(out)}; expected a torch.Tensor of shape "
                               f"{shape}.")
        if tuple(out.shape) != tuple(shape):
            raise GradingError(f"{what} has shape {tuple(out.shape)}, expected {shape}.")
        values = f64(out)
        if not bool(T.item(((values == 0) | (values == 1)).all())):
            raise GradingError(f"{what} must contain only 0s and 1s.")
        if T.equal(values, expected):
            continue
        if T.equal(values, 1 - expected):
            raise GradingError(f"{what} is the complement of the expected mask: with parity 0 the "
                               "site (0, 0) is 1, with parity 1 it is 0.")
        if not bool(T.item((values[1:, :] != values[:-1, :]).all())) or \
                not bool(T.item((values[:, 1:] != values[:, :-1]).all())):
            raise GradingError(f"{what} is not a checkerboard: neighbouring sites, along rows and "
                               "along columns, must always differ.")
        raise GradingError(f"{what} differs from the expected checkerboard.")
    ok("checker_mask gives the right checkerboards", hidden)


def _conv_net(gen, dtype, *, hidden=(4,), kernel=3):
    net = _make_conv_net(hidden_sizes=list(hidden), kernel_size=kernel)
    with T.no_grad():
        for p in T.parameters(net):
            T.copy_(p, p + 0.4 * T.randn(tuple(p.shape), generator=gen))
    return T.module_to(net, dtype)


def _ref_affine(net, mask, x, *, direction, net_input=None):
    """Reference forward/reverse of an affine coupling, plus two wrong variants for diagnosis."""
    m = T.to(mask, x.dtype)
    with T.no_grad():
        out = net(T.unsqueeze(m * x if net_input is None else net_input, 1))
    s, t = out[:, 0], out[:, 1]
    if direction == "forward":
        y = m * x + (1 - m) * (x * T.exp(s) + t)
        ld = T.tsum(T.flatten((1 - m) * s, 1), 1)
    else:
        y = m * x + (1 - m) * (x - t) * T.exp(-s)
        ld = -T.tsum(T.flatten((1 - m) * s, 1), 1)
    return y, ld, s, t


def check_affine_reverse(coupling_cls, level: str = "visible") -> None:
    """Check ``AffineCoupling.reverse``: ``phi -> (z, log|det dz/dphi|)``, the inverse of forward."""
    hidden = begin(level)
    if not isinstance(coupling_cls, type):
        raise GradingError("pass the class AffineCoupling itself (not an instance).")
    cases = [((16, 4, 4), T.float32, 0), ((16, 4, 4), T.float32, 1)]
    if hidden:
        cases += [((1, 6, 6), T.float64, 1), ((5, 4, 8), T.float64, 0), ((3, 8, 8), T.float32, 1),
                  ((2, 2, 2), T.float64, 0)]
    for seed, (shape, dtype, parity) in enumerate(cases):
        gen = generator(70 + seed)
        net = _conv_net(gen, dtype)
        mask = T.to(_ref_mask(shape[1:], parity), dtype)
        layer = _call("affine_reverse", "AffineCoupling(net, mask)", coupling_cls, net, T.clone(mask))
        if not callable(getattr(layer, "reverse", None)):
            raise GradingError("AffineCoupling has no method reverse(self, phi); define it inside the "
                               "class, indented like forward.")
        phi = randn(shape, dtype, gen) * 1.2
        z_exp, ld_exp, s, t = _ref_affine(net, mask, phi, direction="reverse")
        what = f"reverse(phi) for phi of shape {shape} ({dtype}, parity {parity})"
        with T.no_grad():
            out = _call("affine_reverse", "AffineCoupling.reverse", layer.reverse, T.clone(phi))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise GradingError(f"{what} returned {describe(out)}; like forward it must return a pair "
                               "(z, log_det).")
        z, ld = out
        z = tensor_result(z, f"the z returned by {what}", shape=shape, dtype=dtype)
        hint = ""
        if isinstance(ld, T.Tensor) and tuple(ld.shape) == shape:
            hint = "You returned a log-Jacobian per site; sum it over the lattice (not the batch)."
        elif isinstance(ld, T.Tensor) and ld.dim() == 0:
            hint = "You summed over the batch too; one log-Jacobian per configuration."
        ld = tensor_result(ld, f"the log_det returned by {what}", shape=(shape[0],), dtype=dtype,
                            shape_hint=hint)
        m = T.to(mask, T.float64)
        if not close(f64(z) * m, f64(phi) * m, dtype):
            raise GradingError(f"{what} changed frozen sites (mask = 1); they must be copied "
                               "unchanged: z = m*phi + (1-m)*(...).")
        if not close(z, z_exp, dtype):
            m_ = T.to(mask, dtype)
            with T.no_grad():
                unmasked = net(T.unsqueeze(phi, 1))
            variants = [
                (m_ * phi + (1 - m_) * (phi * T.exp(-s) - t),
                 "undo the shift before the scaling: forward did z*e^s + t, so z = (phi - t)*e^{-s}."),
                (m_ * phi + (1 - m_) * (phi - t) * T.exp(s),
                 "the scaling has the wrong sign: divide by e^{s}, i.e. multiply by e^{-s}."),
                (m_ * phi + (1 - m_) * (phi + t) * T.exp(-s),
                 "the shift has the wrong sign: subtract t."),
                (m_ * phi + (1 - m_) * (phi - unmasked[:, 1]) * T.exp(-unmasked[:, 0]),
                 "the network must see only the frozen sites, net(m*phi): in forward it saw m*z, "
                 "and since frozen sites are unchanged the same s and t come back."),
            ]
            raise GradingError(f"the z returned by {what} is not the inverse of forward (max difference "
                               f"{max_abs_diff(z, z_exp):.3g}). {diagnose(z, variants)}".rstrip())
        if not close(ld, ld_exp, dtype):
            variants = [
                (-ld_exp, "the log-Jacobian has the wrong sign: reverse undoes forward, so its "
                          "log-det is -sum over updated sites of s."),
                (-T.tsum(T.flatten(s, 1), 1), "only the updated sites (mask 0) contribute: use "
                                                 "(1 - m) * s before summing."),
                (-T.tsum(T.flatten(T.to(mask, dtype) * s, 1), 1),
                 "you summed s over the frozen sites; use the updated ones, (1 - m) * s."),
            ]
            raise GradingError(f"the log_det returned by {what} is wrong (max difference "
                               f"{max_abs_diff(ld, ld_exp):.3g}). {diagnose(ld, variants)}"
                               .rstrip())
    ok("AffineCoupling.reverse inverts forward, with the right log-Jacobian", hidden)


def _convs(net):
    return [mod for mod in T.modules(net) if isinstance(mod, T.ConvNd)]


def check_affine_stack(make_layers, level: str = "visible") -> None:
    """Check ``make_affine_stack(n_layers=, lattice_shape=, hidden_sizes=, kernel_size=)``."""
    hidden = begin(level)
    cases = [(4, (4, 4), [4, 4], 3)]
    if hidden:
        cases += [(1, (4, 4), [8], 3), (3, (6, 6), [3, 5, 2], 3), (6, (4, 8), [4], 5),
                  (2, (2, 2), [2, 2], 1)]
    for seed, (n_layers, shape, hidden_sizes, kernel) in enumerate(cases):
        call = (f"make_affine_stack(n_layers={n_layers}, lattice_shape={shape}, "
                f"hidden_sizes={hidden_sizes}, kernel_size={kernel})")
        layers = _call("affine_stack", call, make_layers, n_layers=n_layers, lattice_shape=shape,
                       hidden_sizes=list(hidden_sizes), kernel_size=kernel)
        _check_module_list(layers, call, n_layers)
        nets, parities = _nets_and_parities(layers, call, shape)
        _check_parities_alternate(parities)
        _check_own_networks(nets)
        for i, net in enumerate(nets):
            _check_network_layout(net, i, hidden_sizes, kernel, len(shape))
        _check_layers_act(layers, shape, (T.float32, T.float64) if hidden else (T.float32,),
                          generator(80 + seed))
    ok("make_affine_stack builds alternating affine couplings", hidden)


def _check_module_list(layers, call: str, n_layers: int) -> None:
    """The stack is a ``torch.nn.ModuleList`` (a plain list would hide the parameters from the
    optimizer) of ``n_layers`` layers."""
    if isinstance(layers, (list, tuple)) and all(isinstance(x, T.Module) for x in layers):
        raise GradingError(f"{call} returned a Python {type(layers).__name__}; wrap the layers in "
                           "torch.nn.ModuleList so that their parameters are registered (and "
                           "trained).")
    if not isinstance(layers, T.ModuleList):
        raise GradingError(f"{call} returned {describe(layers)}; expected a torch.nn.ModuleList "
                           "of coupling layers.")
    if len(layers) != n_layers:
        raise GradingError(f"{call} returned {len(layers)} layers, expected {n_layers}.")


def _nets_and_parities(layers, call: str, shape) -> tuple[list, list]:
    """Each layer is an ``AffineCoupling(net, mask)`` whose mask is a checkerboard of the lattice;
    returns the layers' networks and their masks' parities."""
    nets, parities = [], []
    for i, layer in enumerate(layers):
        for attr in ("net", "mask", "forward", "reverse"):
            if not hasattr(layer, attr):
                raise GradingError(f"layer {i} of {call} has no attribute {attr!r}; build each "
                                   "layer as AffineCoupling(net, mask).")
        mask = layer.mask
        if not isinstance(mask, T.Tensor) or tuple(mask.shape) != tuple(shape):
            raise GradingError(f"layer {i} has a mask of {describe(mask)}, expected shape {shape}.")
        mask = f64(mask)
        matching = [p for p in (0, 1) if T.equal(mask, _ref_mask(shape, p))]
        if not matching:
            raise GradingError(f"layer {i}'s mask is not a checkerboard; use "
                               "make_checker_mask(lattice_shape, parity).")
        parities.append(matching[0])
        nets.append(layer.net)
    return nets, parities


def _check_parities_alternate(parities: list) -> None:
    """Neighbouring layers freeze opposite halves, so that every site is updated by each pair."""
    for i in range(len(parities) - 1):
        if parities[i] == parities[i + 1]:
            raise GradingError(f"layers {i} and {i + 1} use the same parity: the sites frozen in "
                               "one layer stay frozen in the next, so half of the lattice is never "
                               "updated by that pair. Alternate the parity: i % 2.")


def _check_own_networks(nets: list) -> None:
    """No two layers share a network or a parameter: each layer learns its own."""
    param_ids = [{id(p) for p in T.parameters(net)} for net in nets]
    for i in range(len(nets)):
        for j in range(i):
            if nets[i] is nets[j] or param_ids[i] & param_ids[j]:
                raise GradingError(f"layers {j} and {i} share one network; create a new "
                                   "make_conv_net(...) inside the loop so every layer has its own "
                                   "parameters.")


def _check_network_layout(net, i: int, hidden_sizes, kernel: int, ndim: int) -> None:
    """Layer ``i``'s network: 1 input channel, the hidden sizes then 2 output channels (s and t),
    ``kernel`` wide in each of the ``ndim`` lattice directions, circular padding."""
    convs = _convs(net)
    channels = [c.out_channels for c in convs]
    if channels != [*hidden_sizes, 2] or (convs and convs[0].in_channels != 1):
        raise GradingError(f"layer {i}'s network has convolutions with output channels "
                           f"{channels}, expected {[*hidden_sizes, 2]} (hidden sizes, then 2 "
                           "channels for s and t) and 1 input channel.")
    if any(tuple(c.kernel_size) != (kernel,) * ndim for c in convs):
        raise GradingError(f"layer {i}'s network does not use kernel_size={kernel}.")
    if any(c.padding_mode != "circular" for c in convs):
        raise GradingError(f"layer {i}'s network pads with zeros; use circular padding so the "
                           "network respects the periodic lattice (make_conv_net does).")


def _check_layers_act(layers, shape, dtypes, gen) -> None:
    """Every layer acts like the reference affine coupling with its own net and mask, in each of
    ``dtypes``, on a batch passed through the stack in order."""
    for dtype in dtypes:
        x = randn((3, *shape), dtype, gen)
        for i, layer in enumerate(layers):
            T.module_to(layer, dtype)
            with T.no_grad():
                out = _call("affine_stack", f"layer {i}'s forward", layer.forward, T.clone(x))
            y_exp, ld_exp, _, _ = _ref_affine(layer.net, layer.mask, x, direction="forward")
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], T.Tensor)
                    and close(out[0], y_exp, dtype) and isinstance(out[1], T.Tensor)
                    and close(out[1], ld_exp, dtype)):
                raise GradingError(f"layer {i}'s forward is not the affine coupling "
                                   "m*z + (1-m)*(z*e^s + t); build the layers with "
                                   "AffineCoupling(net, mask).")
            x = y_exp
        T.module_to(layers, T.float32)


make_read_only(__name__)
