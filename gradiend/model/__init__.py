"""GRADIEND models: the autoencoder (:class:`GradiendModel`), its layout over named base-model
parameters (:class:`ParamMappedGradiendModel`) and the pairing with a loaded base model
(:class:`ModelWithGradiend`, abstract; :class:`TextModelWithGradiend` for language models).
The public classes are exported by the ``gradiend`` package itself.
"""
