"""CTC forward-backward and the CTC loss in plain NumPy, in probability space and in log space.

`CTC` and `LogCTC` follow section 4 of the HW3P1 handout (Table 4, Figures 15-17); `CTCLoss` follows section 4.1
(Table 5, 4.1.1 forward, 4.1.2 backward).

Notation: y (T, V) are the per-frame output probabilities (the course calls them "logits"), the target has L labels,
and the extended target S has 2L+1 states: blank, l_1, blank, l_2, ..., l_L, blank.
alpha(t, r) is the total probability of all partial paths that sit in state r at frame t (y_t included);
beta(t, r) is the total probability of all completions from state r at frame t, frames t+1..T-1 only (y_t excluded).
Hence alpha(t, r) * beta(t, r) sums the probabilities of all complete paths through (t, r), and
P(target | y) = sum_r alpha(t, r) beta(t, r) for every t.

The course's loss is the divergence DIV = -sum_t sum_r gamma(t, r) log y_t[S_r], the expected -log P(path) of an
alignment drawn from the posterior q(path) = P(path) / P. It equals -log P + H(q), H the entropy of that posterior,
so DIV >= -log P, with equality only when a single alignment is possible. Its handout gradient holds gamma fixed:
-sum_{r: S_r = l} gamma(t, r) / y_t[l], which is exactly d(-log P)/dy_t[l] because sum_r alpha beta = P at every t.
"""

from __future__ import annotations

import numpy as np


