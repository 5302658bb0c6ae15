"""Objectives, written once (:mod:`core.objectives.base`); the twins implement their updates."""
