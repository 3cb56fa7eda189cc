"""ecoraster: GEP (生态产品总值) accounting on rasters, per district, wetland unit and parcel."""

__version__ = "0.1.0"
