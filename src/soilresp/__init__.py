"""soilresp: global annual soil respiration from field data and gridded drivers.

Implements, and generalises, the method of Huang, N. et al. (2020) "Spatial and temporal
variations in global soil respiration and their relationships with climate and land cover",
Science Advances 6: eabb8508.
"""

__version__ = "0.1.0"

__all__ = ["Run", "__version__"]


def __getattr__(name: str):
    # the API is imported on first use, so `import soilresp` stays light
    if name == "Run":
        from soilresp.api import Run

        return Run
    raise AttributeError(f"module 'soilresp' has no attribute {name!r}")
