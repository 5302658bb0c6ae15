"""Layers shared by the Keras models (twin: ``torch_impl.layers``)."""
