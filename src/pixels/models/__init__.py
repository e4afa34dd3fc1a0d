"""Models: loading pipelines safely (hub ids, folders, single files), the catalogue of known models and their
recommended settings, LoRA / IP-Adapter / ControlNet loading, and the memory options and estimate."""
