"""Putting GEP to use: reports built on finished run workspaces.

- :mod:`.change` — change between two runs at constant prices, difference rasters, land-cover split
- :mod:`.assessment` — 考核 (performance assessment) per zone set: indicators, weights, ranking
- :mod:`.audit` — 离任审计 (natural-resource audit of one unit over a tenure)
- :mod:`.publish` — dated, versioned release folders of a run

Workspace paths are read through :mod:`.workspace_io` only (one small function per path).
Eco-compensation is in :mod:`ecoraster.compensation` (not GEP).
"""