class CTC:
    """Probability-space CTC: extended target, forward (alpha), backward (beta) and posterior (gamma) tables."""

    def __init__(self, BLANK: int = 0):
        self.blank = BLANK

    def extend_target_with_blank(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the extended symbols (2L+1,) and the skip flags (2L+1,): state r may be entered from r-2."""
        target = np.asarray(target, dtype=np.int64)
        ext = np.full(2 * len(target) + 1, self.blank, dtype=np.int64)
        ext[1::2] = target
        # a skip over the blank between two labels is allowed only when the labels differ
        skip = np.zeros(len(ext), dtype=bool)
        skip[3::2] = target[1:] != target[:-1]
        return ext, skip

    def get_forward_probs(
        self, logits: np.ndarray, extended_symbols: np.ndarray, skip_connect: np.ndarray
    ) -> np.ndarray:
        """Return alpha (T, S): alpha(t, r) = [alpha(t-1, r) + alpha(t-1, r-1) + skip(r) alpha(t-1, r-2)] * y_t[S_r]."""
        y = logits[:, extended_symbols]  # (T, S): the probability of each state's symbol at each frame
        T, S = y.shape
        alpha = np.zeros((T, S))
        alpha[0, :2] = y[0, :2]  # a path starts in the first blank or the first label
        for t in range(1, T):
            a = alpha[t - 1].copy()
            a[1:] += alpha[t - 1, :-1]
            a[2:] += np.where(skip_connect[2:], alpha[t - 1, :-2], 0.0)
            alpha[t] = a * y[t]
        return alpha

    def get_backward_probs(
        self, logits: np.ndarray, extended_symbols: np.ndarray, skip_connect: np.ndarray
    ) -> np.ndarray:
        """Return beta (T, S): beta(t, r) = sum over r' in {r, r+1, r+2 if skip(r+2)} of beta(t+1, r') y_{t+1}[S_r']."""
        y = logits[:, extended_symbols]
        T, S = y.shape
        beta = np.zeros((T, S))
        beta[T - 1, -2:] = 1.0  # a path ends in the last label or the last blank
        for t in range(T - 2, -1, -1):
            c = beta[t + 1] * y[t + 1]
            b = c.copy()
            b[:-1] += c[1:]
            b[:-2] += np.where(skip_connect[2:], c[2:], 0.0)
            beta[t] = b
        return beta

    def get_posterior_probs(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Return gamma (T, S): gamma(t, r) = alpha(t, r) beta(t, r) / sum_r' alpha(t, r') beta(t, r')."""
        ab = alpha * beta
        return ab / ab.sum(axis=1, keepdims=True)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """Shift a log-table row right by k (k > 0) or left by -k, filling with log(0) = -inf."""
    out = np.full_like(x, -np.inf)
    if k > 0:
        out[k:] = x[:-k]
    else:
        out[:k] = x[-k:]
    return out


class LogCTC(CTC):
    """Log-space CTC: the same recursions with sums replaced by logaddexp; the inputs are log-probabilities (T, V)."""

    def get_forward_probs(
        self, logits: np.ndarray, extended_symbols: np.ndarray, skip_connect: np.ndarray
    ) -> np.ndarray:
        """Return log alpha (T, S) from log y (T, V)."""
        logy = logits[:, extended_symbols]
        T, S = logy.shape
        la = np.full((T, S), -np.inf)
        la[0, :2] = logy[0, :2]
        for t in range(1, T):
            prev = la[t - 1]
            a = np.logaddexp(prev, _shift(prev, 1))
            a = np.where(skip_connect, np.logaddexp(a, _shift(prev, 2)), a)
            la[t] = a + logy[t]
        return la

    def get_backward_probs(
        self, logits: np.ndarray, extended_symbols: np.ndarray, skip_connect: np.ndarray
    ) -> np.ndarray:
        """Return log beta (T, S) from log y (T, V)."""
        logy = logits[:, extended_symbols]
        T, S = logy.shape
        lb = np.full((T, S), -np.inf)
        lb[T - 1, -2:] = 0.0
        jump = np.zeros(S, dtype=bool)
        jump[:-2] = skip_connect[2:]  # state r may jump to r+2 when skip(r+2) is set
        for t in range(T - 2, -1, -1):
            c = lb[t + 1] + logy[t + 1]
            b = np.logaddexp(c, _shift(c, -1))
            b = np.where(jump, np.logaddexp(b, _shift(c, -2)), b)
            lb[t] = b
        return lb

    def get_posterior_probs(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Return log gamma (T, S) from log alpha and log beta: log alpha + log beta - logsumexp_r(...)."""
        ab = alpha + beta
        m = ab.max(axis=1, keepdims=True)
        return ab - (m + np.log(np.exp(ab - m).sum(axis=1, keepdims=True)))


def log_forward(log_y: np.ndarray, target: np.ndarray, blank: int = 0) -> np.ndarray:
    """Log alpha (T, 2L+1) of one utterance from log-probabilities (T, V)."""
    ctc = LogCTC(blank)
    return ctc.get_forward_probs(log_y, *ctc.extend_target_with_blank(target))


def log_backward(log_y: np.ndarray, target: np.ndarray, blank: int = 0) -> np.ndarray:
    """Log beta (T, 2L+1) of one utterance from log-probabilities (T, V)."""
    ctc = LogCTC(blank)
    return ctc.get_backward_probs(log_y, *ctc.extend_target_with_blank(target))


OBJECTIVES = ("divergence", "nll")


class CTCLoss:
    """The CTC loss of a batch and its gradient with respect to the probabilities y.

    objective="divergence" (the handout's, section 4.1): forward returns the batch mean of DIV and backward returns
    each utterance's -sum gamma / y, not divided by the batch size. objective="nll": forward returns the plain batch
    mean of -log P (torch's ctc_loss with reduction="none", then averaged) and backward the gradient of that mean,
    so divided by the batch size. In both, backward is zero on frames past an utterance's input length, and the
    per-utterance values of both objectives are kept in `divergences` and `neg_log_probs`.
    """

    def __init__(self, BLANK: int = 0, log_space: bool = False, objective: str = "divergence"):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.BLANK = BLANK
        self.log_space = log_space
        self.objective = objective
        self.ctc = LogCTC(BLANK) if log_space else CTC(BLANK)

    def forward(
        self, logits: np.ndarray, target: np.ndarray, input_lengths: np.ndarray, target_lengths: np.ndarray
    ) -> float:
        """Return the batch mean of the objective; logits are probabilities (T, B, V), target is padded (B, Lmax)."""
        self.logits = logits
        self.input_lengths = np.asarray(input_lengths)
        self.gammas, self.extended_symbols = [], []
        B = logits.shape[1]
        self.divergences = np.zeros(B)
        self.neg_log_probs = np.zeros(B)
        for b in range(B):
            y = logits[: self.input_lengths[b], b]  # truncate to this utterance's frames and labels
            ext, skip = self.ctc.extend_target_with_blank(target[b, : target_lengths[b]])
            with np.errstate(divide="ignore"):
                log_y = np.log(y[:, ext])
                if self.log_space:
                    y = np.log(y)
            alpha = self.ctc.get_forward_probs(y, ext, skip)
            beta = self.ctc.get_backward_probs(y, ext, skip)
            # gamma is a probability table, or its log in log space
            gamma = self.ctc.get_posterior_probs(alpha, beta)
            self.gammas.append(gamma)
            self.extended_symbols.append(ext)
            # P = alpha(T-1, S-1) + alpha(T-1, S-2): complete paths end in the last label or the last blank
            with np.errstate(divide="ignore", invalid="ignore"):
                if self.log_space:
                    self.neg_log_probs[b] = -np.logaddexp.reduce(alpha[-1, -2:])
                    gamma = np.exp(gamma)
                else:
                    self.neg_log_probs[b] = -np.log(alpha[-1, -2:].sum())
                # a state no path visits (gamma = 0) may have y = 0: it adds nothing, not 0 * -inf = nan
                self.divergences[b] = -np.sum(np.where(gamma == 0, 0.0, gamma * log_y))
        self.losses = self.divergences if self.objective == "divergence" else self.neg_log_probs
        return float(self.losses.mean())

    def backward(self) -> np.ndarray:
        """Return dY (T, B, V): -sum_{r: S_r = l} gamma(t, r) / y_t[l], divided by B for "nll"; zero past the input."""
        T, B, V = self.logits.shape
        scale = 1.0 / B if self.objective == "nll" else 1.0
        dY = np.zeros((T, B, V))
        for b in range(B):
            gamma = np.exp(self.gammas[b]) if self.log_space else self.gammas[b]
            n = self.input_lengths[b]
            g = np.zeros((n, V))
            np.add.at(g.T, self.extended_symbols[b], gamma.T)  # sum gamma over the states that share a symbol
            y = self.logits[:n, b]
            with np.errstate(divide="ignore", invalid="ignore"):
                dY[:n, b] = np.where(g == 0, 0.0, -g / y) * scale
        return dY
