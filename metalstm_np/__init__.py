r"""metalstm_np: gradient descent as an LSTM — learned optimizers in NumPy + autograd.

A reference implementation of
  Andrychowicz et al. 2016, "Learning to learn by gradient descent by gradient descent" (l2l.py), and
  Ravi & Larochelle 2017, "Optimization as a model for few-shot learning" (meta_lstm.py).

An LSTM cell updates its memory as c^t = z^f ⊙ c^{t−1} + z^i ⊙ z; gradient descent updates
parameters as θ_t = θ_{t−1} − η∇_t. Read c as θ, z as −∇, fix z^f = 1 and z^i = η, and the LSTM is
gradient descent (meta_lstm.gradient_descent_lstm); compute the gates and it learns its own rule.

Notation, used by every docstring and variable name:

| symbol           | name in code           | meaning                                                       |
|------------------|------------------------|---------------------------------------------------------------|
| θ_t              | theta                  | the learner's parameters, one flat vector of n coordinates    |
|                  |                        | (= the meta-LSTM's cell state c_t)                            |
| φ                | phi                    | the optimizer's own (meta-)parameters; for hand-designed      |
|                  |                        | optimizers, its hyperparameters                               |
| ∇_t, L_t         | grad, loss             | gradient and loss of the learner at θ_{t−1}                   |
| z, z^i, z^f, z^o | z, z_i, z_f, z_o       | LSTM cell input and gate values                               |
| c_t, h_t         | c, h                   | LSTM cell and hidden state, one row per coordinate: (n, H)    |
| T                | steps                  | length of an unroll                                           |

google/learned_optimization calls our φ `theta`; here θ is always the learner's.

Data flows one way: data, learners -> optimizers, l2l, meta_lstm -> unroll -> meta_train ->
experiments -> cli.
"""
from . import blas

blas.pin()     # before NumPy is loaded: the same kernels and loops, on one thread, on every machine (blas.py)

from .l2l import l2l  # noqa: E402  (after the pin)
from .learners import MLP, Quadratic, Task
from .meta_lstm import cell_state_update, gradient_descent_lstm, meta_lstm
from .optimizers import HAND_DESIGNED, Optimizer, adam, momentum, nag, rmsprop, sgd
from .unroll import meta_loss, meta_value_and_grad, unroll

__version__ = "0.1.0"

__all__ = ["l2l", "meta_lstm", "gradient_descent_lstm", "cell_state_update", "Optimizer",
           "HAND_DESIGNED", "sgd", "momentum", "nag", "rmsprop", "adam", "Task", "Quadratic", "MLP",
           "unroll", "meta_loss", "meta_value_and_grad"]
