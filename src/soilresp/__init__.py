"""soilresp: global annual soil respiration from field data and gridded drivers.

Implements, and generalises, the method of Huang, N. et al. (2020) "Spatial and temporal
variations in global soil respiration and their relationships with climate and land cover",
Science Advances 6: eabb8508.
"""

__version__ = "0.1.0"
