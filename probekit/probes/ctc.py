"""ASR probe: a CTC head on frozen frame embeddings, greedy decoding, CER/WER with ``jiwer``.

This is the "ASR error per layer" probe: a linear (or one-hidden-layer) map from each frame's
embedding to characters (or phones) plus a CTC blank, trained with the CTC loss (Graves et
al., 2006, "Connectionist Temporal Classification", ICML, eq. 14) and decoded greedily
(best path: argmax per frame, collapse repeats, drop blanks).

- :class:`CTCProbe`: the estimator (scikit-learn contract), here.
- :func:`normalize_text`: the one text normalisation used for training targets and references
  (:mod:`probekit.probes.ctc_metrics`, re-exported here).
- :func:`ctc_errors` / :func:`aggregate_errors`: per-utterance CER/WER with counts, and
  corpus-level rates as sum of errors / sum of reference lengths
  (:mod:`probekit.probes.ctc_metrics`, re-exported here).
- :func:`frames_by_utterance`: the former name of
  :meth:`probekit.store.EmbeddingStore.read_sequences` (kept, re-exported here).

Error rates follow the results-table contract (``results.py``): ``value * n`` is an error
count, ``n`` the number of reference characters (spaces included, as ``jiwer`` counts them)
or words.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._base import early_stopping_loop, safe_scale
from .ctc_data import frames_by_utterance
from .ctc_metrics import aggregate_errors, ctc_errors, normalize_text
from probekit.device import resolve_device

__all__ = ["CTCProbe", "normalize_text", "ctc_errors", "aggregate_errors", "frames_by_utterance",
           "BLANK", "WORD_SEPARATOR"]

#: Vocabulary entry 0, the CTC blank.
BLANK = "<blank>"
#: Vocabulary entry for the space between words (character units only).
WORD_SEPARATOR = "|"


def _phone_list(item, i):
    if isinstance(item, str):
        return item.split()
    syms = [str(s) for s in item]
    for s in syms:
        if not s or any(c.isspace() for c in s):
            raise ValueError(f"phone target {i}: symbol {s!r} is empty or contains whitespace")
    return syms


# -- the estimator ----------------------------------------------------------------------------
class CTCProbe(BaseEstimator):
    """CTC head on frame embeddings: ``log_softmax(head(z_t))`` per frame, greedy decoding.

    ``z_t`` is the standardised frame (mean and scale over all training frames, sklearn
    ``StandardScaler`` conventions); ``head`` is linear, or ``Linear-ReLU-Linear`` when
    ``hidden_size`` is set. Trained with ``torch.nn.CTCLoss(blank=0, zero_infinity=True,
    reduction="mean")`` (Graves et al., 2006, eq. 14; per-utterance loss divided by target
    length, then averaged) with Adam on shuffled minibatches, padded per batch.

    Targets. ``units="chars"``: transcripts are normalised with :func:`normalize_text`; the
    vocabulary ``vocab_`` is ``[BLANK, WORD_SEPARATOR] + sorted characters`` of the training
    texts, the space mapped to ``WORD_SEPARATOR``. Training characters outside it cannot
    occur; characters of *test* references unseen in training are never dropped: the probe
    cannot emit them, so they count as errors in :meth:`score` and :func:`ctc_errors`.
    ``units="phones"``: each target is a sequence of phone symbols (or a space-separated
    string); ``vocab_`` is ``[BLANK] + sorted symbols``; predictions are space-joined symbols
    and :meth:`score` uses the phone error rate.

    Infeasible targets. CTC needs at least ``len(target) + (number of adjacent repeats)``
    frames. Shorter utterances have zero probability; ``zero_infinity=True`` makes their loss
    and gradient zero, so they are effectively skipped in training (counted in
    ``n_infeasible_``, with a warning). At test time they are scored like any other utterance.

    With ``early_stopping`` a ``validation_fraction`` of the training utterances (drawn with
    ``random_state``) is held out; training stops after ``n_iter_no_change`` epochs without a
    lower validation CTC loss and the best weights are kept. Deterministic given
    ``random_state``: the split, initialisation and shuffling use generators seeded by it.

    Parameters
    ----------
    units : "chars" | "phones", default "chars"
    hidden_size : int or None, default None   None = linear head
    learning_rate : float, default 3e-3
    weight_decay : float, default 0.0          Adam's L2 term
    batch_size : int, default 16               utterances per minibatch
    max_epochs : int, default 60
    early_stopping : bool, default True
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 5
    standardize : bool, default True
    device : "cpu" | "cuda" | "auto"
    random_state : int or None

    Attributes
    ----------
    vocab_ : list of str; n_features_in_ : int; mean_, scale_ : ndarray (d,)
    model_ : torch.nn.Module (CPU); n_iter_ : int (epochs run); best_val_loss_ : float or None
    n_infeasible_ : int, training utterances with fewer frames than CTC needs
    """

    def __init__(self, units="chars", hidden_size=None, learning_rate=3e-3, weight_decay=0.0,
                 batch_size=16, max_epochs=60, early_stopping=True, validation_fraction=0.1,
                 n_iter_no_change=5, standardize=True, device="cpu", random_state=None):
        self.units = units
        self.hidden_size = hidden_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.device = device
        self.random_state = random_state

    # -- validation -------------------------------------------------------------------------
    def _check_sequences(self, sequences, reset):
        """Validated sequences: a :class:`~probekit.store.rows.FrameSequences` stays lazy
        (each utterance is read, checked and dropped: one in memory at a time), anything else
        becomes a list of arrays."""
        from probekit.store.rows import FrameSequences

        if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
            raise ValueError(f"{type(self).__name__} expects a list of (frames, hidden) arrays, "
                             f"one per utterance; got a single 2-D array")
        lazy = isinstance(sequences, FrameSequences)
        seqs = sequences if lazy else list(sequences)
        if not len(seqs):
            raise ValueError(f"{type(self).__name__}: no sequences (empty input)")
        d, out = None, []
        for i, x in enumerate(seqs):
            x = np.asarray(x)
            if x.ndim != 2 or x.shape[0] == 0 or not np.issubdtype(x.dtype, np.number):
                raise ValueError(f"sequence {i}: expected a non-empty numeric (frames, hidden) "
                                 f"array; got shape {x.shape}, dtype {x.dtype}")
            d = x.shape[1] if d is None else d
            if x.shape[1] != d:
                raise ValueError(f"sequence {i} has {x.shape[1]} features; sequence 0 has {d}")
            if not np.isfinite(x).all():
                raise ValueError(f"sequence {i} contains NaN or infinity")
            if not lazy:
                out.append(x)
        if reset:
            self.n_features_in_ = d
        elif d != self.n_features_in_:
            raise ValueError(f"sequences have {d} features, but {type(self).__name__} was "
                             f"fitted with {self.n_features_in_}")
        return seqs if lazy else out

    def _tokens(self, targets, n):
        targets = list(targets) if not isinstance(targets, str) else None
        if targets is None or len(targets) != n:
            raise ValueError(f"{type(self).__name__}: {n} sequences but "
                             f"{'a single string' if targets is None else len(targets)} targets")
        if self.units == "chars":
            out = []
            for i, t in enumerate(targets):
                if not isinstance(t, str):
                    raise ValueError(f"target {i}: expected a transcript str; got {type(t).__name__}")
                out.append([WORD_SEPARATOR if c == " " else c for c in normalize_text(t)])
            return out
        if self.units == "phones":
            return [_phone_list(t, i) for i, t in enumerate(targets)]
        raise ValueError(f"units must be 'chars' or 'phones'; got {self.units!r}")

    def _reference(self, target, i):
        if self.units == "chars":
            return normalize_text(target)
        return " ".join(_phone_list(target, i))

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, sequences, texts):
        """Fit on ``sequences`` (list of (frames_i, d) arrays, or a store's lazy
        :class:`~probekit.store.rows.FrameSequences`: then one batch of utterances is read at
        a time) and ``texts`` (list). Returns self."""
        seqs = self._check_sequences(sequences, reset=True)
        tokens = self._tokens(texts, len(seqs))
        if self.units == "chars":
            symbols = sorted({c for t in tokens for c in t} - {WORD_SEPARATOR})
            vocab = [BLANK, WORD_SEPARATOR] + symbols
        else:
            vocab = [BLANK] + sorted({s for t in tokens for s in t})
        index = {s: k for k, s in enumerate(vocab)}
        targets = [np.array([index[s] for s in t], dtype=np.int64) for t in tokens]
        lengths = _lengths(seqs)
        need = np.array([len(t) + int(np.sum(t[1:] == t[:-1])) for t in targets])
        n_infeasible = int(np.sum(lengths < need))
        if n_infeasible:
            warnings.warn(f"{n_infeasible} of {len(seqs)} training utterances have fewer frames "
                          f"than their CTC target needs; their loss is zeroed (zero_infinity)",
                          RuntimeWarning, stacklevel=2)

        rng = np.random.RandomState(self.random_state)
        seed = int(rng.randint(2**31 - 1))
        mean, scale = self._standardizer(seqs)
        tr, va = np.arange(len(seqs)), None
        if self.early_stopping:
            n_val = int(np.ceil(self.validation_fraction * len(seqs)))
            if not 0 < n_val < len(seqs):
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no training or "
                    f"validation utterances out of {len(seqs)}; set early_stopping=False")
            perm = np.random.RandomState(seed).permutation(len(seqs))
            va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])

        dev = resolve_device(self.device)
        gen = torch.Generator().manual_seed(seed)
        model = self._build(self.n_features_in_, len(vocab), gen).to(dev)
        ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True, reduction="mean")
        opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate,
                               weight_decay=self.weight_decay)
        m32, s32 = mean.astype(np.float32), scale.astype(np.float32)

        def batch_loss(idx):
            x, lens = _pad(_subset(seqs, idx), m32, s32)
            logp = model(x.to(dev)).log_softmax(-1).transpose(0, 1)  # (T, B, C)
            tg = torch.from_numpy(np.concatenate([targets[i] for i in idx])).to(dev)
            tl = torch.tensor([len(targets[i]) for i in idx], dtype=torch.long)
            return ctc(logp, tg, lens, tl)

        def run_epoch():
            model.train()
            order = tr[torch.randperm(len(tr), generator=gen).numpy()]
            for start in range(0, len(order), self.batch_size):
                opt.zero_grad()
                batch_loss(order[start:start + self.batch_size]).backward()
                opt.step()

        def val_loss():
            model.eval()
            with torch.no_grad():
                chunks = [va[s:s + self.batch_size] for s in range(0, len(va), self.batch_size)]
                return sum(float(batch_loss(c)) * len(c) for c in chunks) / len(va)

        self.n_iter_, self.best_val_loss_ = early_stopping_loop(
            model, run_epoch, val_loss, max_epochs=self.max_epochs,
            n_iter_no_change=self.n_iter_no_change, validate=va is not None)
        self.model_ = model.cpu().eval()
        self.vocab_ = vocab
        self.mean_, self.scale_ = mean, scale
        self.n_infeasible_ = n_infeasible
        return self

    def _standardizer(self, seqs):
        d = self.n_features_in_
        if not self.standardize:
            return np.zeros(d), np.ones(d)
        # Streamed float64 sums: no concatenated copy of every training frame.
        n, s = 0, np.zeros(d)
        for x in seqs:
            n += len(x)
            s += np.asarray(x).sum(axis=0, dtype=np.float64)
        mean = s / n
        ss = np.zeros(d)
        for x in seqs:
            ss += ((np.asarray(x).astype(np.float64) - mean) ** 2).sum(axis=0)
        return mean, safe_scale(np.sqrt(ss / n))

    def _build(self, d, k, gen):
        if self.hidden_size is None:
            model = torch.nn.Sequential(torch.nn.Linear(d, k))
        else:
            if int(self.hidden_size) < 1:
                raise ValueError(f"hidden_size must be None or >= 1; got {self.hidden_size!r}")
            model = torch.nn.Sequential(torch.nn.Linear(d, int(self.hidden_size)), torch.nn.ReLU(),
                                        torch.nn.Linear(int(self.hidden_size), k))
        # Re-draw torch's default init from our generator, not the global RNG.
        with torch.no_grad():
            for layer in model:
                if isinstance(layer, torch.nn.Linear):
                    bound = 1.0 / np.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=gen)
                    layer.bias.uniform_(-bound, bound, generator=gen)
        return model

    # -- inference --------------------------------------------------------------------------
    def _log_proba(self, sequences):
        """Per-utterance log-probabilities, computed 64 utterances at a time (a generator:
        only one batch of frames and scores is held)."""
        check_is_fitted(self)
        seqs = self._check_sequences(sequences, reset=False)
        m32, s32 = self.mean_.astype(np.float32), self.scale_.astype(np.float32)
        with torch.no_grad():
            for start in range(0, len(seqs), 64):
                x, lens = _pad(_subset(seqs, range(start, min(start + 64, len(seqs)))),
                               m32, s32)
                logp = self.model_(x).log_softmax(-1).numpy()
                del x  # one batch held at a time
                yield from (logp[b, :n] for b, n in enumerate(lens.tolist()))
                del logp

    def predict_log_proba(self, sequences):
        """Per-frame log-probabilities over ``vocab_``: list of (frames_i, len(vocab_)) arrays."""
        return list(self._log_proba(sequences))

    def predict(self, sequences):
        """Greedy (best-path) transcripts: argmax per frame, collapse repeats, drop blanks.

        Decoded batch by batch (the per-frame scores of all utterances are never held).

        Returns list of str: normalised text for ``units="chars"``, space-joined symbols for
        ``units="phones"``.
        """
        out = []
        for logp in self._log_proba(sequences):
            best = logp.argmax(axis=1)
            keep = np.ones(len(best), dtype=bool)
            keep[1:] = best[1:] != best[:-1]
            syms = [self.vocab_[k] for k in best[keep] if k != 0]
            if self.units == "chars":
                text = "".join(" " if s == WORD_SEPARATOR else s for s in syms)
                out.append(re.sub(r" +", " ", text).strip())
            else:
                out.append(" ".join(syms))
        return out

    def score(self, sequences, texts):
        """``1 - CER`` (chars) or ``1 - PER`` (phones), pooled over utterances (micro average)."""
        hyps = self.predict(sequences)
        texts = list(texts) if not isinstance(texts, str) else [texts]
        if len(texts) != len(hyps):
            raise ValueError(f"{len(hyps)} sequences but {len(texts)} targets")
        refs = [self._reference(t, i) for i, t in enumerate(texts)]
        agg = aggregate_errors(ctc_errors(hyps, refs, normalize=False)).iloc[0]
        return float(1.0 - (agg["cer"] if self.units == "chars" else agg["wer"]))


def _lengths(seqs) -> np.ndarray:
    """Frames per sequence, without reading a lazy :class:`FrameSequences`."""
    lengths = getattr(seqs, "lengths", None)
    return np.asarray(lengths if lengths is not None else [len(x) for x in seqs])


def _subset(seqs, idx):
    """The sequences at ``idx``: a lazy FrameSequences stays lazy (nothing read)."""
    return seqs[np.asarray(idx)] if hasattr(seqs, "lengths") else [seqs[i] for i in idx]


def _pad(seqs, mean, scale):
    """Standardised float32 batch (B, T_max, d), zero-padded, and lengths (B,) int64.

    A FrameSequences batch is read here one utterance at a time, straight into the batch."""
    lens = torch.tensor(_lengths(seqs), dtype=torch.long)
    x = np.zeros((len(lens), int(lens.max()), len(mean)), dtype=np.float32)
    for b, s in enumerate(seqs):
        x[b, :len(s)] = (np.asarray(s, dtype=np.float32) - mean) / scale
    return torch.from_numpy(x), lens
