"""The algorithm: the settings of an edit, the release schedule, guidance, schedulers, placement and crops,
the preparation of the one denoising loop, and the loop. Model-free except through the adapters; it reads no
file and writes none (`inputs` and `outputs` do)."""
