"""Layers shared by the torch models (twin: ``keras_impl.layers``)."""
