"""Click models: debiased relevance from who clicked what, where (docs/clickmodels.md).

- ``log``: ``ClickLog``, the sessions as arrays (one row per session, one column per
  position), read from storage by ``read_click_log``.
- ``base``: what every model answers (``ClickModel``) and how a fit is judged on held-out
  sessions (``evaluate``: log-likelihood and perplexity per position, as PyClick).
- One module per model: ``coec`` (clicks over expected clicks), ``pbm`` (position-based),
  ``ubm`` (user browsing), and the models that ``MODELS`` names; ``_em`` is the EM that
  PBM and UBM share.

Fitting is vectorized over sessions: numpy over the log's arrays, no per-session loop.
"""
