"""One file per model: its config, parts, objective, defaults and test variants, registered by
defining ``MODEL`` (:class:`core.modelspec.ModelSpec`). :mod:`core.registry` finds them."""
