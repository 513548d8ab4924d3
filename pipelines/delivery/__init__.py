"""DSP delivery: catalogue -> QC -> ERN 4.3 -> staged package -> batch upload -> ACKs.

One :class:`schemas.store.deliveries.Delivery` per release *version* and DSP (the snapshot's
fingerprint), moving along ``queued -> qc_failed | packaged -> uploading -> uploaded ->
acknowledged | rejected`` (and ``failed`` when upload retries run out or no ACK comes in
time). Every move is recorded as a ``DeliveryEvent``. Reruns are idempotent: a version that
already has a delivery is never packaged or batched again; a failed upload is retried into
the *same* batch folder, after an exponential back-off (``retry_base_seconds`` × 2^(n-1)).

Assets are found by convention under ``DataDir.assets(org)/<UPC>/``: ``cover.jpg``
(or ``.jpeg``/``.png``) and ``<ISRC>.flac`` (or ``.wav``). Deals are the release's explicit
``release_deals`` for the DSP, else the DSP profile's defaults, in the territories both the
release and the profile allow. Times come in as arguments (``now``, ``as_of``): nothing here
reads the clock.

Modules: ``state`` (errors, the state machine), ``deals`` (a release's snapshot, its deals,
the ERN message), ``package``, ``upload``, ``acks``, and ``service`` (the use cases).
The Airflow task bodies are in ``pipelines.tasks.delivery``, the demo in ``demo.delivery``,
the benchmark in ``bench.delivery``.
"""
