"""Ingestion: native-format inputs → aligned, unit-tagged layers on the run's grid.

Modules: ``landcover`` (LULC → GEP classes), ``optical`` (NDVI/FVC/LAI, composites),
``climate`` (NetCDF/GRIB/GeoTIFF with pint units), ``monitoring`` (stations → IDW /
kriging grids), ``vectors`` (boundaries, GCJ-02, CGCS2000 GK zones), ``stac`` (Items and
new-scene scans).
"""
