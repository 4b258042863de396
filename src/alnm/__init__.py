"""alnm: leak-free models of axillary lymph node metastasis from breast MRI, clinical and blood data."""

__version__ = "0.1.0"
